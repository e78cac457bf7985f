-- Sizes that do not fit: shapes whose element or byte count overflows, or passes what lat
-- allocates (2^48 bytes), are refused with a message naming the shape before anything is
-- allocated; Lua numbers that int64_t cannot hold are refused before they reach C.
local H = require 'harness'
local lat = require 'lat'

local TOO_BIG = 'would take more than 2^48 bytes'

H.test('creation: products that wrap modulo 2^64 are refused, not tensors of 0 elements', function()
  H.raises(function() return lat.zeros(2^32, 2^32) end, '[4294967296, 4294967296]', TOO_BIG)
  H.raises(function() return lat.ones(2^31, 2^31) end, '[2147483648, 2147483648]', TOO_BIG)
  H.raises(function() return lat.empty(2^62):fill_(1) end, '[4611686018427387904]', TOO_BIG)
  H.raises(function() return lat.full({ 2^16, 2^16, 2^16, 2^16 }, 1) end, TOO_BIG)
  H.raises(function() return lat.randn(2^40, 2^40) end, TOO_BIG)
  H.raises(function() return lat.randint(0, 5, { 2^33, 2^33 }) end, 'int32', TOO_BIG)
  -- a size of 0 does not excuse the others: outer and inner products of the shape must fit too
  H.raises(function() return lat.zeros(0, 2^62, 2^62) end, TOO_BIG)
  H.raises(function() return lat.empty(-3) end, 'negative size -3')
end)

H.test('creation: the largest sizes below the limit still work, and empty tensors are empty', function()
  H.assert(lat.zeros(0, 2^20):numel() == 0)
  H.assert(lat.empty(2^20, 0, 7):numel() == 0)
  local t = lat.zeros(2^10, 2^10)
  H.assert(t:numel() == 2^20 and t:sum():item() == 0)
end)

H.test('arange: more elements than a tensor holds is an error, not a wrapped count', function()
  H.raises(function() return lat.arange(0, 2^62) end, 'arange', 'more than a tensor can hold')
  H.raises(function() return lat.arange(0, 2^70) end, 'arange', 'more than a tensor can hold')
  H.raises(function() return lat.arange(-1e300, 1e300, 1) end, 'arange')
  H.assert(lat.arange(0, 5):numel() == 5)
end)

H.test('expand and reshape: shapes that overflow are errors, not views that lie', function()
  H.raises(function() return lat.ones(1, 1):expand(2^40, 2^40) end, '[1099511627776, 1099511627776]', TOO_BIG)
  H.raises(function() return lat.ones(1):expand(2^31, 2^31, 2^31) end, TOO_BIG)
  -- 2^32 * 2^32 wraps to 0, which equals the element count of an empty tensor
  H.raises(function() return lat.zeros(0):reshape(2^32, 2^32, 0) end, 'reshape')
  H.raises(function() return lat.zeros(0):reshape(0, 2^32, 2^32) end, TOO_BIG)
  H.assert(lat.zeros(0):reshape(0, 5):numel() == 0)
end)

H.test('ops: outputs whose size would overflow are refused before allocating', function()
  local col, row = lat.empty(2^24, 1), lat.empty(1, 2^25) -- 64 and 128 MiB, never touched
  H.raises(function() return col:matmul(row) end, '[16777216, 33554432]', TOO_BIG)
  local w = lat.empty(1, 2^27)
  local ids = lat.zeros({ 2^22 }, 'int32')
  H.raises(function() return lat.embedding(w, ids) end, '[4194304, 134217728]', TOO_BIG)
end)

H.test('Lua numbers that int64_t cannot hold are errors in Lua', function()
  H.raises(function() return lat.empty(2^64) end, 'empty', 'size 1', 'fits in int64')
  H.raises(function() return lat.zeros({ 3, 2^63 }) end, 'zeros', 'size 2', 'fits in int64')
  H.raises(function() return lat.ones(math.huge) end, 'fits in int64')
  H.raises(function() return lat.empty(0 / 0) end, 'fits in int64')
  H.raises(function() return lat.empty({ 1.5 }) end, 'size 1', 'fits in int64')
  H.raises(function() return lat.ones(2, 3):reshape(2^64, -1) end, 'reshape', 'fits in int64')
  H.raises(function() return lat.randperm(2.5) end, 'randperm', 'n (2.5)')
  H.raises(function() return lat.randperm(2^64) end, 'randperm')
  H.raises(function() return lat.randint(0, 2^64, { 2 }) end, 'randint', 'hi')
  H.assert(lat.randperm(4):numel() == 4)
end)

H.test('randint: a range its integer dtype cannot hold is refused (it was truncated)', function()
  H.raises(function() return lat.randint(2^40, 2^41, { 3 }) end, 'does not fit in int32')
  H.raises(function() return lat.randint(0, 257, { 3 }, 'uint8') end, 'does not fit in uint8')
  H.assert(lat.randint(0, 256, { 64 }, 'uint8'):float():max():item() <= 255)
end)

H.test('randint: a range wider than 2^63 draws in range instead of overflowing', function()
  local t = lat.randint(-2^62, 2^62, { 1000 }, 'float32')
  H.assert(t:min():item() >= -2^62 and t:max():item() <= 2^62)
  H.assert(t:min():item() < 0 and t:max():item() > 0, 'draws cover both halves of the range')
end)

H.finish()
