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

-- a session (lat.tools.locals): chunk after chunk, as the REPL and the kernel run them
local locals = require 'lat.tools.locals'
local function session()
  local env = locals.session()
  return function(src)
    local f, err = cell.compile(src, '=cell', env)
    H.assert(f, err, 2)
    local function pack(...) return select('#', ...), cell.show(select('#', ...), ...) end
    local n, text = pack(f())
    return text, n
  end
end

H.test('a top-level local stays for the next chunks and is not a global', function()
  local s = session()
  H.assert(s('local x = 1') == '')
  H.assert(s('x') == '1')
  H.assert(rawget(_G, 'x') == nil, 'the local did not leak into the globals')
  s('x = x + 1')
  H.assert(s('x') == '2' and rawget(_G, 'x') == nil, 'assigning a session local keeps it local')
  s('local a, b = 3, 4')
  H.assert(s('a * b') == '12')
  s('local u, v')
  s('u = 5')
  H.assert(s('u') == '5' and rawget(_G, 'u') == nil, 'a local declared without a value')
  local other = session()
  H.assert(other('x') == 'nil', 'each session has its own locals')
end)

H.test('a pasted recipe snippet keeps its locals', function()
  local s = session()
  s([[
local lat = require 'lat'
local opt = { dim = 4, classes = 3 } -- settings; 'local' in a comment: local y = 1
local model = lat.nn.Linear(opt.dim, opt.classes)
local function count(m)
  local n = 0
  for _, p in ipairs(m:parameters()) do n = n + p:numel() end
  return n
end
]])
  H.assert(s('count(model)') == '15', s('count(model)'))
  H.assert(s('y') == 'nil', 'a local in a comment is no declaration')
  H.assert(rawget(_G, 'model') == nil and rawget(_G, 'count') == nil)
end)

H.test('locals inside functions and blocks stay local to them', function()
  local s = session()
  s('function g1() local inner = 7 return inner end')
  H.assert(s('g1()') == '7' and s('inner') == 'nil')
  s('do local blockvar = 1 end')
  s('for i = 1, 2 do local loopvar = i end')
  s('if true then local ifvar = 1 end')
  s('repeat local r = 1 until r == 1')
  s('local h = function() local hidden = 2 return hidden end')
  H.assert(s('h()') == '2')
  for _, name in ipairs({ 'blockvar', 'loopvar', 'ifvar', 'r', 'hidden' }) do
    H.assert(s(name) == 'nil', name .. ' escaped its block')
  end
  g1 = nil
end)

H.test('local function recursion, strings holding local, a local shadowing a global', function()
  local s = session()
  s('local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end')
  H.assert(s('fact(5)') == '120')
  s([[local text = "local z = 1" .. 'local' .. [==[local w]==] ]])
  H.assert(s('#text') == '23' and s('z') == 'nil' and s('w') == 'nil')
  s('local print2 = print')
  H.assert(s('print2 == print') == 'true')
  s('local math = { pi = 3 }')
  H.assert(s('math.pi') == '3' and _G.math.pi > 3.14, 'the local shadows, the global is intact')
  s('local tostring = tostring')
  H.assert(s('tostring(1)') == '1', 'local name = name reads the global')
end)

H.test('line numbers in errors are those typed', function()
  local env = locals.session()
  local f = cell.compile('local a = 1\nlocal b\nerror("boom")', '=cell', env)
  local ok, err = pcall(f)
  H.assert(not ok and err == 'cell:3: boom', err)
  local g, err2 = cell.compile('local function f()', '=cell', env)
  H.assert(g == nil and cell.incomplete(err2), 'an open local function asks for more lines')
end)

H.finish()
