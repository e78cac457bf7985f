-- The FFI declarations in lua/lat/core/cdef.lua must equal the block of core/lat.h they mirror.
local H = require 'harness'
local lat = require 'lat'
local ffi = require 'ffi'

local function normalise(s)
  return (s:gsub('/%*.-%*/', ''):gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', ''))
end

H.test('cdef.lua matches core/lat.h', function()
  local f = assert(io.open('../core/lat.h'))
  local header = f:read('*a')
  f:close()
  local block = header:match('/%* LAT_FFI_BEGIN %*/(.-)/%* LAT_FFI_END %*/')
  H.assert(block, 'markers not found in lat.h')
  H.assert(not block:find('\n%s*#'), 'preprocessor line inside the FFI block')
  local a, b = normalise(block), normalise(require 'lat.core.cdef')
  if a ~= b then
    local i = 1
    while a:sub(i, i) == b:sub(i, i) do i = i + 1 end
    error(('differ at character %d:\n  lat.h: %s\n  cdef:  %s'):format(i, a:sub(i, i + 60), b:sub(i, i + 60)))
  end
end)

H.test('struct layout agrees with the C compiler', function()
  local C = require('lat.core').C
  H.near(ffi.sizeof('lat_tensor'), C.lat_tensor_struct_size(), 0, 'sizeof(lat_tensor)')
end)

H.finish()
