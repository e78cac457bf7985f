-- io/json.lua: JSON text with object keys in sorted order, so that the same values give the same
-- bytes in every process (a Lua table's traversal order changes from run to run). Scalars are
-- written by lua-cjson, as before; tables follow cjson's rules (an array when the keys are 1..n,
-- holes as null, an excessively sparse one and {} as an object). With { exact = true } numbers
-- are written with the digits that read back the same double (cjson keeps 14) and NaN and the
-- infinities as NaN, Infinity, -Infinity, which cjson and Python's json read back.
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

-- number(v) -> the shortest of %.15g, %.16g, %.17g that reads back as v; NaN, Infinity, -Infinity
function J.number(v)
  if v ~= v then return 'NaN' end
  if v == math.huge then return 'Infinity' elseif v == -math.huge then return '-Infinity' end
  for prec = 15, 16 do
    local s = ('%.' .. prec .. 'g'):format(v)
    if tonumber(s) == v then return s end
  end
  return ('%.17g'):format(v)
end

local function encode(v, out, exact)
  if type(v) ~= 'table' then
    out[#out + 1] = (exact and type(v) == 'number') and J.number(v) or cjson.encode(v)
    return
  end
  local n = array_length(v)
  if n then
    out[#out + 1] = '['
    for i = 1, n do
      if i > 1 then out[#out + 1] = ',' end
      encode(v[i] == nil and cjson.null or v[i], out, exact)
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
    encode(v[names[name]], out, exact)
  end
  out[#out + 1] = '}'
end

-- encode(v[, {exact = true}]) -> one JSON text, without a newline; object keys sorted
function J.encode(v, opts)
  local out = {}
  encode(v, out, opts and opts.exact)
  return table.concat(out)
end

J.decode = cjson.decode

return J
