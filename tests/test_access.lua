-- Element access from Lua: t:get / t:set (1-based positions, checked against the shape and the
-- dtype), lat.tensor from nested tables and t:tolist back, and raw pointers that keep their
-- tensor alive.
local H = require 'harness'
local lat = require 'lat'

H.test('get and set: 1-based positions, negative from the end, every dtype', function()
  for _, dt in ipairs{ 'float32', 'int32', 'uint8' } do
    local t = lat.zeros(2, 3, dt)
    t:set(5, 1, 2):set(7, -1, -1)
    H.assert(t:get(1, 2) == 5 and t:get(2, 3) == 7 and t:get(-2, -2) == 5, dt .. ': get reads what set wrote')
    H.assert(table.concat(t:reshape(6):tolist(), ',') == '0,5,0,0,0,7', dt .. ': set writes row-major')
  end
  H.assert(lat.full({}, 4):get() == 4, 'a 0-d tensor takes no position')
end)

H.test('get and set: a position out of range names the position, the dimension and the shape', function()
  local t = lat.zeros(2, 3)
  H.raises(function() t:get(1, 4) end, 'get', 'position 4 out of range 1..3 in dimension 2', 'shape [2, 3]')
  H.raises(function() t:set(1, 0, 1) end, 'set', 'position 0 out of range 1..2 in dimension 1', 'shape [2, 3]')
  H.raises(function() t:get(1) end, '1 positions given for a 2-dimensional tensor')
end)

H.test('set: a value the dtype cannot hold is refused, not truncated or wrapped', function()
  local i, u, f = lat.zeros(2, 'int32'), lat.zeros(2, 'uint8'), lat.zeros(2)
  H.raises(function() i:set(1.5, 1) end, 'set', '1.5', 'int32')
  H.raises(function() i:set(2 ^ 31, 1) end, 'set', 'int32')
  H.raises(function() i:set(0 / 0, 1) end, 'set', 'int32')
  H.raises(function() u:set(256, 2) end, 'set', '256', 'uint8')
  H.raises(function() u:set(-1, 2) end, 'set', 'uint8')
  H.raises(function() f:set(1e39, 1) end, 'set', 'float32')
  H.assert(i:get(1) == 0 and u:get(2) == 0 and f:get(1) == 0, 'a refused value writes nothing')
  i:set(-2 ^ 31, 1):set(2 ^ 31 - 1, 2)
  u:set(255, 1)
  f:set(-math.huge, 1):set(0 / 0, 2) -- NaN and Inf are float32 values (tests of the finiteness checks write them)
  H.assert(i:get(1) == -2 ^ 31 and i:get(2) == 2 ^ 31 - 1 and u:get(1) == 255, 'the ends of the integer ranges')
  H.assert(f:get(1) == -math.huge and f:get(2) ~= f:get(2), 'NaN and -inf are stored')
end)

H.test('lat.tensor from nested tables checks each value against the dtype; tolist reads it back', function()
  local rows = { { 1, 2, 3 }, { 4, 5, 6 } }
  for _, dt in ipairs{ 'float32', 'int32', 'uint8' } do
    local t = lat.tensor(rows, dt)
    H.assert(t.dtype == dt and table.concat(t.shape, ',') == '2,3', dt .. ': shape')
    local back = t:tolist()
    H.assert(#back == 2 and table.concat(back[1], ',') == '1,2,3' and table.concat(back[2], ',') == '4,5,6', dt .. ': tolist')
  end
  H.assert(lat.tensor(2.5):tolist() == 2.5, 'a 0-d tensor reads back as a number')
  H.raises(function() lat.tensor({ { 1, 2 }, { 3, 4.5 } }, 'int32') end, 'tensor', 'entry [2, 2]', '4.5', 'int32')
  H.raises(function() lat.tensor({ 0, 300 }, 'uint8') end, 'tensor', 'entry [2]', '300', 'uint8')
  H.raises(function() lat.tensor({ 1e39 }) end, 'tensor', 'float32')
end)

-- A pointer read from a tensor nobody else holds: the tensor must outlive the pointer, or the
-- buffer goes back to the allocator and the next tensor of its size class overwrites it.
local function churn()
  lat.collect()
  local others = {}
  for k = 1, 20 do others[k] = lat.full({ 1000 }, 3) end
  return others
end

H.test('raw pointers keep their tensor alive', function()
  local f = lat.full({ 1000 }, 7).f
  local i = lat.full({ 1000 }, 7, 'int32').i
  local u = lat.full({ 1000 }, 7, 'uint8').u
  local d = lat.full({ 1000 }, 7).data -- cast when used: a cast pointer is a new object, which holds nothing
  local others = churn()
  H.assert(f[0] == 7 and f[999] == 7, 't.f: read ' .. f[0] .. ' after a collection')
  H.assert(i[0] == 7 and i[999] == 7, 't.i: read ' .. i[0] .. ' after a collection')
  H.assert(u[0] == 7 and u[999] == 7, 't.u: read ' .. u[0] .. ' after a collection')
  local df = require('ffi').cast('float *', d)
  H.assert(df[0] == 7 and df[999] == 7, 't.data: read ' .. df[0] .. ' after a collection')
  H.assert(#others == 20)
end)

H.test('a dropped raw pointer lets its tensor go', function()
  lat.collect()
  local before = lat.memory().live
  for _ = 1, 10 do local _ = lat.zeros(1e6).f end
  lat.collect()
  lat.collect()
  H.assert(lat.memory().live == before, ('%d bytes still live'):format(lat.memory().live - before))
end)

H.finish()
