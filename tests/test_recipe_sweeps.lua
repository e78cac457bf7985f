-- The paper recipes as sweeps (lat.experiment), in their --quick form: a run killed with kill -9
-- mid-sweep and resumed, shards 0/2 + 1/2 merged, and the two ranks of mpirun -np 2 give the
-- results of one uninterrupted process; a second run finds the trojaned model in the cache;
-- adding a configuration changes no other row. Results are compared without their time columns
-- (*_seconds), which differ between runs. Without liblat_mpi the mpirun case says why and the test
-- exits 77 (skipped) after the others.
local H = require 'harness'
local lat = require 'lat'
local json = require 'lat.io.json'

local function absolute(p) return p:sub(1, 1) == '/' and p or (os.getenv('PWD') .. '/' .. p:gsub('^%./', '')) end
local LAT = absolute(arg[-1])
local repo = absolute(debug.getinfo(1, 'S').source:match('^@(.*/)tests/') or '../')
local TMP = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/recipe_sweeps'
os.execute(("rm -rf '%s' && mkdir -p '%s'"):format(TMP, TMP))
local ENV = 'LAT_NUM_THREADS=1 LAT_PROGRESS=plain'
local CACHE = TMP .. '/cache'

-- the shell command that runs a recipe --quick with a run folder in TMP (launched by launcher)
local function command(recipe, out, words, launcher)
  return ("%s %s '%s' '%srecipes/%s.lua' --quick --threads=1 --cache='%s' --out='%s/%s' %s"):format(ENV, launcher or '', LAT, repo, recipe,
    CACHE, TMP, out, words or '')
end

local function run(recipe, out, words)
  local text = H.run(command(recipe, out, words))
  H.assert(text:find('[exit 0]', 1, true), text, 2)
  return text
end

local function volatile(name) return name:find('seconds', 1, true) ~= nil end

-- a CSV's text with its time columns left out
local function results(path)
  local rows, columns = lat.log.read_csv(path)
  local lines = {}
  for _, r in ipairs(rows) do
    local fields = {}
    for _, c in ipairs(columns) do
      if not volatile(c) then fields[#fields + 1] = c .. '=' .. (type(r[c]) == 'number' and ('%.17g'):format(r[c]) or tostring(r[c])) end
    end
    lines[#lines + 1] = table.concat(fields, ',')
  end
  return table.concat(lines, '\n')
end

local function same_csv(a, b, what)
  local x, y = results(a), results(b)
  H.assert(#x > 0, a .. ' is empty', 2)
  H.assert(x == y, ('%s differs:\n%s\n--- vs ---\n%s'):format(what, x, y), 2)
end

-- a run's rows (rows/*.json): key -> the row's JSON without its time fields
local function rows_of(dir)
  local out, n = {}, 0
  local p = io.popen(("ls '%s/rows'"):format(dir))
  for name in p:lines() do
    local rec = json.decode(H.read(dir .. '/rows/' .. name))
    for k in pairs(rec.row) do if volatile(k) then rec.row[k] = nil end end
    out[rec.key], n = json.encode(rec.row, { exact = true }), n + 1
  end
  p:close()
  return out, n
end

H.test('lm_trojans --quick killed with kill -9 mid-sweep, then --resume: the results of an uninterrupted run', function()
  local text = run('lm_trojans', 'whole', '--seeds=4')
  H.assert(text:find('pretrained here', 1, true), 'the first run should pretrain:\n' .. text)
  local _, total = rows_of(TMP .. '/whole')
  -- killed as soon as its first row is written: the rest of the sweep is in flight
  local killed = TMP .. '/killed'
  H.run(("%s > '%s.log' 2>&1 & pid=$!; while kill -0 $pid 2>/dev/null && [ -z \"$(ls '%s/rows' 2>/dev/null)\" ]; do sleep 0.02; done; kill -9 $pid")
    :format(command('lm_trojans', 'killed', '--seeds=4'), killed, killed))
  local _, before = rows_of(killed)
  H.assert(before >= 1 and before < total, ('the kill came at %d of %d rows, not mid-sweep'):format(before, total))
  H.assert(not H.exists(killed .. '/results.csv'), 'a killed run merged')
  text = run('lm_trojans', 'killed', '--seeds=4 --resume')
  H.assert(text:find(('%d to run, %d done before'):format(total - before, before), 1, true), text)
  H.assert(text:find('found in the cache', 1, true), 'the resumed run should find the pretrained model in the cache:\n' .. text)
  same_csv(TMP .. '/whole/results.csv', killed .. '/results.csv', 'results.csv after kill -9 and --resume')
  same_csv(TMP .. '/whole/summary.csv', killed .. '/summary.csv', 'summary.csv after kill -9 and --resume')
end)

H.test('lm_trojans --quick as shards 0/2 and 1/2 at once, merged by the last: the single-process results', function()
  local a = io.popen(command('lm_trojans', 'sharded', '--seeds=4 --shard=0/2') .. ' 2>&1; echo "[exit $?]"')
  local b = io.popen(command('lm_trojans', 'sharded', '--seeds=4 --shard=1/2') .. ' 2>&1; echo "[exit $?]"')
  local out = a:read('*a') .. b:read('*a')
  a:close(); b:close()
  H.assert(select(2, out:gsub('%[exit 0%]', '')) == 2, out)
  H.assert(out:find('rows merged into', 1, true), 'the last shard did not merge:\n' .. out)
  same_csv(TMP .. '/whole/results.csv', TMP .. '/sharded/results.csv', 'the merged results.csv')
  same_csv(TMP .. '/whole/summary.csv', TMP .. '/sharded/summary.csv', 'the merged summary.csv')
  H.assert(H.read(TMP .. '/whole/generations.txt') == H.read(TMP .. '/sharded/generations.txt'), 'generations.txt differs')
  os.remove(TMP .. '/sharded/results.csv')
  H.assert(H.run(("%s '%s' merge '%s/sharded'"):format(ENV, LAT, TMP)):find('[exit 0]', 1, true), 'lat merge failed')
  same_csv(TMP .. '/whole/results.csv', TMP .. '/sharded/results.csv', 'results.csv from lat merge')
end)

-- Before the rows took their seeds from their keys, the fine-tunes of text_trojans were seeded by
-- their place in the grid: a second AT radius changed every LAT row.
H.test('text_trojans --quick: adding an AT radius changes no other row', function()
  run('text_trojans', 'one_radius', '--at_eps=0.1')
  run('text_trojans', 'two_radii', '--at_eps=0.1,0.05')
  local a, na = rows_of(TMP .. '/one_radius')
  local b, nb = rows_of(TMP .. '/two_radii')
  H.assert(nb > na, ('the second grid has %d rows, the first %d'):format(nb, na))
  for key, row in pairs(a) do
    if b[key] then H.assert(row == b[key], ("the row of '%s' changed:\n%s\n%s"):format(key, row, b[key])) end
  end
  for _, key in ipairs({ 'undefended', 'clean fine-tune seed=1', 'RLP h.0 0.2 seed=1', 'AT embedding 0.1 seed=1', 'LAT h.1 0.1 seed=1' }) do
    H.assert(a[key] and b[key], ("'%s' is not in both grids"):format(key))
  end
end)

local MPIRUN = '< /dev/null timeout -k 5 300 ' .. (os.getenv('LAT_MPIEXEC') or 'mpirun') .. ' --oversubscribe --allow-run-as-root -np 2'
local mpi, why = lat.dist.available()
if not mpi then
  print('skipped: lm_trojans under mpirun, as this lat has no liblat_mpi: ' .. tostring(why))
  print(('%d passed, %d failed'):format(H.passed, H.failed))
  os.exit(H.failed == 0 and 77 or 1, true)
end

H.test('lm_trojans --quick under mpirun -np 2: the ranks are the shards; merged, the single-process results', function()
  local out = H.run(command('lm_trojans', 'ranks', '--seeds=4', MPIRUN))
  H.assert(out:find('[exit 0]', 1, true) and out:find('OMPI_COMM_WORLD_RANK=1 of OMPI_COMM_WORLD_SIZE=2', 1, true), out)
  H.assert(H.exists(TMP .. '/ranks/shards/0-of-2.jsonl') and H.exists(TMP .. '/ranks/shards/1-of-2.jsonl'), 'the ranks were not the shards')
  same_csv(TMP .. '/whole/results.csv', TMP .. '/ranks/results.csv', 'results.csv of the two ranks')
  -- --shard=none would have each rank run (and write) every configuration
  out = H.run(command('lm_trojans', 'ranks_none', '--shard=none', MPIRUN))
  H.assert(out:find('leave --shard out, so that the ranks are the shards', 1, true), out)
end)

H.finish()
