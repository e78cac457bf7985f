-- Same seed, same bytes: two runs with the same seed and one thread write identical files
-- (config.json, metrics.jsonl, CSVs, checkpoints with their headers and metadata). The only
-- fields that vary are the wall times, which a test must exclude: in metrics.jsonl the keys
-- VOLATILE lists (the experiment recipes' *_seconds fields and CSV columns too); config.json
-- holds none.
local H = require 'harness'

local LAT = arg[-1]
local tmp = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/determinism'
local repo = debug.getinfo(1, 'S').source:match('^@(.*/)tests/') or '../'
local ENV = 'LAT_NUM_THREADS=1 LAT_PROGRESS=plain '

local VOLATILE = { time = true, train_time = true, train_seconds = true, eval_seconds = true, pretrain_seconds = true }

-- the text of a JSON-lines file with the volatile number fields cut out, everything else
-- (the key order too) kept byte for byte
local function without_volatile(text)
  local cut = text:gsub('"([%w_]+)":(-?[%d.eE+-]+),?', function(k) if VOLATILE[k] then return '' end end)
  return (cut:gsub(',}', '}'))
end

-- runs cmd (with its output folder at dir) twice and compares every file of the two folders
local function twice(dir, cmd, files)
  local outs = {}
  for i = 1, 2 do
    os.execute(('rm -rf %s %s.%d'):format(dir, dir, i))
    local out = H.run(ENV .. cmd)
    H.assert(out:find('[exit 0]', 1, true), out)
    os.execute(('mv %s %s.%d'):format(dir, dir, i))
    outs[i] = dir .. '.' .. i
  end
  for _, f in ipairs(files) do
    local a, b = H.read(outs[1] .. '/' .. f), H.read(outs[2] .. '/' .. f)
    if f:match('%.jsonl$') then a, b = without_volatile(a), without_volatile(b) end
    H.assert(#a > 0, f .. ' is empty')
    H.assert(a == b, ('%s differs between two runs with the same seed:\n%s\n%s'):format(f, a:sub(1, 400), b:sub(1, 400)))
  end
end

os.execute('mkdir -p ' .. tmp)

H.test('train_fashion --quick twice, one thread: identical config, metrics and checkpoints', function()
  twice(tmp .. '/fashion', ('%s %srecipes/train_fashion.lua --quick --threads=1 --out=%s/fashion'):format(LAT, repo, tmp),
    { 'config.json', 'metrics.jsonl', 'model.safetensors', 'optimizer.safetensors' })
end)

H.test('demo --quick twice: identical files', function()
  twice(tmp .. '/demo', ('%s %srecipes/demo.lua --quick --out=%s/demo'):format(LAT, repo, tmp), { 'config.json', 'metrics.jsonl' })
end)

-- the writers themselves, with enough keys that a table's traversal order differs between
-- processes: config.json, a metrics line, a CSV and a checkpoint's metadata
H.test('run folders, CSVs and checkpoint metadata: the same bytes in every process', function()
  local script = H.write(tmp .. '/writers.lua', [[
local lat = require 'lat'
local dir = arg[1]
local config = { seed = 1 }
for i = 1, 40 do config['option_' .. i] = i; config[('nested_%d'):format(i)] = { a = i, b = { x = 1, y = 2 } } end
local run = lat.log.run_dir(dir, config)
run:jsonl('metrics'):write(config)
local csv = run:csv('results', { 'name', 'value', 'note' })
for i = 1, 5 do csv:write{ name = 'row' .. i, value = i / 3, note = 'a, "quoted" note' } end
local meta = {}
for i = 1, 40 do meta['key_' .. i] = tostring(i) end
lat.save(run:path('tensors.safetensors'), { b = lat.ones(2), a = lat.zeros(3) }, { metadata = meta })
local m = lat.models.MLP{ sizes = { 4, 8, 2 } }
lat.models.save(m, run:path('model.safetensors'), { note = 'x', seed = 1 })
run:close()
]])
  twice(tmp .. '/writers', ('%s %s %s/writers'):format(LAT, script, tmp),
    { 'config.json', 'metrics.jsonl', 'results.csv', 'tensors.safetensors', 'model.safetensors' })
  local text = H.read(tmp .. '/writers.1/config.json')
  H.assert(text:find('^{"nested_1":{"a":1,"b":{"x":1,"y":2}},"nested_10"'), 'config.json keys are not sorted: ' .. text:sub(1, 120))
end)

H.finish()
