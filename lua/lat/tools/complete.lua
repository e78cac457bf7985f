-- tools/complete.lua: what the REPL offers on Tab. complete('model.blo') looks up
-- `model` from the globals, lists the names reachable from it (fields, methods through
-- metatables, a tensor's methods and properties, a module's layers) and returns those that
-- start with 'blo', each as the whole word ('model.blocks').
local lat = require 'lat'

local M = {}
M.scope = {} -- the session's locals (lat.tools.locals), seen before the globals

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
  local value = setmetatable({}, { __index = function(_, k)
    local v = M.scope[k]
    if v == nil then return _G[k] end
    return v
  end })
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
  local out, names = {}, names_of(value, sep == ':')
  if not base then
    local seen = {}
    for _, k in ipairs(names) do seen[k] = true end
    for _, k in ipairs(names_of(M.scope)) do if not seen[k] then names[#names + 1] = k end end
  end
  for _, k in ipairs(names) do
    if k:sub(1, #prefix) == prefix then out[#out + 1] = (base and (base .. sep) or '') .. k end
  end
  table.sort(out)
  return out
end

return M
