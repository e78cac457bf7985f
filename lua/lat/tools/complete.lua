-- tools/complete.lua: what the REPL offers on Tab, and help(f). complete('model.blo') looks up
-- `model` from the globals, lists the names reachable from it (fields, methods through
-- metatables, a tensor's methods and properties, a module's layers) and returns those that
-- start with 'blo', each as the whole word ('model.blocks'). help(f) prints the comment block
-- above f's definition in its source file.
local lat = require 'lat'

local M = {}

-- names reachable from a value with '.' (or ':' for methods only)
local function names_of(v, methods_only)
  local out, seen = {}, {}
  local function add(k, val)
    if type(k) == 'string' and k:match('^[%a_][%w_]*$') and not seen[k] and k:sub(1, 2) ~= '__' then
      if not methods_only or type(val) == 'function' then
        seen[k] = true
        out[#out + 1] = k
      end
    end
  end
  if lat.is_tensor(v) then
    for k, f in pairs(lat.Tensor) do add(k, f) end
    if not methods_only then for _, k in ipairs({ 'shape', 'dtype', 'requires_grad', 'grad', 'is_leaf', 'grad_fn', 'T', 'ndim' }) do add(k, true) end end
    return out
  end
  local t, depth = v, 0
  while type(t) == 'table' and depth < 8 do
    for k, val in pairs(t) do add(k, val) end
    local mt = getmetatable(t)
    t = mt and type(mt.__index) == 'table' and mt.__index or nil
    depth = depth + 1
  end
  return out
end

-- the value a dotted name ('lat.attack.pgd', 'model.transformer.h.0') names among the globals, or nil
function M.resolve(name)
  local value = _G
  for part in name:gmatch('[^.:]+') do
    if type(value) ~= 'table' and not lat.is_tensor(value) then return nil end
    local ok, v = pcall(function() return value[tonumber(part) or part] end)
    if not ok then return nil end
    value = v
  end
  return value
end

function M.complete(word)
  local base, sep, prefix = word:match('^(.-)([.:])([%w_]*)$')
  local value
  if base then
    value = M.resolve(base)
    if value == nil then return {} end
  else
    value, sep, prefix, base = _G, '', word, nil
  end
  local out = {}
  for _, k in ipairs(names_of(value, sep == ':')) do
    if k:sub(1, #prefix) == prefix then out[#out + 1] = (base and (base .. sep) or '') .. k end
  end
  table.sort(out)
  return out
end

-- doc(f): the comment block written above f in its source file (lat's functions are documented
-- that way) and where f is defined, or a note that there is none
function M.doc(f)
  if type(f) ~= 'function' then
    return ('help: expected a function, got %s (try help(lat.attack.pgd))'):format(type(f))
  end
  local info = debug.getinfo(f, 'S')
  local path = info.source:match('^@(.*)')
  local lines = {}
  if path then
    local fh = io.open(path)
    if fh then
      for l in fh:lines() do lines[#lines + 1] = l end
      fh:close()
    end
  end
  local doc = {}
  local i = info.linedefined - 1
  while i >= 1 and lines[i] and lines[i]:match('^%s*%-%-') do
    table.insert(doc, 1, (lines[i]:gsub('^%s*%-%- ?', '')))
    i = i - 1
  end
  local where = path and ('%s:%d'):format(path, info.linedefined) or info.short_src
  if #doc == 0 then return ('no documentation above its definition (%s)'):format(where) end
  return table.concat(doc, '\n') .. '\n  (' .. where .. ')'
end

-- help(f): prints doc(f)
function M.help(f) print(M.doc(f)) end

return M
