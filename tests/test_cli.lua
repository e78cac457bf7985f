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
