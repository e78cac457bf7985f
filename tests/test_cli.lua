-- The lat command: --help, --version, -e, scripts with arguments, and the REPL through
-- standard input and through a pseudo-terminal.
local H = require 'harness'
local lat = require 'lat'

local LAT = arg[-1]
local tmpdir = os.getenv('LAT_TEST_TMP') or '/tmp'

local run, write = H.run, H.write

H.test('--help and --version', function()
  local out = run(LAT .. ' --help')
  H.assert(out:find('usage: lat', 1, true) and out:find('[exit 0]', 1, true), out)
  out = run(LAT .. ' --version')
  H.assert(out:match('^lat %d+%.%d+%.%d+') and out:find('LuaJIT', 1, true), out)
  out = run(LAT .. ' --frobnicate')
  H.assert(out:find("unknown option '--frobnicate'", 1, true) and out:find('[exit 2]', 1, true), out)
end)

H.test('--help lists every environment variable lat reads; --version names the Lua library', function()
  local help = run(LAT .. ' --help')
  local names, files = {}, io.popen("grep -rhoE \"getenv *\\( *['\\\"][A-Z_0-9]+\" ../lua ../core")
  for line in files:lines() do names[line:match('[A-Z_0-9]+$')] = true end
  files:close()
  -- lat.dist and lat.experiment.shard read their launchers' variables from tables
  for _, f in ipairs({ '../lua/lat/dist/init.lua', '../lua/lat/experiment/shard.lua' }) do
    for name in H.read(f):gmatch("'((%u+)_[%u_]+)'") do
      if name:match('^SLURM_') or name:match('^OMPI_') or name:match('^PMI_') then names[name] = true end
    end
  end
  local n = 0
  for name in pairs(names) do
    n = n + 1
    local listed = help:find(name, 1, true) or (name:match('^SLURM_ARRAY_TASK_') and help:find('_' .. name:match('_(%u+)$'), 1, true))
    H.assert(listed, name .. ' is read but lat --help does not list it:\n' .. help)
  end
  H.assert(n >= 20 and names.LAT_NUM_THREADS and names.LAT_DATA, 'the scan found the variables: ' .. n)
  local version = run(LAT .. ' --version')
  local src = io.popen('cd .. && pwd -P'):read('*l')
  H.assert(version:find('Lua library: ' .. src .. '/lua (build tree)', 1, true), version)
  H.assert(version:find('\nCPU: %d+ cores online'), version)
end)

H.test('errors show the user\'s frames; lat\'s own are hidden unless LAT_TRACEBACK=full', function()
  local script = write(tmpdir .. '/tb_script.lua', table.concat({
    'local lat = require "lat"',
    'local function forward(model)',
    '  local y = model(lat.zeros(4, 5))',
    '  return y',
    'end',
    'forward(lat.models.MLP{sizes = {2, 3, 1}})',
  }, '\n'))
  local out = run(LAT .. ' ' .. script)
  H.assert(out:find('tb_script.lua:3: in layer', 1, true), 'the message names the user\'s line: ' .. out)
  local trace = out:match('stack traceback:\n(.*)') or ''
  local first = trace:match('^[^\n]+') or ''
  H.assert(first:find('tb_script.lua:3: in function', 1, true), 'the user\'s frame comes first: ' .. out)
  H.assert(trace:find('tb_script.lua:6: in main chunk', 1, true), out)
  H.assert(not trace:find('/lua/lat/', 1, true) and not trace:find('[C]', 1, true), 'internal frames hidden: ' .. out)
  H.assert(trace:find('frames inside lat and C hidden; LAT_TRACEBACK=full', 1, true), out)
  H.assert(out:find('[exit 1]', 1, true), out)
  out = run('LAT_TRACEBACK=full ' .. LAT .. ' ' .. script)
  H.assert(out:find('/lua/lat/nn/module.lua:', 1, true) and out:find("[C]: in function 'error'", 1, true), out)
end)

H.test('-e evaluates a snippet with lat loaded', function()
  local out = run(LAT .. [[ -e 'print(lat.ones(2, 2):sum():item())']])
  H.assert(out:find('^4%.?0?\n') and out:find('[exit 0]', 1, true), out)
  out = run(LAT .. [[ -e 'error("broken")']])
  H.assert(out:find('broken', 1, true) and out:find('[exit 1]', 1, true), out)
end)

H.test('os.exit closes the Lua state (finalisers run: a clean exit for LeakSanitizer) and keeps its status', function()
  local finaliser = "local p = newproxy(true); getmetatable(p).__gc = function() io.write('finalised ') end; "
  local out = run(LAT .. " -e \"" .. finaliser .. "os.exit(3)\"")
  H.assert(out:find('finalised [exit 3]', 1, true), out)
  -- (its status is LeakSanitizer's in the sanitizer build, which reports the heap left behind)
  out = run(LAT .. " -e \"" .. finaliser .. "os.exit(true, false)\"")
  H.assert(not out:find('finalised', 1, true), out)
end)

H.test('a script sees its arguments and lat.args parses them', function()
  local script = write(tmpdir .. '/args_script.lua', [[
local lat = require 'lat'
local opt = lat.args{ epochs = 3, lr = 0.1, quick = false, name = 'x' }
print(arg[0]:match('args_script.lua') ~= nil, #arg, opt.epochs, opt.lr, opt.quick, opt.name, opt[1])
]])
  local out = run(LAT .. ' ' .. script .. ' --epochs=5 --lr 0.01 --quick --name=run1 extra')
  H.assert(out:find('true\t6\t5\t0.01\ttrue\trun1\textra', 1, true), out)
  out = run(LAT .. ' ' .. script .. ' --epoch=5')
  H.assert(out:find("unknown option '--epoch'", 1, true) and out:find('[exit 1]', 1, true), out)
end)

H.test('REPL over standard input: values, tensors, errors, multi-line', function()
  local input = write(tmpdir .. '/repl_in.txt', table.concat({
    '1 + 2',
    'x = lat.tensor{{1, 2}, {3, 4}}',
    'x * 2',
    'error("oops")',
    'for i = 1, 2 do',
    '  print("line", i)',
    'end',
    'x:sum():item()',
  }, '\n') .. '\n')
  local out = run(LAT .. ' < ' .. input)
  H.assert(out:find('3\n', 1, true), 'value printed: ' .. out)
  H.assert(out:find('tensor({{2., 4.},', 1, true) and out:find('shape={2, 2}', 1, true), 'tensor printed: ' .. out)
  H.assert(out:find('oops', 1, true), 'error printed: ' .. out)
  H.assert(out:find('line\t1\nline\t2', 1, true), 'multi-line chunk: ' .. out)
  H.assert(out:find('\n10\n', 1, true), 'still running after the error: ' .. out)
  H.assert(out:find('[exit 0]', 1, true), out)
end)

H.test('REPL: locals persist across lines, help, print(model), summary and short tracebacks', function()
  local input = write(tmpdir .. '/repl_locals.txt', table.concat({
    'local x = 1',
    'print("x is", x)',
    'local function twice(v) return 2 * v end',
    'twice(x + 20)',
    'local m = lat.models.MLP{sizes = {2, 3, 1}}',
    'print(m)',
    'help()',
    'help(lat.models.ResNet)',
    'm:summary()',
    'm(lat.zeros(4, 5))',
    'print("global x:", rawget(_G, "x"))',
  }, '\n') .. '\n')
  local out = run(LAT .. ' < ' .. input)
  H.assert(out:find('x is\t1', 1, true), 'the local of line 1 is seen on line 2: ' .. out)
  H.assert(out:find('\n42\n', 1, true), 'a local function: ' .. out)
  H.assert(out:find('MLP(  -- 13 parameters\n  (flatten): Flatten(first=2)\n', 1, true), 'print(model) is a tree: ' .. out)
  H.assert(out:find('lat.attack      one projected-gradient attack', 1, true), 'help(): ' .. out)
  H.assert(out:find('ResNet(opts) (class', 1, true), 'help(class): ' .. out)
  H.assert(out:find('summary: needs an example input', 1, true), 'summary(): ' .. out)
  H.assert(out:find("stdin:1: in layer 'fc1' (Linear)", 1, true) and not out:find('/lua/lat/', 1, true)
    and not out:find('[C]', 1, true), 'short tracebacks: ' .. out)
  H.assert(out:find('global x:\tnil', 1, true), 'locals stay out of the globals: ' .. out)
end)

H.test('REPL in a pseudo-terminal: prompt, line editing, history kept across sessions', function()
  local hist = tmpdir .. '/lat_history_test'
  os.remove(hist)
  local lines = write(tmpdir .. '/pty_lines.txt', table.concat({
    'y = lat.arange(3)',
    'y + 1',
    'nosuchfunction()',
    'print("alive")',
    'print("from" .. " session 1")',
  }, '\n'))
  local out = run(('LAT_HISTORY=%s /usr/bin/python3 pty_drive.py %s %s'):format(hist, lines, LAT))
  H.assert(out:find('> ', 1, true), 'prompt shown: ' .. out)
  H.assert(out:find('tensor({1., 2., 3.}', 1, true), 'tensor printed: ' .. out)
  H.assert(out:find('nosuchfunction', 1, true), 'error shown: ' .. out)
  H.assert(out:find('alive', 1, true), 'still running after the error: ' .. out)
  H.assert(out:find('[exit 0]', 1, true), out)
  local f = io.open(hist)
  H.assert(f, 'history file written')
  local text = f:read('*a'):gsub('\\040', ' ')
  f:close()
  H.assert(text:find('y + 1', 1, true), 'history holds the commands: ' .. text)
  -- a new session recalls the last one's commands: Up arrow, then Enter, runs the last line again
  local up = write(tmpdir .. '/pty_up.txt', '\27[A\n')
  out = run(('LAT_HISTORY=%s /usr/bin/python3 pty_drive.py %s %s'):format(hist, up, LAT))
  H.assert(out:find('from session 1', 1, true), 'Up arrow recalled the previous session: ' .. out)
end)

H.test('REPL in a pseudo-terminal: Tab completes names and fields, help prints documentation', function()
  local lines = write(tmpdir .. '/pty_tab.txt', table.concat({
    'f = lat.attack.pg\t',
    'print("same:", f == lat.attack.pgd)',
    'm = lat.models.MLP{sizes = {2, 3, 1}}',
    'g = m.flat\t',
    'print("layer:", g == m.flatten)',
    'help(lat.attack.pgd)',
  }, '\n'))
  local out = run(('LAT_HISTORY=%s/hist_tab /usr/bin/python3 pty_drive.py %s %s'):format(tmpdir, lines, LAT))
  H.assert(out:find('same:\ttrue', 1, true), 'Tab completed lat.attack.pgd: ' .. out)
  H.assert(out:find('layer:\ttrue', 1, true), 'Tab completed a layer name: ' .. out)
  H.assert(out:find('pgd(model, batch, threat, opts)', 1, true), 'help printed the documentation: ' .. out)
end)

H.finish()
