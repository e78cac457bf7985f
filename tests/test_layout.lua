-- The library's folders are its namespace: every .lua file under lua/lat/ loads by itself as
-- require('lat.<path>') and returns its own table (or function; core/cdef.lua its declarations,
-- and tools/repl.lua, the REPL program, runs until its input ends); no module adds fields to
-- another module's table, at load time, whatever was loaded first; and the public lat table has
-- no private '_x' fields. The library checked is the one lat runs (LAT_LUA_DIR), so this test
-- can be pointed at another tree.
local H = require 'harness'
local lat = require 'lat'

local lua_dir = package.searchpath('lat', package.path):match('^(.*)/lat/init%.lua$')

-- every module name under lua/lat/, from its file's path: lat/a/b.lua -> lat.a.b,
-- lat/a/init.lua -> lat.a
local function module_names()
  local p = assert(io.popen(("cd '%s' && find lat -name '*.lua' | sort"):format(lua_dir)))
  local names = {}
  for path in p:lines() do names[#names + 1] = path:gsub('%.lua$', ''):gsub('/init$', ''):gsub('/', '.') end
  p:close()
  return names
end
local MODULES = module_names()

-- Runs in a fresh lat process: records the keys of each lat module's table (and of the tables
-- among its fields) as the module finishes loading, requires `first`, then lat and every other
-- module, and prints a line for each module that could not be loaded or whose table gained keys
-- after its own load ('added <module>[.<field>] <key>').
local CHILD = [==[
local first, names = ...
local function keys(t)
  local s = {}
  for k in pairs(t) do s[k] = true end
  return s
end
local loaded_keys = {} -- module name -> { [''] = its keys, [field] = keys of a table field }
local original_require = require
function require(name)
  if package.loaded[name] ~= nil then return package.loaded[name] end
  local m = original_require(name)
  if type(name) == 'string' and name:match('^lat') and type(m) == 'table' then
    local snap = { [''] = keys(m) }
    for k, v in pairs(m) do if type(v) == 'table' and type(k) == 'string' then snap[k] = keys(v) end end
    loaded_keys[name] = snap
  end
  return m
end
local function load(name)
  local ok, m = pcall(require, name)
  if not ok then print(('cannot load %s: %s'):format(name, tostring(m)))
  elseif type(m) ~= 'table' and type(m) ~= 'function' and type(m) ~= 'string' and name ~= 'lat.tools.repl' then
    print(('%s returns a %s, not its table'):format(name, type(m)))
  end
end
load(first)
load('lat')
for name in names:gmatch('%S+') do load(name) end
local found = {}
for name, snap in pairs(loaded_keys) do
  local m = package.loaded[name]
  for field, before in pairs(snap) do
    local t = field == '' and m or m[field]
    if type(t) == 'table' then
      for k in pairs(t) do
        if not before[k] then found[#found + 1] = ('added %s%s %s'):format(name, field == '' and '' or '.' .. field, tostring(k)) end
      end
    end
  end
end
table.sort(found)
for _, line in ipairs(found) do print(line) end
print('done')
]==]

local function run_child(first)
  local path = os.tmpname()
  H.write(path, CHILD)
  local out = H.run(("'%s' '%s' '%s' '%s' < /dev/null"):format(arg[-1], path, first, table.concat(MODULES, ' ')))
  os.remove(path)
  return out
end

H.test('lua/lat/ holds init.lua and args.lua; everything else is in a package folder', function()
  local p = assert(io.popen(("cd '%s/lat' && find . -maxdepth 1 -name '*.lua' | sort"):format(lua_dir)))
  local top = p:read('*a')
  p:close()
  H.assert(top == './args.lua\n./init.lua\n', 'files directly under lua/lat/: ' .. top)
end)

H.test('every module loads by itself and no module adds fields to another module\'s table', function()
  H.assert(#MODULES > 40, 'found only ' .. #MODULES .. ' modules under ' .. lua_dir)
  local problems = {}
  for _, name in ipairs(MODULES) do
    local out = run_child(name)
    -- the REPL (tools.repl) reads /dev/null and prints nothing; any line but 'done' is a finding
    for line in out:gmatch('[^\n]+') do
      if line ~= 'done' and line ~= '[exit 0]' then problems[#problems + 1] = ('loading %s first: %s'):format(name, line) end
    end
    H.assert(('\n' .. out):find('\ndone\n'), ('loading %s first did not finish: %s'):format(name, out))
  end
  H.assert(#problems == 0, table.concat(problems, '\n'))
end)

H.test('the public lat table and its namespaces have no private _x fields', function()
  local private = {}
  local function scan(t, prefix)
    for k in pairs(t) do
      if type(k) == 'string' and k:match('^_') and not k:match('^__') then private[#private + 1] = prefix .. k end
    end
  end
  scan(lat, 'lat.')
  for k, v in pairs(lat) do if type(v) == 'table' then scan(v, 'lat.' .. k .. '.') end end
  table.sort(private)
  H.assert(#private == 0, 'private fields in the public namespace: ' .. table.concat(private, ', '))
  H.assert(type(lat.Tensor) == 'table' and lat.Tensor.sum == lat.zeros(1).sum, 'lat.Tensor is the tensor method table')
end)

H.finish()
