-- tensor/private.lua: what the tensor package's files (and the PNG and data-file readers) share
-- and users do not see: dtype codes, the checks that turn a tensor argument into its C pointer,
-- readers of shapes and dimension lists into the scratch buffers handed to C, and the default
-- random generator (lat.default_generator).
local core = require 'lat.core'
local ffi, C, raise = core.ffi, core.C, core.raise

local DTYPES = { float32 = C.LAT_F32, int32 = C.LAT_I32, uint8 = C.LAT_U8 }

local function dtype_code(d)
  if d == nil then return C.LAT_F32 end
  local code = DTYPES[d]
  if not code then raise(("unknown dtype '%s' (use 'float32', 'int32' or 'uint8')"):format(tostring(d))) end
  return code
end

local function is_tensor(x) return type(x) == 'cdata' and ffi.istype('lat_ref', x) end

-- the C pointer of a tensor argument, or an error naming the argument
local function need_tensor(x, what)
  if not is_tensor(x) then raise(('%s must be a tensor, got %s'):format(what, type(x))) end
  return x.ptr
end
-- the same for an optional argument
local function opt_tensor(x, what)
  if x == nil then return nil end
  return need_tensor(x, what)
end

-- scratch buffers for shapes and dims handed to C (copied by C at once)
local shape_buf = ffi.new('int64_t[8]')
local dims_buf = ffi.new('int[8]')

-- a size for an int64_t: an integer that int64_t holds (2^63 and up, inf and NaN would wrap or
-- turn into nonsense on the way to C); -1 passes, for reshape and expand
local function check_size(what, i, v)
  if v ~= math.floor(v) or v >= 2^63 or v < -2^63 then
    local name = type(i) == 'number' and 'size ' .. i or i
    raise(('%s: %s (%s) is not an integer that fits in int64'):format(what, name, tostring(v)))
  end
end

-- Shape from varargs (2, 3) or a table {2, 3}; returns ndim. Trailing non-number args ignored.
local function read_shape(what, ...)
  local a = ...
  local n = 0
  if type(a) == 'table' then
    for i = 1, #a do
      local v = a[i]
      if type(v) ~= 'number' then raise(('%s: size %d is a %s, not an integer'):format(what, i, type(v))) end
      check_size(what, i, v)
      n = n + 1
      if n > 8 then raise(what .. ': at most 8 dimensions') end
      shape_buf[n - 1] = v
    end
  else
    for i = 1, select('#', ...) do
      local v = select(i, ...)
      if type(v) ~= 'number' then break end
      check_size(what, i, v)
      n = n + 1
      if n > 8 then raise(what .. ': at most 8 dimensions') end
      shape_buf[n - 1] = v
    end
  end
  return n
end

-- Lua dim (1-based, negative from the end) to C dim (0-based, negative from the end)
local function cdim(d, what)
  if type(d) ~= 'number' or d == 0 or d ~= math.floor(d) then
    raise(('%s: dimension %s is invalid (dimensions are 1-based; -1 is the last)'):format(what, tostring(d)))
  end
  return d > 0 and d - 1 or d
end

-- dims: nil (all), a number, or a table of numbers; returns count (0 = all)
local function read_dims(dims, what)
  if dims == nil then return 0 end
  if type(dims) == 'number' then dims_buf[0] = cdim(dims, what); return 1 end
  if type(dims) ~= 'table' then raise(what .. ': dims must be a number or a table of numbers') end
  if #dims > 8 then raise(('%s: %d dimensions given, a tensor has at most 8'):format(what, #dims)) end
  for i = 1, #dims do dims_buf[i - 1] = cdim(dims[i], what) end
  return #dims
end

-- A random generator (lat.Generator) seeded by seed.
local function generator(seed)
  local g = ffi.new('lat_rng')
  C.lat_rng_seed(g, seed or 0)
  return g
end

return {
  dtype_code = dtype_code, is_tensor = is_tensor, need_tensor = need_tensor, opt_tensor = opt_tensor,
  shape_buf = shape_buf, dims_buf = dims_buf, check_size = check_size, read_shape = read_shape,
  cdim = cdim, read_dims = read_dims,
  generator = generator, default_generator = generator(0),
}
