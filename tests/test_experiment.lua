-- lat.experiment, the sweep scaffold, through a fake recipe (experiment_fake.lua: no training):
-- options and --help, run folders, atomic rows and --resume after kill -9, shards and merges,
-- seeds from keys, the cache, lat sweep's Slurm script, and bad input.
local H = require 'harness'
local lat = require 'lat'
local E = lat.experiment
local json = require 'lat.io.json'

local function absolute(p) return p:sub(1, 1) == '/' and p or (os.getenv('PWD') .. '/' .. p:gsub('^%./', '')) end
local LAT = absolute(arg[-1])
local here = absolute(debug.getinfo(1, 'S').source:match('^@(.*/)') or './')
local FAKE = here .. 'experiment_fake.lua'
local TMP = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/experiment'
os.execute(("rm -rf '%s' && mkdir -p '%s'"):format(TMP, TMP))

local read, exists = H.read, H.exists

-- runs the fake recipe in TMP (so that its default folders and cache land there); env is a
-- prefix of VAR=value words. Returns the output and the exit status.
local function fake(words, env)
  local out = H.run(("cd '%s' && %s '%s' '%s' %s"):format(TMP, env or '', LAT, FAKE, words))
  return out, tonumber(out:match('%[exit (%d+)%]%s*$'))
end

local function ok_run(words, env)
  local out, rc = fake(words, env)
  H.assert(rc == 0, 'the run failed: ' .. out, 2)
  return out
end

local function dir(name) return TMP .. '/' .. name end

local function decode(path) return json.decode(read(path)) end

-- the rows/ files of a run, key -> the row's JSON text (no timing: that differs between runs)
local function rows_of(d)
  local out = {}
  local p = io.popen(("ls '%s/rows'"):format(d))
  for name in p:lines() do
    if name:match('%.json$') then
      local rec = decode(d .. '/rows/' .. name)
      out[rec.key] = json.encode(rec.row, { exact = true })
    end
  end
  p:close()
  return out
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function lines_of(path)
  local out = {}
  if not exists(path) then return out end
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

-- the configurations a --trace file says were run (not setup or the stage)
local function runs_in(path)
  local out = {}
  for _, l in ipairs(lines_of(path)) do if l ~= 'setup' and l ~= 'made' then out[#out + 1] = l end end
  return out
end

-- ---------------------------------------------------------------- options

H.test('--help and -h print every option with its default and description, exit 0 and do nothing', function()
  for _, flag in ipairs({ '--help', '-h' }) do
    local out, rc = fake(flag .. ' --out=' .. dir('help_run'))
    H.assert(rc == 0, out)
    for _, want in ipairs({ '--radii=0.1,0.3', 'the radii of the grid', '[nonnegative list]', '--defences=at,lat', '--quick (false)',
        '--resume (false)', '--shard=', '--only=', '--seed=1', '--config=FILE', "fake's options:", 'run options:' }) do
      H.assert(out:find(want, 1, true), ("help lacks '%s':\n%s"):format(want, out))
    end
    H.assert(not exists(dir('help_run')), 'help made the run folder')
  end
end)

H.test('unknown options, stray words and bad values are errors naming them; no folder is made', function()
  local cases = {
    { '--radius=0.2', "unknown option '--radius'" },
    { 'radius=0.2', "unknown option '--radius'" },
    { 'extra', "unexpected argument 'extra'" },
    { '--radii=0.1,x,0.3', "option --radii: expected a comma-separated list of finite numbers >= 0, got 'x' in '0.1,x,0.3'" },
    { '--seeds=1,-2', "got '-2'" },
    { '--quick=maybe', "option --quick expects true or false (or yes/no, 1/0), got 'maybe'" },
    { '--scale=0', 'option --scale expects a finite number > 0, got 0' },
    { '--defences=at,,lat', 'without empty items' },
    { '--shard=2/2', 'shard index 2 is out of range: with 2 shards it is 0 .. 1' },
    { '--shard=1', "--shard expects i/n" },
    { '--only=nosuch', "--only: 'nosuch' names no configuration" },
  }
  for i, c in ipairs(cases) do
    local d = dir('bad_option_' .. i)
    local out, rc = fake(c[1] .. ' --out=' .. d)
    H.assert(rc == 1 and out:find(c[2], 1, true), c[1] .. ': ' .. out)
    H.assert(not exists(d .. '/config.json'), c[1] .. ': a run folder was written')
  end
end)

H.test('key=value without dashes, --name value, booleans as true/false/True/False/1/0/yes/no', function()
  local d = dir('forms')
  ok_run(('radii=0.5 --seeds 3 defences=lat out=%s'):format(d))
  local cfg = decode(d .. '/config.json')
  H.assert(cfg.options.radii == '0.5' and cfg.options.seeds == '3' and cfg.options.defences == 'lat', read(d .. '/config.json'))
  H.assert(#cfg.grid == 1 and cfg.grid[1] == 'defence=lat radius=0.5 seed=3', read(d .. '/config.json'))
  local spec = { flag = { false, 'a flag' } }
  for word, want in pairs({ ['true'] = true, ['False'] = false, ['True'] = true, ['1'] = true, ['0'] = false, yes = true,
      no = false, ['false'] = false }) do
    H.assert(lat.args.parse(spec, { 'flag=' .. word }).flag == want, word)
  end
  H.assert(lat.args.parse(spec, { '--flag' }).flag == true and lat.args.parse(spec, { '--no-flag' }).flag == false)
  -- the first form keeps working: positional words kept, name=value for a known option
  local opt = lat.args({ epochs = 3, quick = false }, { 'epochs=5', 'extra', '--quick=yes' })
  H.assert(opt.epochs == 5 and opt[1] == 'extra' and opt.quick == true)
  local script = H.write(dir('plain_args.lua'), "local opt = lat.args{ epochs = 3, out = 'runs/x' }; print('did work')")
  local out = H.run(("'%s' -e '' '%s' --help"):format(LAT, script))
  H.assert(out:find('--epochs=3', 1, true) and out:find('--out=runs/x', 1, true) and out:find('[exit 0]', 1, true)
    and not out:find('did work', 1, true), out)
end)

H.test('--quick fills only the options the user did not give, and marks the run as a smoke test', function()
  local d = dir('quick')
  local out = ok_run('--quick --seeds=4,5 --out=' .. d)
  H.assert(out:find('SMOKE TEST', 1, true), 'not marked in the output: ' .. out)
  local cfg = decode(d .. '/config.json')
  H.assert(cfg.smoke_test == true and cfg.options.quick == true, 'config.json not marked')
  H.assert(cfg.options.radii == '0.2' and cfg.options.seeds == '4,5', 'quick overrode a given option: ' .. read(d .. '/config.json'))
  local rows, columns = lat.log.read_csv(d .. '/results.csv')
  H.assert(columns[#columns] == 'smoke_test' and rows[1].smoke_test == 'true', 'results.csv not marked')
  local _, summary_columns = lat.log.read_csv(d .. '/summary.csv')
  H.assert(summary_columns[#summary_columns] == 'smoke_test', "the summary's CSV not marked")
  -- a real run has no such column
  local d2 = dir('not_quick')
  ok_run('--radii=0.2 --out=' .. d2)
  local _, cols = lat.log.read_csv(d2 .. '/results.csv')
  H.assert(cols[#cols] ~= 'smoke_test' and decode(d2 .. '/config.json').smoke_test == false)
end)

H.test('options from a config file (JSON or Lua), the command line over it; config.json records the effective options', function()
  local jf = H.write(dir('grid.json'), '{"radii": [0.2, 0.4], "defences": "lat", "scale": 3}')
  local lf = H.write(dir('grid.lua'), "return { radii = '0.2,0.4', defences = 'lat', scale = 3 }")
  local d1, d2 = dir('from_json'), dir('from_lua')
  ok_run(('--config=%s --scale=5 --out=%s'):format(jf, d1))
  ok_run(('--config=%s --scale=5 --out=%s'):format(lf, d2))
  local c1, c2 = decode(d1 .. '/config.json'), decode(d2 .. '/config.json')
  H.assert(c1.options.radii == '0.2,0.4' and c1.options.scale == 5 and c1.options.defences == 'lat', read(d1 .. '/config.json'))
  H.assert(json.encode(c1.options) == json.encode(c2.options), 'JSON and Lua files differ')
  H.assert(read(d1 .. '/results.csv') == read(d2 .. '/results.csv'))
  -- a run's own config.json as --config gives the same run again
  local d3 = dir('from_config_json')
  ok_run(('--config=%s --out=%s'):format(d1 .. '/config.json', d3))
  H.assert(read(d1 .. '/results.csv') == read(d3 .. '/results.csv'))
  local bad = H.write(dir('bad.json'), '{"radius": 1}')
  local out, rc = fake(('--config=%s --out=%s'):format(bad, dir('bad_config')))
  H.assert(rc == 1 and out:find('config file', 1, true) and out:find("unknown option '--radius'", 1, true), out)
  out, rc = fake(('--config=%s --out=%s'):format(dir('missing.json'), dir('bad_config')))
  H.assert(rc == 1 and out:find('cannot open', 1, true), out)
end)

-- ---------------------------------------------------------------- run folders

H.test('config.json records options, git commit and dirty flag, version, date, host, threads, command line', function()
  local d = dir('provenance')
  ok_run('--threads=1 --radii=0.2 --out=' .. d)
  local c = decode(d .. '/config.json')
  H.assert(c.recipe == 'fake' and c.recipe_file == FAKE, 'recipe')
  H.assert(c.lat_version == lat.version and c.threads == 1 and c.options.threads == 1, 'version, threads')
  H.assert(type(c.host) == 'string' and c.host ~= '' and c.date:match('^%d+%-%d+%-%d+T%d+:%d+:%d+Z$'), 'host, date')
  H.assert(c.command:find(FAKE, 1, true) and c.command:find('--radii=0.2', 1, true), 'command: ' .. c.command)
  local git = c.git or c.lat_git
  H.assert(git and git.commit:match('^%x+$') and #git.commit == 40 and type(git.dirty) == 'boolean', 'git: ' .. read(d .. '/config.json'))
  H.assert(c.options.out == nil and c.options.resume == nil, 'how to run is no option of the run')
end)

H.test('the default folder is new for every run; an existing one is refused without --resume or --force', function()
  local out1, out2 = ok_run('--radii=0.2'), ok_run('--radii=0.2')
  local d1, d2 = out1:match('%-> (runs/fake/[%d%-]+)'), out2:match('%-> (runs/fake/[%d%-]+)')
  H.assert(d1 and d2 and d1 ~= d2, 'two runs, one folder: ' .. tostring(d1) .. ' ' .. tostring(d2))
  H.assert(exists(TMP .. '/' .. d1 .. '/results.csv') and exists(TMP .. '/' .. d2 .. '/results.csv'))
  local d = dir('taken')
  ok_run('--radii=0.2 --out=' .. d)
  local before = read(d .. '/config.json')
  local out, rc = fake('--radii=0.2 --out=' .. d)
  H.assert(rc == 1 and out:find('already holds this run: --resume to continue it, --force', 1, true), out)
  H.assert(read(d .. '/config.json') == before, 'the refused run changed config.json')
  -- a folder that is no run folder
  local other = dir('not_a_run')
  os.execute(("mkdir -p '%s' && echo keep > '%s/notes.txt'"):format(other, other))
  out, rc = fake('--out=' .. other)
  H.assert(rc == 1 and out:find('is not empty and holds no config.json', 1, true), out)
  out, rc = fake('--resume --out=' .. other)
  H.assert(rc == 1 and out:find('nothing to resume', 1, true), out)
  H.assert(read(other .. '/notes.txt') == 'keep\n')
  out, rc = fake('--resume --force --out=' .. d)
  H.assert(rc == 1 and out:find('contradict', 1, true), out)
  -- --force computes everything again
  local trace = dir('force_trace')
  ok_run(('--radii=0.2 --force --trace=%s --out=%s'):format(trace, d))
  H.assert(#runs_in(trace) == 4, 'not all configurations again: ' .. table.concat(lines_of(trace), ' | '))
end)

H.test('a folder of another recipe, other options or another grid is refused, naming the difference, losing nothing', function()
  local d = dir('mine')
  ok_run('--radii=0.1,0.3 --out=' .. d)
  local config, csv, rows = read(d .. '/config.json'), read(d .. '/results.csv'), rows_of(d)
  local out, rc = fake('--radii=0.1,0.3,0.5 --resume --out=' .. d)
  H.assert(rc == 1 and out:find('another grid', 1, true) and out:find("'defence=at radius=0.5 seed=1'", 1, true), out)
  out, rc = fake('--radii=0.1,0.3 --scale=3 --resume --out=' .. d)
  H.assert(rc == 1 and out:find('other options', 1, true) and out:find('--scale 2 there, 3 here', 1, true), out)
  local cfg = decode(d .. '/config.json')
  cfg.recipe = 'other'
  local foreign = dir('foreign')
  os.execute(("mkdir -p '%s'"):format(foreign))
  H.write(foreign .. '/config.json', json.encode(cfg))
  out, rc = fake('--radii=0.1,0.3 --force --out=' .. foreign)
  H.assert(rc == 1 and out:find("holds a run of the recipe 'other', not 'fake'", 1, true), out)
  H.assert(read(d .. '/config.json') == config and read(d .. '/results.csv') == csv, 'a refused run changed the folder')
  local now = rows_of(d)
  for k, v in pairs(rows) do H.assert(now[k] == v, 'row changed: ' .. k) end
  -- threads and the cache folder are each process's own
  ok_run('--radii=0.1,0.3 --threads=1 --cache=' .. dir('cache2') .. ' --resume --out=' .. d)
end)

H.test('rows are written as they finish; kill -9 mid-sweep, --resume: complete, equal to an uninterrupted run', function()
  local whole = dir('uninterrupted')
  ok_run('--radii=0.1,0.2,0.3 --out=' .. whole)
  local d, trace = dir('killed'), dir('killed_trace')
  local pid = H.run(("cd '%s' && { '%s' '%s' --radii=0.1,0.2,0.3 --delay=0.25 --trace='%s' --out='%s' > '%s.log' 2>&1 & echo $!; }")
    :format(TMP, LAT, FAKE, trace, d, d)):match('^(%d+)')
  H.assert(pid, 'no child started')
  local t0 = os.time()
  repeat os.execute('sleep 0.1') until #runs_in(trace) >= 4 or os.time() - t0 > 60
  os.execute('kill -9 ' .. pid)
  os.execute('sleep 0.2')
  local done = rows_of(d)
  H.assert(count(done) >= 2 and count(done) < 12, ('%d rows before the kill'):format(count(done)))
  H.assert(not exists(d .. '/results.csv'), 'merged before the end')
  local p = io.popen(("ls -a '%s/rows'"):format(d))
  for name in p:lines() do
    if name:match('%.json$') then H.assert(pcall(decode, d .. '/rows/' .. name), 'a row file is half written: ' .. name) end
  end
  p:close()
  local ran_before = #runs_in(trace)
  H.assert(ran_before - count(done) <= 1, 'more than the configuration in flight lost')
  local out = ok_run(('--radii=0.1,0.2,0.3 --resume --trace=%s --out=%s'):format(trace, d))
  H.assert(out:find(('%d done before'):format(count(done)), 1, true), out)
  H.assert(read(d .. '/results.csv') == read(whole .. '/results.csv'), 'resumed CSV differs from the uninterrupted one')
  H.assert(read(d .. '/summary.csv') == read(whole .. '/summary.csv'))
  H.assert(#runs_in(trace) == ran_before + 12 - count(done), 'the resume ran a configuration that had its row')
  -- a resume of a complete run runs nothing (not even setup) and keeps the results
  local n = #lines_of(trace)
  ok_run(('--radii=0.1,0.2,0.3 --resume --trace=%s --out=%s'):format(trace, d))
  H.assert(#lines_of(trace) == n, 'setup or runs happened for a complete run')
  H.assert(read(d .. '/results.csv') == read(whole .. '/results.csv'))
end)

H.test('a failing configuration stops the run naming it; the rows before stay; --resume goes on', function()
  local d = dir('failing')
  local out, rc = fake("--radii=0.1 --fail='defence=at radius=0.1 seed=2' --out=" .. d)
  H.assert(rc == 1 and out:find("configuration 'defence=at radius=0.1 seed=2': ", 1, true) and out:find('fake failure', 1, true), out)
  H.assert(count(rows_of(d)) == 1, 'the row before is lost')
  out, rc = fake('--radii=0.1 --bad_row --out=' .. dir('bad_row'))
  H.assert(rc == 1 and out:find("returned a string, not a row table", 1, true), out)
  ok_run('--radii=0.1 --resume --out=' .. d)
  H.assert(count(rows_of(d)) == 4 and exists(d .. '/results.csv'))
end)

-- ---------------------------------------------------------------- seeds from keys

H.test('a row depends on the run seed and its key only: adding configurations or running a subset changes no row', function()
  local small, big, some = dir('grid_small'), dir('grid_big'), dir('grid_some')
  ok_run('--radii=0.1,0.3 --out=' .. small)
  ok_run('--radii=0.05,0.1,0.2,0.3 --defences=rlp,at,lat --out=' .. big)
  ok_run("--radii=0.05,0.1,0.2,0.3 --defences=rlp,at,lat --only='defence=lat radius=0.3 seed=2,defence=at*0.1*' --out=" .. some)
  local a, b, c = rows_of(small), rows_of(big), rows_of(some)
  H.assert(count(a) == 8 and count(b) == 24 and count(c) == 3, ('%d %d %d rows'):format(count(a), count(b), count(c)))
  for k, v in pairs(a) do H.assert(b[k] == v, 'adding configurations changed ' .. k) end
  for k, v in pairs(c) do H.assert(b[k] == v, 'running a subset changed ' .. k) end
  H.assert(not exists(some .. '/results.csv'), 'a subset was merged as if complete')
  -- different keys and purposes give different seeds; another run seed, other rows
  local seeds = {}
  for _, v in pairs(b) do seeds[#seeds + 1] = json.decode(v).ft_seed end
  table.sort(seeds)
  for i = 2, #seeds do H.assert(seeds[i] ~= seeds[i - 1], 'two configurations share a fine-tuning seed') end
  H.assert(E.seeds.derive(1, 'k', 'finetune') ~= E.seeds.derive(1, 'k', 'attack'))
  H.assert(E.seeds.derive(1, 'k', 'finetune') ~= E.seeds.derive(2, 'k', 'finetune'))
  local other = dir('grid_seed2')
  ok_run('--seed=2 --radii=0.1,0.3 --out=' .. other)
  local o = rows_of(other)
  for k, v in pairs(a) do H.assert(o[k] ~= v, 'the run seed did not change ' .. k) end
end)

H.test('an expensive stage is cached under the options that made it and reused by later runs', function()
  local trace, cache = dir('cache_trace'), dir('stage_cache')
  local function run(extra)
    os.remove(trace)
    local d = dir('cached_' .. extra:gsub('[^%w]', '_'))
    ok_run(('--radii=0.1 --trace=%s --cache=%s --out=%s %s'):format(trace, cache, d, extra))
    local made = 0
    for _, l in ipairs(lines_of(trace)) do if l == 'made' then made = made + 1 end end
    return made, rows_of(d)
  end
  local made1, rows1 = run('')
  local made2, rows2 = run('--defences=lat') -- other options, the same stage
  local made3 = run('--scale=3')             -- another stage
  local made4 = run('--scale=3 --defences=at')
  H.assert(made1 == 1 and made2 == 0 and made3 == 1 and made4 == 0, ('made %d %d %d %d'):format(made1, made2, made3, made4))
  for k, v in pairs(rows2) do H.assert(rows1[k] == v, 'a row from the cached stage differs from the freshly made one: ' .. k) end
  local cache_get = require('lat.experiment.cache').get
  H.raises(function() cache_get(cache, 'x', { f = print }, function() return {} end) end, "cached 'x'", 'plain values')
  H.raises(function() cache_get(cache, 'a b', {}, function() return {} end) end, 'the name must be a word')
  -- plain values and models come back as they went in
  local v, info, found = cache_get(cache, 'numbers', { n = 1 }, function() return { 0.1 + 0.2, 1 / 3 }, { took = 2 } end)
  H.assert(v[1] == 0.1 + 0.2 and v[2] == 1 / 3 and info.took == 2 and found == false)
  v, info, found = cache_get(cache, 'numbers', { n = 1 }, function() error('made twice') end)
  H.assert(v[1] == 0.1 + 0.2 and found == true)
  local m = lat.models.MLP{ sizes = { 3, 2 }, rng = lat.Generator(1) }
  local got = cache_get(cache, 'model', { n = 1 }, function() return m end)
  H.assert(got ~= m and got.fc1.weight:sub(m.fc1.weight):abs():max():item() == 0, 'the model read back differs')
end)

-- ---------------------------------------------------------------- shards and merges

H.test('shards 0/2 and 1/2 into one folder, merged by the last, equal a single process byte for byte', function()
  local single = dir('single')
  ok_run('--radii=0.1,0.2,0.3 --out=' .. single)
  local d = dir('sharded')
  local out = ok_run('--radii=0.1,0.2,0.3 --shard=0/2 --out=' .. d)
  H.assert(out:find('shard 0/2', 1, true) and out:find('6 of 12 configurations have rows', 1, true), out)
  H.assert(not exists(d .. '/results.csv'), 'merged with half the rows')
  local config = read(d .. '/config.json')
  out = ok_run('--radii=0.1,0.2,0.3 --shard=1/2 --out=' .. d)
  H.assert(out:find('rows merged', 1, true), out)
  H.assert(read(d .. '/config.json') == config, 'the second shard rewrote config.json')
  H.assert(read(d .. '/results.csv') == read(single .. '/results.csv'), 'merged CSV differs')
  H.assert(read(d .. '/summary.csv') == read(single .. '/summary.csv'), 'merged summary differs')
  H.assert(exists(d .. '/shards/0-of-2.jsonl') and exists(d .. '/shards/1-of-2.jsonl'), 'per-shard logs')
  -- lat merge does it again, the same
  os.remove(d .. '/results.csv')
  out = H.run(("cd '%s' && '%s' merge '%s'"):format(TMP, LAT, d))
  H.assert(out:find('[exit 0]', 1, true) and read(d .. '/results.csv') == read(single .. '/results.csv'), out)
  -- shards started together (they race for config.json and the merge)
  local together = dir('together')
  H.run(("cd '%s' && for i in 0 1 2; do '%s' '%s' --radii=0.1,0.2,0.3 --shard=$i/3 --out='%s' > '%s.'$i 2>&1 & done; wait")
    :format(TMP, LAT, FAKE, together, together))
  H.assert(read(together .. '/results.csv') == read(single .. '/results.csv'), 'racing shards: ' .. read(together .. '.0'))
  -- a shard run twice without --resume is refused; with it, it skips its rows
  out = fake('--radii=0.1,0.2,0.3 --shard=1/2 --out=' .. d)
  H.assert(out:find('has rows for 6 of this shard', 1, true), out)
end)

H.test('a followup stage runs once the grid is complete (in the last shard), from its rows; merged as by one process', function()
  local single = dir('again_single')
  local out = ok_run('--again=7,8 --out=' .. single)
  H.assert(out:find('its followup stage: 2 configurations, 2 to run', 1, true), out)
  local again = lines_of(single .. '/again.csv')
  H.assert(#again == 3 and again[2]:find(' again seed=7,', 1, true), 'again.csv: ' .. table.concat(again, '\n'))
  H.assert(#lines_of(single .. '/results.csv') == 9, 'the followup rows went into results.csv')
  -- shards: the first ends before the grid is complete, the second runs the followup and merges
  local d = dir('again_sharded')
  out = ok_run('--again=7,8 --shard=0/2 --out=' .. d)
  H.assert(not out:find('followup', 1, true), 'the followup ran before the grid was complete:\n' .. out)
  out = ok_run('--again=7,8 --shard=1/2 --out=' .. d)
  H.assert(out:find('2 to run', 1, true) and out:find('rows merged', 1, true), out)
  for _, f in ipairs({ 'results.csv', 'summary.csv', 'again.csv' }) do
    H.assert(read(d .. '/' .. f) == read(single .. '/' .. f), f .. ' differs from the single process')
  end
  -- three shards at once: whichever find the grid complete share the followup
  local together = dir('again_together')
  H.run(("cd '%s' && for i in 0 1 2; do '%s' '%s' --again=7,8 --shard=$i/3 --out='%s' > '%s.'$i 2>&1 & done; wait")
    :format(TMP, LAT, FAKE, together, together))
  H.assert(read(together .. '/again.csv') == read(single .. '/again.csv'), 'racing shards: ' .. read(together .. '.0'))
  -- a missing followup row: the merge names it; --resume runs only it
  local gone
  for key in pairs(rows_of(single)) do if key:find(' again seed=8', 1, true) then gone = key end end
  os.execute(("rm '%s/rows/'*'again_seed=8'*"):format(single))
  out = H.run(("cd '%s' && '%s' merge '%s'"):format(TMP, LAT, single))
  H.assert(out:find('of its followup stage', 1, true) and out:find(gone, 1, true), out)
  out = ok_run('--again=7,8 --resume --out=' .. single)
  H.assert(out:find('2 configurations, 1 to run', 1, true) and read(single .. '/again.csv') == read(d .. '/again.csv'), out)
  -- a followup key that is a grid key is an error naming it
  out = fake('--again=7 --again_key=defence=at\\ radius=0.1\\ seed=1 --out=' .. dir('again_bad'))
  H.assert(out:find("followup: grid: the key 'defence=at radius=0.1 seed=1' appears twice", 1, true), out)
end)

H.test('a merge with missing shards names what is missing and loses nothing', function()
  local d = dir('half')
  ok_run('--radii=0.1,0.3 --shard=0/2 --out=' .. d)
  local before = rows_of(d)
  local out = H.run(("cd '%s' && '%s' merge '%s'"):format(TMP, LAT, d))
  H.assert(out:find('[exit 1]', 1, true) and out:find('has rows for 4 of 8 configurations', 1, true)
    and out:find("'defence=at radius=0.1 seed=2'", 1, true) and out:find('0-of-2 ended (4 rows)', 1, true), out)
  H.assert(not out:find('core.lua', 1, true), 'the message carries a library position: ' .. out)
  local now = rows_of(d)
  H.assert(count(now) == 4)
  for k, v in pairs(before) do H.assert(now[k] == v) end
  out = H.run(("'%s' merge '%s'"):format(LAT, dir('nowhere')))
  H.assert(out:find('[exit 1]', 1, true) and out:find('no run folder: it has no config.json', 1, true), out)
  H.raises(function() E.merge(d) end, 'missing')
end)

H.test('shards from the environment: Slurm arrays, Slurm tasks, Open MPI, PMI; errors name the variable', function()
  local function env(t) return function(k) return t[k] end end
  local cases = {
    { { SLURM_ARRAY_TASK_ID = '7', SLURM_ARRAY_TASK_MIN = '5', SLURM_ARRAY_TASK_COUNT = '4', SLURM_PROCID = '0', SLURM_NTASKS = '1' }, 2, 4 },
    { { SLURM_ARRAY_TASK_ID = '6', SLURM_ARRAY_TASK_MIN = '0', SLURM_ARRAY_TASK_COUNT = '4', SLURM_ARRAY_TASK_STEP = '2' }, 3, 4 },
    { { SLURM_PROCID = '3', SLURM_NTASKS = '4' }, 3, 4 },
    { { OMPI_COMM_WORLD_RANK = '1', OMPI_COMM_WORLD_SIZE = '2' }, 1, 2 },
    { { PMI_RANK = '0', PMI_SIZE = '3' }, 0, 3 },
    { {}, 0, 1 },
  }
  for i, c in ipairs(cases) do
    local s = E.shard.of('', env(c[1]))
    H.assert(s.index == c[2] and s.count == c[3], ('case %d: %d/%d'):format(i, s.index, s.count))
  end
  H.assert(E.shard.of('none', env({ OMPI_COMM_WORLD_RANK = '1', OMPI_COMM_WORLD_SIZE = '2' })).count == 1)
  H.assert(E.shard.of('1/3', env({ PMI_RANK = '0', PMI_SIZE = '2' })).index == 1, '--shard wins over the environment')
  H.raises(function() E.shard.of('', env({ SLURM_ARRAY_TASK_ID = '4', SLURM_ARRAY_TASK_MIN = '0', SLURM_ARRAY_TASK_COUNT = '4' })) end,
    'SLURM_ARRAY_TASK_ID=4', 'shard index 4 is out of range: with 4 shards it is 0 .. 3')
  H.raises(function() E.shard.of('', env({ SLURM_ARRAY_TASK_ID = '1' })) end, 'SLURM_ARRAY_TASK_MIN or SLURM_ARRAY_TASK_COUNT is not')
  H.raises(function() E.shard.of('', env({ OMPI_COMM_WORLD_RANK = '1' })) end, 'OMPI_COMM_WORLD_RANK is set, but OMPI_COMM_WORLD_SIZE is not')
  H.raises(function() E.shard.of('', env({ PMI_RANK = 'x', PMI_SIZE = '2' })) end, "PMI_RANK is 'x'")
  H.raises(function() E.shard.of('', env({ SLURM_PROCID = '2', SLURM_NTASKS = '2' })) end, 'out of range')
  -- processes started as an array's tasks, as an MPI job's ranks: the same CSV as one process
  local single = dir('single_env')
  ok_run('--radii=0.1,0.3 --out=' .. single)
  for e, engine in ipairs({ 'SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_ID=%d', 'OMPI_COMM_WORLD_SIZE=3 OMPI_COMM_WORLD_RANK=%d',
      'PMI_SIZE=3 PMI_RANK=%d', 'SLURM_NTASKS=3 SLURM_PROCID=%d' }) do
    local d = dir('env_' .. e)
    for i = 0, 2 do ok_run('--radii=0.1,0.3 --out=' .. d, engine:format(i)) end
    H.assert(read(d .. '/results.csv') == read(single .. '/results.csv'), engine)
  end
  -- a sharded run without --out: under Slurm the job's id names the folder, elsewhere it is an error
  local out, rc = fake('--radii=0.1', 'OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0')
  H.assert(rc == 1 and out:find('needs --out', 1, true), out)
  out = ok_run('--radii=0.1', 'SLURM_ARRAY_JOB_ID=4242 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=2 SLURM_ARRAY_TASK_ID=0')
  H.assert(out:find('runs/fake/slurm-4242', 1, true), out)
end)

-- ---------------------------------------------------------------- lat sweep --slurm

H.test('lat sweep --slurm writes an sbatch array script; its tasks, run as Slurm would, give the single-process CSV', function()
  local single = dir('single_sweep')
  ok_run('--radii=0.1,0.2,0.3 --out=' .. single)
  local d = dir('swept')
  local out = H.run(("cd '%s' && '%s' sweep --slurm --cpus=2 --time=0:10:00 --mem=1G --partition=debug --parallel=2 '%s' --radii=0.1,0.2,0.3 --out=%s")
    :format(TMP, LAT, FAKE, d))
  H.assert(out:find('[exit 0]', 1, true) and out:find('12 configurations of fake in 12 array tasks', 1, true), out)
  local script = read(d .. '/sweep.sbatch')
  for _, want in ipairs({ '#!/bin/bash\n', '#SBATCH --array=0-11%2\n', '#SBATCH --cpus-per-task=2\n', '#SBATCH --time=0:10:00\n',
      '#SBATCH --mem=1G\n', '#SBATCH --partition=debug\n', '#SBATCH --chdir=' .. TMP .. '\n', '--resume', '--threads=2',
      '#SBATCH --output=' .. d .. '/slurm/%A_%a.out', FAKE }) do
    H.assert(script:find(want, 1, true), ("script lacks '%s':\n%s"):format(want, script))
  end
  H.assert(exists(d .. '/config.json') and exists(d .. '/slurm'), 'the run folder and the log folder are made')
  local sh = H.write(dir('swept.sh'), script)
  for i = 0, 11 do
    local r = H.run(("cd '%s' && SLURM_ARRAY_JOB_ID=9 SLURM_ARRAY_TASK_ID=%d SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=12 bash '%s'"):format(TMP, i, sh))
    H.assert(r:find('[exit 0]', 1, true), r)
  end
  H.assert(read(d .. '/results.csv') == read(single .. '/results.csv'), 'the swept CSV differs')
  -- fewer tasks than configurations
  out = H.run(("cd '%s' && '%s' sweep --slurm --tasks=5 '%s' --radii=0.1,0.2,0.3 --out=%s"):format(TMP, LAT, FAKE, dir('swept5')))
  H.assert(read(dir('swept5') .. '/sweep.sbatch'):find('#SBATCH --array=0-4\n', 1, true), out)
  -- what lat sweep refuses
  for _, c in ipairs({ { "'" .. FAKE .. "' --shard=0/2", 'leave --shard out' }, { "'" .. FAKE .. "' --radii=x", "got 'x'" },
      { "'" .. FAKE .. "'", '--slurm', true }, { '', 'no recipe file given' }, { "--slurm '" .. dir('nope.lua') .. "'", 'does not exist' } }) do
    local words = c[3] and c[1] or ('--slurm ' .. c[1])
    local r = H.run(("cd '%s' && '%s' sweep %s"):format(TMP, LAT, words))
    H.assert(r:find('[exit 1]', 1, true) and r:find(c[2], 1, true), words .. ': ' .. r)
  end
  local help = H.run(("'%s' sweep --help"):format(LAT))
  H.assert(help:find('[exit 0]', 1, true) and help:find('--partition=', 1, true), help)
  -- --submit without Slurm says so (with Slurm installed, tests/slurm covers the real thing)
  if not H.run('command -v sbatch'):find('/', 1, true) then
    local r = H.run(("cd '%s' && '%s' sweep --slurm --submit '%s' --radii=0.1 --out=%s"):format(TMP, LAT, FAKE, dir('submit')))
    H.assert(r:find('[exit 1]', 1, true) and r:find('sbatch failed', 1, true) and r:find('sweep.sbatch', 1, true), r)
  end
end)

-- ---------------------------------------------------------------- recipes that are malformed

H.test('a malformed recipe or grid is an error naming the problem', function()
  local function recipe(t)
    local r = { name = 'bad', grid = { { key = 'a' } }, run = function() return {} end }
    for k, v in pairs(t) do r[k] = v end
    return r
  end
  local cases = {
    { { grid = { { key = 'a' }, { key = 'b' }, { key = 'a' } } }, "the key 'a' appears twice (entries 1 and 3)" },
    { { grid = { { key = 'a' }, 'b' } }, 'entry 2 is a string, not a configuration table' },
    { { grid = { { key = 'a' }, { name = 'b' } } }, 'entry 2 has no key' },
    { { grid = { a = { key = 'a' } } }, "it has an entry named 'a'" },
    { { grid = {} }, 'no configurations' },
    { { grid = { { key = 'a,b' } } }, 'has a comma' },
    { { grid = function() return 'x' end }, 'expected a list of configurations, got a string' },
    { { summarize = function() end }, "unknown field 'summarize'" },
    { { run = 'x' }, 'run must be a function' },
    { { name = 'a b' }, 'needs a name' },
    { { options = { seed = { 1, 'mine' } } }, "the option 'seed' is the scaffold's own" },
    { { options = { lr = 0.1 } }, "option 'lr' must be declared as { default, 'description'" },
    { { options = { lr = { 0.1 } } }, "option 'lr' has no description" },
    { { options = { lr = { -1, 'rate', 'positive' } } }, 'option --lr expects a finite number > 0, got -1' },
    { { options = { n = { 1, 'n' } }, quick = { m = 2 } }, "its quick values name no option 'm'" },
  }
  for _, c in ipairs(cases) do
    H.raises(function() E.plan(recipe(c[1]), { '--quick' }) end, c[2])
  end
  H.raises(function() E.product({ a = {} }) end, "'a' has no values")
  local g = E.product({ defence = 'lat' }, { layer = { 'l1', 'l2' }, eps = { 0.1, 0.25 } })
  H.assert(#g == 4 and g[1].key == 'defence=lat eps=0.1 layer=l1' and g[4].key == 'defence=lat eps=0.25 layer=l2' and g[2].layer == 'l2')
  H.assert(#E.join(g, { { key = 'clean' } }) == 5)
end)

H.finish()
