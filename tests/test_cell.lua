-- lat.tools.cell: how a REPL chunk or a notebook cell is compiled: the values of its last
-- expression are returned, statements run as written, errors keep the cell's line numbers.
local H = require 'harness'
local lat = require 'lat'
local cell = require 'lat.tools.cell'
_G.lat = lat -- as in the REPL and the notebook kernel

-- runs src as a cell; returns the shown text and the number of values
local function run(src)
  local f, err = cell.compile(src, '=cell')
  H.assert(f, err, 2)
  local function pack(...) return select('#', ...), cell.show(select('#', ...), ...) end
  local n, text = pack(f())
  return text, n
end

H.test('the last expression is shown, statements before it run', function()
  H.assert(run('a = 2\na * 3') == '6')
  H.assert(run('b = 1\nfor i = 1, 3 do\n  b = b + i\nend\nb') == '7')
  H.assert(run('local t = lat.ones(2)\nt:sum()'):find('^tensor%(2%.') ~= nil, 'a local of the cell is seen by its last line')
  local text, n = run('c = 1, 2\nc, 5')
  H.assert(n == 2 and text == '1\n5', text)
end)

H.test('a multi-line last expression, a trailing comment, and calls', function()
  H.assert(run('d = 4\nmath.max(1,\n  d,\n  3)   -- the largest') == '4')
  H.assert(run("e = {}\ntable.insert(e, 'x')\n#e") == '1')
  H.assert(run('string.format("%d", 12)') == '12')
end)

H.test("statements show nothing; a final semicolon hides a call's values", function()
  local text, n = run('f = 1')
  H.assert(n == 0 and text == '', text)
  text, n = run('g = 1\nmath.max(g, 2);')
  H.assert(n == 0, 'the semicolon hides the value: ' .. text)
  text, n = run('if true then h = 2 end')
  H.assert(n == 0 and h == 2)
end)

H.test('a line that continues the statement before it keeps its meaning', function()
  local text, n = run('k = 1\n-1')
  H.assert(n == 0 and k == 0, 'k = 1 - 1 as Lua reads it, not a value -1: ' .. text)
end)

H.test('errors name the cell and the line; incomplete cells are told apart', function()
  local f = cell.compile('m = 1\nerror("boom")', '=cell')
  local ok, err = pcall(f)
  H.assert(not ok and err == 'cell:2: boom', err)
  local _, err2 = cell.compile('x = = 1', '=cell')
  H.assert(err2:find('cell:1:', 1, true) and not cell.incomplete(err2), err2)
  local g, err3 = cell.compile('for i = 1, 2 do', '=cell')
  H.assert(g == nil and cell.incomplete(err3), err3)
end)

H.finish()
