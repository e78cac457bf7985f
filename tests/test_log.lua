-- lat.log: JSON lines and CSV that Python reads back, run folders, the progress bar's modes.
local H = require 'harness'
local lat = require 'lat'

local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local LAT = arg[-1]
local tmp = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/test_log'
os.execute('rm -rf ' .. tmp)
assert(require('lat.core.sys').mkdir_p(tmp))

local read = H.read

-- runs a Python snippet with the path as sys.argv[1]; returns its stdout
local function python(code, path)
  local script = tmp .. '/check.py'
  local f = assert(io.open(script, 'w'))
  f:write(code)
  f:close()
  local p = assert(io.popen(('%s %s %s 2>&1'):format(PYTHON, script, path)))
  local out = p:read('*a')
  p:close()
  return out
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

H.test('run_dir makes nested folders and config.json', function()
  local run = lat.log.run_dir(tmp .. '/a/b/run1', { lr = 0.1, name = 'x', layers = { 2, 3 }, bad = 0 / 0 })
  H.assert(run:path('m.png') == tmp .. '/a/b/run1/m.png')
  local out = python([[
import json, sys
c = json.load(open(sys.argv[1]))
print(c['lr'], c['name'], c['layers'], c['bad'])
]], run:path('config.json'))
  H.assert(out == '0.1 x [2, 3] None\n', out)
  H.assert(run:jsonl('metrics') == run:jsonl('metrics.jsonl'), 'one writer per file')
  run:close()
end)

H.test('JSON lines: one object per line, nan and inf as null, tensors as numbers', function()
  local run = lat.log.run_dir(tmp .. '/run2')
  local w = run:jsonl('metrics')
  w:write{ epoch = 1, loss = 0.25, acc = lat.tensor(0.5), nan = 0 / 0, inf = math.huge, ninf = -math.huge }
  -- flushed at once: readable before close
  H.assert(count(read(run:path('metrics.jsonl')), '\n') == 1, 'flushed')
  w:write{ epoch = 2, text = 'say "hi"\n\tand go', list = { 1, 0 / 0, 3 }, nested = { a = { b = 1e-30 } },
    big = lat.tensor{ 1, 2 } }
  run:close()
  local out = python([[
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(sorted(d.items()))
]], run:path('metrics.jsonl'))
  H.assert(out:find("[('acc', 0.5), ('epoch', 1), ('inf', None), ('loss', 0.25), ('nan', None), ('ninf', None)]", 1, true), out)
  H.assert(out:find("('big', [1, 2]), ('epoch', 2), ('list', [1, None, 3]), ('nested', {'b': 1e-30}", 1, true)
    or out:find("('nested', {'a': {'b': 1e-30}})", 1, true), out)
  H.assert(out:find([[('text', 'say "hi"\n\tand go')]], 1, true), out)
end)

H.test('CSV: header, quoting, numbers that read back exactly', function()
  local run = lat.log.run_dir(tmp .. '/run3')
  local w = run:csv('table', { 'name', 'value', 'note' })
  w:write{ name = 'a,b', value = 0.1, note = 'he said "x"' }
  w:write{ name = 'nan', value = 0 / 0 }
  w:write{ 'third', 1 / 3, 'line\nbreak' }
  run:close()
  local out = python([[
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline='')))
print(rows[0]); print(rows[1]); print(rows[2]); print(rows[3][0], float(rows[3][1]) == 1 / 3, repr(rows[3][2]))
]], run:path('table.csv'))
  H.assert(out == "['name', 'value', 'note']\n['a,b', '0.1', 'he said \"x\"']\n['nan', 'nan', '']\nthird True 'line\\nbreak'\n", out)
end)

H.test('read_csv reads back what csv wrote, and what Python wrote', function()
  local run = lat.log.run_dir(tmp .. '/run4')
  local w = run:csv('table', { 'name', 'value', 'note' })
  w:write{ name = 'a,b', value = 0.1, note = 'he said "x"' }
  w:write{ name = 'gap', value = 1 / 0 }
  w:write{ 'third', 1 / 3, 'line\nbreak' }
  run:close()
  local rows, columns = lat.log.read_csv(run:path('table.csv'))
  H.assert(table.concat(columns, '|') == 'name|value|note' and #rows == 3, #rows)
  H.assert(rows[1].name == 'a,b' and rows[1].value == 0.1 and rows[1].note == 'he said "x"', lat.repr(rows[1]))
  H.assert(rows[2].value == math.huge and rows[2].note == nil, lat.repr(rows[2]))
  H.assert(rows[3].value == 1 / 3 and rows[3].note == 'line\nbreak', lat.repr(rows[3]))
  python([==[
import csv, sys
with open(sys.argv[1], 'w', newline='') as f:
    csv.writer(f).writerows([['k', 'v'], ['x "y", z', '2.5'], ['', '-7']])
]==], tmp .. '/py.csv')
  rows = lat.log.read_csv(tmp .. '/py.csv')
  H.assert(#rows == 2 and rows[1].k == 'x "y", z' and rows[1].v == 2.5 and rows[2].k == nil and rows[2].v == -7,
    lat.repr(rows))
  H.raises(function() lat.log.read_csv(tmp .. '/no_such.csv') end, 'read_csv: cannot open')
end)

H.test('progress bar in a notebook: its lines go to the display hook under one id per bar', function()
  local shown = {}
  lat.log.progress.display = function(id, text) shown[#shown + 1] = { id = id, text = text } end
  local ok, err = pcall(function()
    local bar = lat.log.progress{ label = 'nb', total = 100, mode = 'display' }
    for i = 1, 100 do bar:update(i) end
    bar:finish()
    lat.log.progress{ label = 'second', total = 1, mode = 'display' }:finish()
  end)
  lat.log.progress.display = nil
  H.assert(ok, err)
  H.assert(#shown >= 3 and shown[1].text:find('^nb  %[') and shown[1].text:find('1/100', 1, true), lat.repr(shown))
  H.assert(shown[#shown - 1].text:find('100/100', 1, true) and shown[#shown - 1].id == shown[1].id, lat.repr(shown))
  H.assert(shown[#shown].text:find('^second') and shown[#shown].id ~= shown[1].id, lat.repr(shown))
  -- without the hook (outside a notebook) the display mode falls back to the usual choice
  H.assert(lat.log.progress{ mode = 'display', stream = io.stdout }.mode == 'plain')
end)

H.test('progress bar off a terminal: a line per tenth at most, then the final line', function()
  local path = tmp .. '/bar.txt'
  local f = assert(io.open(path, 'w'))
  local bar = lat.log.progress{ label = 'fast', total = 1000, stream = f, min_gap = 0 }
  H.assert(bar.mode == 'plain')
  for i = 1, 1000 do bar:update(i, { loss = 1 / i }) end
  bar:finish()
  f:close()
  local text = read(path)
  H.assert(count(text, '\n') == 10 and not text:find('\r', 1, true), text)
  H.assert(text:find('fast  500/1000  50%', 1, true) and text:find('ETA', 1, true), text)
  H.assert(text:find('fast  1000/1000 100%%  [%d.kM]+ it/s  in 0:00  loss=0.001\n$'), text)
  -- the default min_gap: a bar faster than a second writes its final line only
  f = assert(io.open(path, 'w'))
  bar = lat.log.progress{ label = 'quick', total = 50, stream = f, unit = 'batch' }
  for i = 1, 50 do bar:update(i) end
  bar:finish{ acc = 0.5 }
  f:close()
  text = read(path)
  H.assert(count(text, '\n') == 1 and text:find('50/50 100%%  [%d.kM]+ batch/s  in 0:00  acc=0.5\n$'), text)
end)

H.test('progress bar modes: tty redraws in place, off is silent, unknown total', function()
  local path = tmp .. '/bar_tty.txt'
  local f = assert(io.open(path, 'w'))
  local bar = lat.log.progress{ label = 'tty', total = 4, stream = f, mode = 'tty' }
  bar.interval = 0
  for i = 1, 4 do bar:update(i) end
  bar:finish()
  f:close()
  local text = read(path)
  H.assert(count(text, '\r') == 5 and count(text, '\n') == 1 and text:find('[####################]', 1, true), text)
  f = assert(io.open(path, 'w'))
  bar = lat.log.progress{ stream = f, mode = 'off' }
  bar:update(1); bar:finish()
  f:close()
  H.assert(read(path) == '')
  f = assert(io.open(path, 'w'))
  bar = lat.log.progress{ label = 'open', stream = f }
  for i = 1, 3 do bar:update() end
  bar:finish()
  f:close()
  H.assert(read(path):find('^open  3  [%d.kM]+ it/s  in 0:00\n$'), read(path))
end)

H.test('progress bar on stderr of a child with stderr in a file picks the plain mode', function()
  local path = tmp .. '/child_err.txt'
  os.execute(([[env -u LAT_PROGRESS %s -e 'local b = lat.log.progress{total = 3}; for i = 1, 3 do b:update(i) end; b:finish()' 2> %s]])
    :format(LAT, path))
  local text = read(path)
  H.assert(count(text, '\n') == 1 and not text:find('\r', 1, true), text)
end)

H.finish()
