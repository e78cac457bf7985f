-- experiment/init.lua: lat.experiment, the layer every paper recipe stands on. A recipe declares
-- what is its own; the scaffold does the rest: options (--help, strict names, name=value,
-- --config, --quick), threads, seeds, the run folder with its provenance, one atomic row per
-- configuration as it finishes, --resume, shards (--shard=i/n, Slurm, MPI), progress, the merge
-- (the recipe's summary, results.csv).
--   return lat.experiment{
--     name = 'vision_trojans', about = 'one line for --help',
--     options = { epochs = { 5, 'epochs of trojan training', 'count' }, ... },  -- see lat.args.parse;
--                                        -- per_process = true: not part of what the run is (may differ between shards)
--     quick = { epochs = 1 },            -- --quick: these values where the user gave none
--     check = function(opt) ... end,     -- raises an error naming a bad option before anything is
--                                        -- written (e.g. a layer the model lacks) (optional)
--     setup = function(opt, ctx) ... return state end,   -- data, trojans, expensive stages
--     grid = function(opt) return lat.experiment.product({ defence = 'lat' }, { radius = { 0.1, 0.3 } }) end,
--     run = function(config, ctx) ... return row end,     -- ctx.setup is what setup returned
--     followup = function(rows, opt) return configurations end, -- a second stage chosen from
--                                        -- the grid's rows, e.g. more seeds for the best settings (optional)
--     summarise = function(rows, ctx, followup_rows) ... end, -- flags, plots, tables (optional)
--     columns = { 'key', 'accuracy' },   -- of results.csv, or function(rows, opt) (default: all)
--   }
-- A recipe file runs as `lat recipe.lua [options]`; `lat merge RUN` and `lat sweep` load the same
-- file only for its declaration, so a recipe does its work in setup and run, never at the top.
-- summarise runs in the merge, maybe in another process: it sees the rows and the options (and
-- can write files through ctx), not what setup made. setup runs once in each process that has
-- configurations to run (not at all when --resume finds them all done).
-- A followup stage runs once every row of the grid is in, in the process that finds it so (the
-- last shard to end, or every process that starts then), skipping the configurations that have
-- rows; its rows go to summarise, not to results.csv. Its configurations are run like the grid's
-- (run, seeds from their keys), and their keys must differ from the grid's.
local core = require 'lat.core'
local args = require 'lat.args'
local fs = require 'lat.experiment.fs'
local sys = require 'lat.core.sys'
local grid = require 'lat.experiment.grid'
local shard = require 'lat.experiment.shard'
local folder = require 'lat.experiment.folder'
local context = require 'lat.experiment.context'
local raise = core.raise

local E = {
  product = grid.product, join = grid.join, shard = shard, seeds = require 'lat.experiment.seeds',
}

-- the options the scaffold adds to every recipe's
local RUN_OPTIONS = {
  seed = { 1, "the run's seed: setup's (trojans, models) as given; each configuration's seeds derive from it and the configuration's key", 'natural' },
  threads = { 0, 'threads for this process (0: LAT_NUM_THREADS, else all cores)', 'natural', per_process = true },
  quick = { false, 'a smoke test: a tiny slice of everything, marked as such in the output and the files' },
  out = { '', 'the run folder (default: a new runs/<recipe>/<date>-<time>)' },
  resume = { false, 'continue the run in --out: skip the configurations that have a row' },
  force = { false, 'reuse a non-empty --out: compute every configuration again and overwrite its files' },
  shard = { '', "i/n: run the configurations i+1, i+1+n, ... (0-based i); default: from Slurm's or MPI's environment; 'none': all of them" },
  only = { '', 'only these configurations: comma-separated keys, or patterns with * and ?' },
  cache = { 'runs/cache', 'the folder where expensive stages are kept, under the options that made them', per_process = true },
}
-- options that say how to run, not what: left out of config.json's options
local CONTROL = { out = true, resume = true, force = true, shard = true, only = true }

local FIELDS = { name = 'string', about = 'string', options = 'table', quick = 'table function', check = 'function',
  setup = 'function', grid = 'table function', run = 'function', followup = 'function', summarise = 'function',
  columns = 'table function' }

local function check_recipe(recipe)
  if type(recipe) ~= 'table' then raise(('lat.experiment: expected a recipe table, got %s'):format(type(recipe))) end
  local name = recipe.name
  if type(name) ~= 'string' or not name:match('^[%w_%-]+$') then
    raise(("lat.experiment: the recipe needs a name (letters, digits, _ and -), got '%s'"):format(tostring(name)))
  end
  for k, v in pairs(recipe) do
    local want = FIELDS[k]
    if not want then raise(("recipe '%s': unknown field '%s' (known: about, check, columns, followup, grid, name, options, quick, run, setup, summarise)"):format(name, tostring(k))) end
    if not want:find(type(v), 1, true) then raise(("recipe '%s': %s must be a %s, got a %s"):format(name, k, want:gsub(' ', ' or '), type(v))) end
  end
  for _, k in ipairs({ 'grid', 'run' }) do
    if recipe[k] == nil then raise(("recipe '%s' has no %s"):format(name, k)) end
  end
  for k in pairs(recipe.options or {}) do
    if RUN_OPTIONS[k] then raise(("recipe '%s': the option '%s' is the scaffold's own; name yours otherwise"):format(name, k)) end
  end
  return recipe
end

local function sorted_names(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- plan(recipe, argv) -> { recipe, spec, opt, given, grid, selected } (or { help = text }): the
-- options read and the grid built, before any work
function E.plan(recipe, argv)
  check_recipe(recipe)
  local spec = {}
  for k, d in pairs(recipe.options or {}) do spec[k] = d end
  for k, d in pairs(RUN_OPTIONS) do spec[k] = d end
  local opt, info = args.parse(spec, argv)
  if info.help then
    return { help = args.help(spec, { usage = ('usage: lat %s.lua [options]'):format(recipe.name), about = recipe.about,
      groups = { { recipe.name .. "'s options", sorted_names(recipe.options or {}) }, { 'run options', sorted_names(RUN_OPTIONS) } } }) }
  end
  if opt.quick and recipe.quick then
    -- the quick values become the defaults, so that the options the user gave stay as given
    local values = type(recipe.quick) == 'function' and recipe.quick(opt) or recipe.quick
    local quick_spec = {}
    for k, d in pairs(spec) do quick_spec[k] = d end
    for k, v in pairs(values) do
      local d = spec[k] or raise(("recipe '%s': its quick values name no option '%s'"):format(recipe.name, tostring(k)))
      quick_spec[k] = { v, d[2], d[3], per_process = d.per_process }
    end
    local ok, o, i = pcall(args.parse, quick_spec, argv)
    if not ok then raise(("recipe '%s': a quick value does not fit its option: %s"):format(recipe.name, tostring(o))) end
    opt, info = o, i
  end
  if recipe.check then recipe.check(opt) end
  local configurations = recipe.grid
  if type(configurations) == 'function' then configurations = configurations(opt) end
  grid.check(configurations)
  return { recipe = recipe, spec = spec, opt = opt, given = info.given, grid = configurations,
    selected = grid.select(configurations, opt.only) }
end

local library_dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'

-- config.json's content for a plan
local function record_of(p, recipe_file)
  local lat = require 'lat'
  local options, keys, per_process = {}, {}, {}
  for k, v in pairs(p.opt) do if not CONTROL[k] then options[k] = v end end
  for k, d in pairs(p.spec) do if d.per_process then per_process[#per_process + 1] = k end end
  table.sort(per_process)
  for i, c in ipairs(p.grid) do keys[i] = c.key end
  local git = recipe_file and folder.git_state(recipe_file:match('^(.*)/[^/]*$') or '.')
  local lat_git = folder.git_state(library_dir)
  if git and lat_git and git.commit == lat_git.commit then lat_git = nil end
  return { recipe = p.recipe.name, recipe_file = recipe_file, options = options, grid = keys, per_process = per_process, smoke_test = p.opt.quick,
    git = git, lat_git = lat_git, lat_version = lat.version, date = os.date('!%Y-%m-%dT%H:%M:%SZ'), host = sys.host(),
    threads = lat.get_num_threads(), command = folder.command_line() }
end

local function default_folder(name, s)
  if s.count > 1 then
    local job = os.getenv('SLURM_ARRAY_JOB_ID') or os.getenv('SLURM_JOB_ID')
    if job then return ('runs/%s/slurm-%s'):format(name, job), false end
    raise(('a sharded run (%s) needs --out: every shard must write into the same folder'):format(s.source))
  end
  return ('runs/%s/%s'):format(name, os.date('%Y%m%d-%H%M%S')), true
end

local SMOKE = context.SMOKE

-- ---------------------------------------------------------------- merging

local function default_columns(rows)
  local seen, names = {}, {}
  for _, r in ipairs(rows) do
    for k, v in pairs(r) do
      if k ~= 'key' and not seen[k] and type(v) ~= 'table' then seen[k] = true; names[#names + 1] = k end
    end
  end
  table.sort(names)
  table.insert(names, 1, 'key')
  return names
end

local function missing_message(f, keys, missing, stage)
  local quoted = {}
  for i = 1, math.min(#missing, 6) do quoted[i] = "'" .. missing[i] .. "'" end
  local logs, shards = f:shard_logs(), {}
  for _, name in ipairs(sorted_names(logs)) do
    local s = logs[name]
    shards[#shards + 1] = ('%s %s (%d rows)'):format(name, s.ended and 'ended' or 'has not ended', s.rows)
  end
  return ('merge: %s has rows for %d of %d configurations%s; missing %s%s. Shard logs: %s. Run the missing ones with the same options, --out=%s --resume, then lat merge %s')
    :format(f.dir, #keys - #missing, #keys, stage or '', table.concat(quoted, ', '), #missing > 6 and ', ...' or '',
      #shards > 0 and table.concat(shards, ', ') or 'none', f.dir, f.dir)
end

local function keys_of(configurations)
  local out = {}
  for i, c in ipairs(configurations) do out[i] = c.key end
  return out
end

-- the rows of keys, in their order (each with its key)
local function read_rows(f, keys)
  local rows = {}
  for i, key in ipairs(keys) do
    rows[i] = f:read_row(key)
    if rows[i].key == nil then rows[i].key = key end
  end
  return rows
end

-- the followup stage's configurations, from the grid's rows (read afresh: summarise may change them)
local function followup_of(recipe, f)
  local configurations = recipe.followup(read_rows(f, f.record.grid), f.record.options)
  if type(configurations) ~= 'table' then
    raise(("recipe '%s': followup returned a %s, not a list of configurations"):format(recipe.name, type(configurations)))
  end
  if #configurations > 0 then
    local all = {}
    for i, key in ipairs(f.record.grid) do all[i] = { key = key } end
    local ok, err = pcall(grid.check, grid.join(all, configurations))
    if not ok then raise(("recipe '%s': followup: %s"):format(recipe.name, tostring(err):gsub('^[^:]+:%d+: ', ''))) end
  end
  return configurations
end

-- merges the rows of a complete run: the recipe's summary, then results.csv (grid order)
local function merge(f, recipe)
  local record = f.record
  if record.recipe ~= recipe.name then raise(("merge: %s holds a run of '%s', not '%s'"):format(f.dir, record.recipe, recipe.name)) end
  local missing = f:missing()
  if #missing > 0 then raise(missing_message(f, record.grid, missing)) end
  local followup_rows
  if recipe.followup then
    local keys = keys_of(followup_of(recipe, f))
    missing = f:missing(keys)
    if #missing > 0 then raise(missing_message(f, keys, missing, ' of its followup stage')) end
    followup_rows = read_rows(f, keys)
  end
  local rows = read_rows(f, record.grid)
  local ctx = context.new{ opt = record.options, dir = f.dir, smoke = record.smoke_test }
  if recipe.summarise then recipe.summarise(rows, ctx, followup_rows) end
  local columns = recipe.columns
  if type(columns) == 'function' then columns = columns(rows, record.options) end
  ctx:write_csv('results.csv', columns or default_columns(rows), rows)
  print(('%s: %d rows merged into %s/results.csv%s'):format(recipe.name, #rows, f.dir, record.smoke_test and ('  [' .. SMOKE .. ']') or ''))
  return rows
end

-- ---------------------------------------------------------------- running

-- open(plan, recipe_file, shard[, joining]) -> the run folder for a plan: --out, or a new default
-- one; config.json written or checked (folder.open). A shard of several joins its siblings' run.
function E.open(p, recipe_file, s, joining)
  local path, unique = p.opt.out, false
  if path == '' then path, unique = default_folder(p.recipe.name, s) end
  return folder.open(path, record_of(p, recipe_file), { resume = p.opt.resume, force = p.opt.force,
    joining = joining or s.count > 1, unique = unique })
end

-- run(recipe, argv[, recipe_file]) -> the rows when this process completed the run (merged),
-- else nil. recipe_file is recorded so that `lat merge` can load the recipe again.
function E.run(recipe, argv, recipe_file)
  local lat = require 'lat'
  local p = E.plan(recipe, argv)
  if p.help then io.write(p.help); return nil end
  local opt = p.opt
  local s = shard.of(opt.shard)
  -- the ranks of an MPI launch are a sweep's shards, each training on its own (lat.dist), not
  -- data-parallel ranks of one model, which would each write every row
  local dist = require 'lat.dist'
  local ranks, _, launcher = dist.launched()
  if s.count > 1 then dist.independent()
  elseif ranks > 1 then
    raise(('%s started %d ranks, but %s makes this one run every configuration: leave --shard out, so that the ranks are the shards')
      :format(launcher, ranks, s.source))
  end
  if opt.threads > 0 then lat.set_num_threads(opt.threads) end
  local f = E.open(p, recipe_file, s)
  local mine, todo, done = shard.mine(p.selected, s), {}, {}
  for _, c in ipairs(mine) do
    if opt.force or not f:has_row(c.key) then todo[#todo + 1] = c else done[#done + 1] = "'" .. c.key .. "'" end
  end
  if #done > 0 and not opt.resume then
    raise(('%s has rows for %d of this shard\'s configurations already (%s): --resume to skip them, --force to compute them again')
      :format(f.dir, #done, table.concat(done, ', ', 1, math.min(#done, 4))))
  end
  local name = shard.name(s)
  print(('%s: %d configurations, %s%s -> %s'):format(recipe.name, #p.grid,
    s.count > 1 and ('shard %d/%d (%s): %d of them, '):format(s.index, s.count, s.source, #mine) or '',
    #done > 0 and ('%d to run, %d done before'):format(#todo, #done) or ('%d to run'):format(#todo), f.dir))
  if opt.quick then print(recipe.name .. ': ' .. SMOKE) end
  f:log(name, { event = 'start', date = os.date('!%Y-%m-%dT%H:%M:%SZ'), host = sys.host(), pid = sys.pid(),
    threads = lat.get_num_threads(), command = folder.command_line(), configurations = #mine, todo = #todo })
  local ctx, ran = nil, 0
  local function run_all(configurations, label, skip_done)
    if not ctx then
      ctx = context.new{ opt = opt, dir = f.dir, shard = s, smoke = opt.quick }
      lat.manual_seed(opt.seed)
      if recipe.setup then ctx.setup = recipe.setup(opt, ctx) end
    end
    local bar = lat.log.progress{ label = label, total = #configurations, unit = 'config' }
    for k, c in ipairs(configurations) do
      if not (skip_done and f:has_row(c.key)) then -- a sibling may have run it meanwhile
        ctx.config = c
        lat.manual_seed(ctx:seed('default generator')) -- nothing left over from the configuration before
        local t0 = sys.now()
        local ok, row = pcall(recipe.run, c, ctx)
        if not ok then
          f:log(name, { event = 'failed', key = c.key, error = tostring(row) })
          error(("configuration '%s': %s"):format(c.key, tostring(row)), 0)
        end
        if type(row) ~= 'table' then raise(("recipe '%s': run('%s') returned a %s, not a row table"):format(recipe.name, c.key, type(row))) end
        local seconds = sys.now() - t0
        f:write_row(c.key, row, { seconds = seconds })
        f:log(name, { event = 'row', key = c.key, seconds = seconds })
        ran = ran + 1
        print(('[%d/%d] %s  %.1f s'):format(k, #configurations, c.key, seconds))
      end
      bar:update(k)
    end
    bar:finish()
  end
  if #todo > 0 then run_all(todo, recipe.name) end
  local missing, keys = f:missing(), p.grid
  if #missing == 0 and recipe.followup then
    local extra = followup_of(recipe, f)
    -- from this shard's place on, so that processes that reach it together spread out
    local pending = {}
    for k = 1, #extra do
      local c = extra[(k - 1 + s.index) % #extra + 1]
      if opt.force or not f:has_row(c.key) then pending[#pending + 1] = c end
    end
    if #pending > 0 then
      print(('%s: the grid is complete; its followup stage: %d configurations, %d to run'):format(recipe.name, #extra, #pending))
      run_all(pending, recipe.name .. ' followup', not opt.force)
    end
    missing, keys = f:missing(keys_of(extra)), extra
  end
  f:log(name, { event = 'end', date = os.date('!%Y-%m-%dT%H:%M:%SZ'), rows = ran })
  if #missing > 0 then
    print(('%s: %d of %d configurations%s have rows; the last shard to end merges them (or: lat merge %s)'):format(recipe.name,
      #keys - #missing, #keys, keys == p.grid and '' or ' of the followup stage', f.dir))
    return nil
  end
  if not f:lock() then
    print(('%s: another process is merging %s (if none is, lat merge %s)'):format(recipe.name, f.dir, f.dir))
    return nil
  end
  local ok, rows = pcall(merge, f, recipe)
  f:unlock()
  if not ok then error(rows, 0) end
  return rows
end

-- ---------------------------------------------------------------- recipe files

-- load(path) -> the recipe a recipe file declares, without running it
function E.load(path)
  if not fs.exists(path) then raise(('recipe file %s does not exist'):format(path)) end
  E.declaring, E.declared = true, nil
  local ok, err = pcall(dofile, path)
  local recipe = E.declared
  E.declaring, E.declared = false, nil
  if not ok then raise(('recipe file %s: %s'):format(path, tostring(err))) end
  if not recipe then raise(('recipe file %s declares no experiment (lat.experiment{ ... })'):format(path)) end
  return check_recipe(recipe)
end

-- merge(dir[, recipe]) -> rows: results.csv and the recipe's summary from a complete run's rows
-- (the recipe loaded from the file config.json names, unless given); raises an error naming the
-- missing configurations and the shards' state when rows are missing
function E.merge(dir, recipe)
  local f = folder.read(dir)
  if not recipe then
    local file = f.record.recipe_file
    if type(file) ~= 'string' then raise(('merge: %s/config.json names no recipe file to load'):format(dir)) end
    recipe = E.load(file)
  end
  return merge(f, recipe)
end

local lua_root = library_dir:match('^(.*)/lat/experiment$') or library_dir

-- protected(fn, ...) -> what fn returns; an error raised inside the lat library (bad options, a
-- refused folder, a missing row: the user's to fix) loses the library's file and line
function E.protected(fn, ...)
  local res = { pcall(fn, ...) }
  if res[1] then return unpack(res, 2, table.maxn(res)) end
  local err = tostring(res[2])
  if err:sub(1, #lua_root) == lua_root then err = err:gsub('^[^:]+:%d+: ', '', 1) end
  error(err, 0)
end

-- lat.experiment(recipe): run it with the script's arguments (or, while a recipe file is being
-- loaded for its declaration, hand the recipe over). The recipe file is the script lat runs.
local function main(recipe)
  if E.declaring then
    E.declared = recipe
    return recipe
  end
  local argv = {}
  for i = 1, arg and #arg or 0 do argv[i] = arg[i] end
  return E.protected(E.run, recipe, argv, arg and arg[0] and fs.absolute(arg[0]))
end

return setmetatable(E, { __call = function(_, recipe) return main(recipe) end })
