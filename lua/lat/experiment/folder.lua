-- experiment/folder.lua: a sweep's run folder, shared by all its shards without clobbering:
--   config.json          what the run is (recipe, options, grid keys) and where it came from
--                        (git commit, lat version, date, host, threads, command line); written
--                        once, by whichever process comes first, and checked by the others
--   rows/<key>.json      one configuration's result, written atomically when it finishes
--   shards/<i>-of-<n>.jsonl  each shard's own log: start, a line per row, end
--   results.csv and what the recipe's summary writes, from the merge
local core = require 'lat.core'
local json = require 'lat.io.json'
local fs = require 'lat.experiment.fs'
local sys = require 'lat.core.sys'
local grid = require 'lat.experiment.grid'
local raise = core.raise

local F = {}
F.__index = F

local function encode(v) return json.encode(v, { exact = true }) end

local function decode_file(path)
  local text = fs.read(path)
  if not text then return nil end
  local ok, v = pcall(json.decode, text)
  if not ok or type(v) ~= 'table' then raise(('%s is not a JSON object: %s'):format(path, tostring(v))) end
  return v
end

-- ---------------------------------------------------------------- where a run comes from

local shell_word = fs.shell_word

-- the command line that started this process, as a shell would take it
function F.command_line()
  local words = {}
  local first = 0
  while arg and arg[first - 1] ~= nil do first = first - 1 end
  for i = first, arg and #arg or -1 do words[#words + 1] = shell_word(tostring(arg[i])) end
  return table.concat(words, ' ')
end

local function git(dir, args)
  local p = io.popen(('git -C %s %s 2>/dev/null'):format(shell_word(dir), args))
  if not p then return nil end
  local out = p:read('*a')
  p:close()
  return out
end

-- { commit =, dirty = } of the git checkout holding dir (nil outside one)
function F.git_state(dir)
  local commit = (git(dir, 'rev-parse HEAD') or ''):match('^(%x+)')
  if not commit then return nil end
  return { commit = commit, dirty = (git(dir, 'status --porcelain --untracked-files=no') or '') ~= '' }
end

-- ---------------------------------------------------------------- opening a run folder

local function differences(there, here)
  local out = {}
  local names = {}
  for k in pairs(there) do names[#names + 1] = k end
  for k in pairs(here) do if there[k] == nil then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    if encode(there[k]) ~= encode(here[k]) then
      out[#out + 1] = ('--%s %s there, %s here'):format(k, there[k] == nil and '(none)' or encode(there[k]),
        here[k] == nil and '(none)' or encode(here[k]))
    end
  end
  return table.concat(out, '; ')
end

local function grid_differences(there, here)
  local in_there, in_here, extra, lacking = {}, {}, {}, {}
  for _, k in ipairs(there) do in_there[k] = true end
  for _, k in ipairs(here) do in_here[k] = true end
  for _, k in ipairs(here) do if not in_there[k] then extra[#extra + 1] = "'" .. k .. "'" end end
  for _, k in ipairs(there) do if not in_here[k] then lacking[#lacking + 1] = "'" .. k .. "'" end end
  local parts = {}
  if #extra > 0 then parts[#parts + 1] = ('this grid has %d configuration(s) it lacks (%s)'):format(#extra, table.concat(extra, ', ', 1, math.min(#extra, 5))) end
  if #lacking > 0 then parts[#parts + 1] = ('it has %d this grid lacks (%s)'):format(#lacking, table.concat(lacking, ', ', 1, math.min(#lacking, 5))) end
  if #parts == 0 then parts[1] = 'the same configurations in another order' end
  return 'another grid: ' .. table.concat(parts, '; ')
end

-- what makes two processes parts of one run: the recipe, the options that shape the results (all
-- but those each process may choose for itself, per_process) and the grid's keys in order
local function identity(record, per_process)
  local skip, options = {}, {}
  for _, k in ipairs(per_process) do skip[k] = true end
  for k, v in pairs(type(record.options) == 'table' and record.options or {}) do
    if not skip[k] then options[k] = v end
  end
  return { recipe = record.recipe, options = options, grid = record.grid }
end

-- Why the run folder at path, holding the config.json `there`, is not the run `record` (nil when it is)
local function mismatch(path, there, record)
  if there.recipe ~= record.recipe then
    return ("%s holds a run of the recipe '%s', not '%s': choose another --out"):format(path, tostring(there.recipe), record.recipe), true
  end
  local a, b = identity(there, record.per_process), identity(record, record.per_process)
  local why = {}
  if encode(a.options) ~= encode(b.options) then why[1] = ('other options (%s)'):format(differences(a.options, b.options)) end
  if encode(a.grid) ~= encode(b.grid) then why[#why + 1] = grid_differences(a.grid or {}, b.grid) end
  if #why > 0 then return ('%s was written with %s'):format(path, table.concat(why, ' and ')) end
  return nil
end

-- open(path, record, how) -> folder. record is config.json's content (recipe, options, grid =
-- the keys, per_process = the options each process may set for itself, and the provenance);
-- how = { resume =, force =, joining = (a shard, which may find its siblings' folder), unique = (path is a default name:
-- take path, path-2, path-3, ... whichever is new) }. Refuses, before writing anything, a
-- folder of another recipe, options or grid (--force overwrites the config for the last two), a
-- non-empty folder that is no run folder (unless --force), and the same run again unless --resume,
-- --force or joining.
function F.open(path, record, how)
  if how.resume and how.force then raise('--resume and --force contradict each other: choose one') end
  local text = encode(record) .. '\n'
  local function finish(dir)
    for _, sub in ipairs({ 'rows', 'shards' }) do sys.mkdir(dir .. '/' .. sub) end
    return setmetatable({ dir = dir, record = record }, F)
  end
  if how.unique then
    local parent = path:match('^(.*)/[^/]*$')
    if parent then
      local ok, err = sys.mkdir_p(parent)
      if not ok then raise('run folder: ' .. err) end
    end
    for n = 1, 1000 do
      local dir = n == 1 and path or ('%s-%d'):format(path, n)
      if sys.mkdir(dir) then
        fs.write_atomic(dir .. '/config.json', text)
        return finish(dir)
      end
    end
    raise(('run folder: %s and 999 numbered siblings exist already'):format(path))
  end
  local ok, err = sys.mkdir_p(path)
  if not ok then raise('run folder: ' .. err) end
  for _ = 1, 2 do -- a second round when a sibling shard created config.json under our feet
    local there = decode_file(path .. '/config.json')
    if there and type(there.recipe) ~= 'string' then -- a config.json of lat.log.run_dir, not of a sweep
      if not how.force then
        raise(('%s holds a run folder that is no sweep\'s (its config.json names no recipe): choose another --out, or --force'):format(path))
      end
      fs.write_atomic(path .. '/config.json', text)
      return finish(path)
    end
    if there then
      local why, fatal = mismatch(path, there, record)
      if why and (fatal or not how.force) then raise(why .. (fatal and '' or ' (--force to overwrite it, or another --out)')) end
      if not why and not (how.resume or how.force or how.joining) then
        raise(('%s already holds this run: --resume to continue it, --force to compute it again, or another --out'):format(path))
      end
      if how.force then fs.write_atomic(path .. '/config.json', text) end
      return finish(path)
    end
    if how.resume then raise(('nothing to resume in %s: it has no config.json'):format(path)) end
    local names = {}
    for _, n in ipairs(sys.list(path) or {}) do -- a sibling's config.json on its way in does not count
      if not n:match('^config%.json%.tmp%.%d+$') then names[#names + 1] = n end
    end
    if #names > 0 and not how.force then
      raise(('%s is not empty and holds no config.json (no run folder of lat\'s): choose another --out, or --force'):format(path))
    end
    if fs.create_exclusive(path .. '/config.json', text) then return finish(path) end
  end
  raise(('%s: config.json keeps changing under this process'):format(path))
end

-- read(path) -> folder of an existing run (for merging), with its config.json as .record
function F.read(path)
  local record = decode_file(path .. '/config.json')
  if not record then raise(('%s is no run folder: it has no config.json'):format(path)) end
  if type(record.grid) ~= 'table' or type(record.recipe) ~= 'string' then
    raise(('%s/config.json lacks the recipe or the grid it should record'):format(path))
  end
  return setmetatable({ dir = path, record = record }, F)
end

function F:path(name) return self.dir .. '/' .. name end

function F:row_path(key) return self:path('rows/' .. grid.file_name(key)) end

function F:has_row(key) return fs.exists(self:row_path(key)) end

-- a copy of v a row file can hold: numbers (NaN and infinities too), strings, booleans and tables
-- of them; scalar tensors become numbers; anything else raises an error naming the field
local function plain(v, where, depth)
  local t = type(v)
  if t == 'number' or t == 'string' or t == 'boolean' or v == json.null then return v end
  if t == 'cdata' then
    local lat = require 'lat'
    if lat.is_tensor(v) and v:numel() == 1 then return v:item() end
    local n = tonumber(v)
    if n then return n end
  elseif t == 'table' and depth < 32 then
    local out = {}
    for k, x in pairs(v) do
      if type(k) ~= 'string' and type(k) ~= 'number' then raise(('%s has a key of type %s'):format(where, type(k))) end
      out[k] = plain(x, where .. '.' .. tostring(k), depth + 1)
    end
    return out
  end
  raise(('%s is a %s, which a row file cannot hold (numbers, strings, booleans and tables of them)'):format(where, t))
end

-- write_row(key, row, extra): rows/<key>.json = { key =, row =, ... extra }, all or nothing
function F:write_row(key, row, extra)
  local rec = { key = key, row = plain(row, ("the row of '%s': field"):format(key), 0) }
  for k, v in pairs(extra or {}) do rec[k] = v end
  fs.write_atomic(self:row_path(key), encode(rec) .. '\n')
end

-- read_row(key) -> the row (nil when the configuration has none yet)
function F:read_row(key)
  local path = self:row_path(key)
  local rec = decode_file(path)
  if not rec then return nil end
  if rec.key ~= key or type(rec.row) ~= 'table' then raise(("%s does not hold the row of '%s'"):format(path, key)) end
  return rec.row
end

-- the keys (default: the run's grid) that have no row yet
function F:missing(keys)
  local out = {}
  for _, k in ipairs(keys or self.record.grid) do if not self:has_row(k) then out[#out + 1] = k end end
  return out
end

-- log(shard_name, event): a line in shards/<shard_name>.jsonl (only this shard writes there)
function F:log(shard_name, event)
  local f = io.open(self:path('shards/' .. shard_name .. '.jsonl'), 'a')
  if not f then return end
  f:write(encode(event), '\n')
  f:close()
end

-- the shards' logs: name -> { started =, ended =, rows = } from their lines
function F:shard_logs()
  local out = {}
  for _, name in ipairs(sys.list(self:path('shards')) or {}) do
    local shard = name:match('^(%d+%-of%-%d+)%.jsonl$')
    if shard then
      local s = { rows = 0 }
      for line in io.lines(self:path('shards/' .. name)) do
        local ok, e = pcall(json.decode, line)
        if ok and type(e) == 'table' then
          if e.event == 'start' then s.started, s.ended = true, false
          elseif e.event == 'end' then s.ended = true
          elseif e.event == 'row' then s.rows = s.rows + 1 end
        end
      end
      out[shard] = s
    end
  end
  return out
end

-- lock() -> true when this process may merge (an atomic mkdir); unlock() lets go
function F:lock() return sys.mkdir(self:path('.merging')) end
function F:unlock() os.remove(self:path('.merging')) end

return F
