-- io/json.lua: JSON text with object keys in sorted order, so that the same values give the same
-- bytes in every process (a Lua table's traversal order changes from run to run). Scalars are
-- written by lua-cjson, as before; tables follow cjson's rules (an array when the keys are 1..n,
-- holes as null, an excessively sparse one and {} as an object).
--   require('lat.io.json').encode{ b = 1, a = { 1, 2 } }  -> {"a":[1,2],"b":1}
local cjson = require('cjson').new()

local J = { null = cjson.null }

-- n when t's keys are the integers 1..n with few holes (cjson's sparse rule), else nil
local function array_length(t)
  local max, n = 0, 0
  for k in pairs(t) do
    if type(k) ~= 'number' or k < 1 or k ~= math.floor(k) then return nil end
    if k > max then max = k end
    n = n + 1
  end
  if max == 0 or (max > 10 and max > 2 * n) then return nil end
  return max
end

local function encode(v, out)
  if type(v) ~= 'table' then
    out[#out + 1] = cjson.encode(v)
    return
  end
  local n = array_length(v)
  if n then
    out[#out + 1] = '['
    for i = 1, n do
      if i > 1 then out[#out + 1] = ',' end
      encode(v[i] == nil and cjson.null or v[i], out)
    end
    out[#out + 1] = ']'
    return
  end
  local keys, names = {}, {}
  for k in pairs(v) do
    local name = type(k) == 'string' and k or cjson.encode(k) -- a number key as cjson writes it
    keys[#keys + 1], names[name] = name, k
  end
  table.sort(keys)
  out[#out + 1] = '{'
  for i, name in ipairs(keys) do
    if i > 1 then out[#out + 1] = ',' end
    out[#out + 1] = cjson.encode(name)
    out[#out + 1] = ':'
    encode(v[names[name]], out)
  end
  out[#out + 1] = '}'
end

-- encode(v) -> one JSON text, without a newline; object keys sorted
function J.encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

J.decode = cjson.decode

return J
