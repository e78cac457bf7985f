-- tensor/repr.lua: readable text for tensors (shape, dtype, values; long ones summarised with '...')
-- and for any Lua value, as the REPL prints them.
local core = require 'lat.core'
local ffi, C = core.ffi, core.C

local M = {}
local EDGE = 3        -- values shown at each end of a summarised dimension
local SUMMARISE = 1000 -- tensors with more elements are summarised

local function shape_str(t)
  local s = {}
  for d = 0, t.ndim - 1 do s[#s + 1] = tostring(tonumber(t.shape_[d])) end
  return '{' .. table.concat(s, ', ') .. '}'
end

-- one format for every value of a tensor, chosen as PyTorch does: integers bare, otherwise
-- fixed with 4 decimals unless the magnitudes call for scientific notation
local function number_format(p, n, is_float)
  if not is_float then return '%d' end
  local all_int, maxabs, minabs = true, 0, math.huge
  for k = 0, n - 1 do
    local v = p[k]
    if v ~= v or v == math.huge or v == -math.huge then
    else
      if v ~= math.floor(v) then all_int = false end
      local a = math.abs(v)
      if a > maxabs then maxabs = a end
      if a > 0 and a < minabs then minabs = a end
    end
  end
  if all_int and maxabs < 1e8 then return '%.0f.' end
  if maxabs >= 1e5 or (minabs < 1e-4 and minabs > 0) then return '%.4e' end
  return '%.4f'
end

local function fmt(f, v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' end
  if v == -math.huge then return '-inf' end
  return f:format(v)
end

function M.tensor(ref)
  local t = ref.ptr
  local dt = t.dtype_
  local p = dt == C.LAT_F32 and t.f or dt == C.LAT_I32 and t.i or t.u
  local n = tonumber(t.numel_)
  local shape = {}
  for d = 0, t.ndim - 1 do shape[d + 1] = tonumber(t.shape_[d]) end
  local summarise = n > SUMMARISE
  local f = number_format(p, n, dt == C.LAT_F32)
  local width = 0
  for k = 0, n - 1 do width = math.max(width, #fmt(f, p[k])) end
  local lead = 'tensor('
  local function block(d, off, indent)
    if d > #shape then return ('%' .. width .. 's'):format(fmt(f, p[off])) end
    local size, stride = shape[d], 1
    for e = d + 1, #shape do stride = stride * shape[e] end
    local parts = {}
    local function add(i) parts[#parts + 1] = block(d + 1, off + i * stride, indent .. ' ') end
    if summarise and size > 2 * EDGE then
      for i = 0, EDGE - 1 do add(i) end
      parts[#parts + 1] = '...'
      for i = size - EDGE, size - 1 do add(i) end
    else
      for i = 0, size - 1 do add(i) end
    end
    local sep = d == #shape and ', ' or (',' .. string.rep('\n', #shape - d) .. indent .. ' ')
    return '{' .. table.concat(parts, sep) .. '}'
  end
  local body = n == 0 and '{}' or block(1, 0, string.rep(' ', #lead))
  local extra = {}
  extra[#extra + 1] = 'shape=' .. shape_str(t)
  if dt ~= C.LAT_F32 then extra[#extra + 1] = 'dtype=' .. (dt == C.LAT_I32 and 'int32' or 'uint8') end
  if t.req_grad_ ~= 0 then
    local fn = C.lat_node_name(t)
    extra[#extra + 1] = fn ~= nil and ('grad_fn=' .. ffi.string(fn)) or 'requires_grad=true'
  end
  return lead .. body .. ', ' .. table.concat(extra, ', ') .. ')'
end

-- any Lua value, tables one level deep
function M.value(v, depth)
  depth = depth or 0
  local tv = type(v)
  if tv == 'string' then return depth > 0 and ('%q'):format(v) or v end
  if tv == 'cdata' and ffi.istype('lat_ref', v) then return M.tensor(v) end
  if tv == 'table' and depth < 2 then
    local mt = getmetatable(v)
    if mt and mt.__tostring then return tostring(v) end
    local parts, n = {}, #v
    for i = 1, n do parts[#parts + 1] = M.value(v[i], depth + 1) end
    local keys = {}
    for k in pairs(v) do
      if not (type(k) == 'number' and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for i, k in ipairs(keys) do
      if i > 20 then parts[#parts + 1] = '...'; break end
      local ks = type(k) == 'string' and k:match('^[%a_][%w_]*$') and k or ('[' .. M.value(k, depth + 1) .. ']')
      parts[#parts + 1] = ks .. ' = ' .. M.value(v[k], depth + 1)
    end
    return '{' .. table.concat(parts, ', ') .. '}'
  end
  return tostring(v)
end

return M
