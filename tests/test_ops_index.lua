-- Indexing ops (embedding, gather, index_select) against PyTorch with finite differences, and
-- dropout's statistics, scaling, gradient and seeding.
local H = require 'harness'
local lat = require 'lat'

local function ids(t) return lat.tensor(t, 'int32') end

H.ops{
  { name = 'embedding 2-D ids', inputs = { { 'w', { { 6, 4 } } }, { 'ids', { { 3, 5 }, 'int', 0, 6 } } },
    lat = function(w, i) return lat.embedding(w, i) end, torch = 'F.embedding(ids, w)' },
  { name = 'embedding repeated ids', inputs = { { 'w', { { 5, 3 } } }, { 'ids', { { 2, 4 }, 'const', ids{ { 1, 1, 4, 1 }, { 4, 0, 1, 1 } } } } },
    lat = function(w, i) return lat.embedding(w, i) end, torch = 'F.embedding(ids, w)' },
  { name = 'embedding 1-D ids', inputs = { { 'w', { { 7, 2 } } }, { 'ids', { { 9 }, 'int', 0, 7 } } },
    lat = function(w, i) return lat.embedding(w, i) end, torch = 'F.embedding(ids, w)' },
  { name = 'gather dim 1', inputs = { { 'x', { { 3, 4, 5 } } }, { 'i', { { 6, 4, 5 }, 'int', 0, 3 } } },
    lat = function(x, i) return x:gather(1, i) end, torch = 'torch.gather(x, 0, i)' },
  { name = 'gather dim 2', inputs = { { 'x', { { 3, 4, 5 } } }, { 'i', { { 3, 7, 5 }, 'int', 0, 4 } } },
    lat = function(x, i) return x:gather(2, i) end, torch = 'torch.gather(x, 1, i)' },
  { name = 'gather dim 3', inputs = { { 'x', { { 3, 4, 5 } } }, { 'i', { { 3, 4, 8 }, 'int', 0, 5 } } },
    lat = function(x, i) return x:gather(3, i) end, torch = 'torch.gather(x, 2, i)' },
  { name = 'gather dim -1, index smaller than input', inputs = { { 'x', { { 4, 6 } } }, { 'i', { { 2, 9 }, 'int', 0, 6 } } },
    lat = function(x, i) return x:gather(-1, i) end, torch = 'torch.gather(x, 1, i)' },
  { name = 'gather dim 2, index smaller in other dims', inputs = { { 'x', { { 3, 4, 5 } } }, { 'i', { { 2, 6, 3 }, 'int', 0, 4 } } },
    lat = function(x, i) return x:gather(2, i) end, torch = 'torch.gather(x, 1, i)' },
  { name = 'index_select dim 1 repeated', inputs = { { 'x', { { 5, 3 } } }, { 'i', { { 6 }, 'const', ids{ 0, 2, 2, 4, 0, 2 } } } },
    lat = function(x, i) return x:index_select(1, i) end, torch = 'x.index_select(0, i)' },
  { name = 'index_select dim 2 repeated', inputs = { { 'x', { { 2, 6, 3 } } }, { 'i', { { 4 }, 'const', ids{ 5, 1, 5, 5 } } } },
    lat = function(x, i) return x:index_select(2, i) end, torch = 'x.index_select(1, i)' },
  { name = 'index_select dim -1 random', inputs = { { 'x', { { 2, 3, 4 } } }, { 'i', { { 10 }, 'int', 0, 4 } } },
    lat = function(x, i) return x:index_select(-1, i) end, torch = 'x.index_select(2, i)' },
}

H.test('embedding: 0-D ids give one row; gradient lands in that row', function()
  local w = lat.randn(4, 3):requires_grad_()
  local i = lat.full({}, 2, 'int32')
  local e = lat.embedding(w, i)
  H.assert(#e.shape == 1 and e.shape[1] == 3, 'shape ' .. table.concat(e.shape, 'x'))
  local g = lat.grad(e:sum(), w)
  for r = 1, 4 do for c = 1, 3 do H.near(g:get(r, c), r == 3 and 1 or 0, 0) end end
end)

H.test('gather and index_select copy int32 and uint8 inputs', function()
  local x = ids{ { 10, 11, 12 }, { 20, 21, 22 } }
  local g = x:gather(2, ids{ { 2, 0 }, { 1, 1 } })
  H.assert(g.dtype == 'int32')
  H.assert(table.concat(H.flat(g), ',') == '12,10,21,21', table.concat(H.flat(g), ','))
  local s = x:byte():index_select(1, ids{ 1, 1, 0 })
  H.assert(s.dtype == 'uint8')
  H.assert(table.concat(H.flat(s), ',') == '20,21,22,20,21,22,10,11,12', table.concat(H.flat(s), ','))
end)

H.test('index ops keep their own copy of the index for backward', function()
  -- writing an out-of-range value into the index after forward must neither read nor write
  -- out of bounds, nor change the gradient
  local w = lat.randn(3, 2):requires_grad_()
  local i = ids{ 0, 2, 2 }
  local e = lat.embedding(w, i)
  local x = lat.randn(4, 3):requires_grad_()
  local j = ids{ { 1, 0, 3 } }
  local g = x:gather(1, j)
  local k = ids{ 2, 2 }
  local s = x:index_select(2, k)
  i:set(1000000, 2); j:set(-7, 1, 1); k:set(99, 1)
  local gw = lat.grad(e:sum(), w)
  H.assert(table.concat(H.flat(gw), ',') == '1,1,0,0,2,2', table.concat(H.flat(gw), ','))
  local gx = lat.grad(g:sum() + s:sum(), x)
  H.assert(table.concat(H.flat(gx), ',') == '0,1,2,1,0,2,0,0,2,0,0,3', table.concat(H.flat(gx), ','))
end)

H.test('empty index gives an empty result and a zero gradient', function()
  local x = lat.randn(3, 4):requires_grad_()
  local s = x:index_select(1, lat.zeros(0, 'int32'))
  H.assert(s.shape[1] == 0 and s.shape[2] == 4)
  local g = lat.grad(s:sum(), x)
  for k = 0, 11 do H.near(g.f[k], 0, 0) end
end)

-- ---------------------------------------------------------------- dropout

local N = 100000
local f32buf = require('ffi').new('float[1]')
local function f32(v) f32buf[0] = v; return f32buf[0] end   -- v rounded to float32

local function count_kept(y)
  local c, f = 0, y.f
  for k = 0, y:numel() - 1 do if f[k] ~= 0 then c = c + 1 end end
  return c
end

H.test('dropout keeps a fraction 1-p of 100k elements (within 0.01, about 7 sigma)', function()
  for _, p in ipairs({ 0.1, 0.3, 0.5, 0.9 }) do
    local y = lat.dropout(lat.ones(N), p, true, lat.Generator(11))
    local frac = count_kept(y) / N
    H.near(frac, 1 - p, 0.01, ('fraction kept at p = %g'):format(p))
  end
end)

H.test('dropout scales kept values by exactly 1/(1-p)', function()
  local x = lat.randn(N, { rng = lat.Generator(3) })
  -- p = 0.5: the scale is 2, exact in float32
  local y = lat.dropout(x, 0.5, true, lat.Generator(5))
  for k = 0, N - 1 do
    local v = y.f[k]
    H.assert(v == 0 or v == 2 * x.f[k], ('element %d: %.9g from %.9g'):format(k, v, x.f[k]))
  end
  -- p = 0.3: exactly x times float32(1/0.7), rounded to float32; so within 2.5e-7 of x / 0.7
  y = lat.dropout(x, 0.3, true, lat.Generator(5))
  local scale = f32(1 / 0.7)
  for k = 0, N - 1 do
    local v, want = y.f[k], f32(x.f[k] * scale)
    H.assert(v == 0 or v == want, ('element %d: %.9g, expected %.9g'):format(k, v, want))
    H.assert(math.abs(v - x.f[k] / 0.7) <= 2.5e-7 * math.abs(x.f[k] / 0.7) or v == 0, 'scale drifts')
  end
end)

H.test('dropout gradient is the mask times the scale', function()
  local p = 0.3
  local x = lat.ones(1000):requires_grad_()
  local y = lat.dropout(x, p, true, lat.Generator(9))   -- y is the mask times 1/(1-p)
  local gout = lat.randn(1000, { rng = lat.Generator(10) })
  local g = lat.grad(y, x, gout)
  local kept = 0
  for k = 0, 999 do
    local m = y.f[k]
    H.assert(m == 0 or m == f32(1 / (1 - p)), 'mask value ' .. m)
    if m ~= 0 then kept = kept + 1 end
    H.assert(g.f[k] == f32(gout.f[k] * m), ('element %d: grad %.9g, expected %.9g'):format(k, g.f[k], gout.f[k] * m))
  end
  H.assert(kept > 0 and kept < 1000, 'degenerate mask')
  -- and through a composite: d/dx sum(dropout(x) * x) = mask * scale * 2x
  local z = lat.randn(50):requires_grad_()
  local d = lat.dropout(z, 0.5, true, lat.Generator(2))
  local gz = lat.grad((d * z):sum(), z)
  for k = 0, 49 do H.near(gz.f[k], 2 * d.f[k], 1e-6) end
end)

H.test('dropout: same seed gives the same mask, another seed or the next draw another', function()
  local x = lat.ones(N)
  local a = lat.dropout(x, 0.5, true, lat.Generator(123))
  local b = lat.dropout(x, 0.5, true, lat.Generator(123))
  local c = lat.dropout(x, 0.5, true, lat.Generator(124))
  local g = lat.Generator(123)
  lat.dropout(x, 0.5, true, g)
  local d = lat.dropout(x, 0.5, true, g)
  local same, diff_c, diff_d = true, 0, 0
  for k = 0, N - 1 do
    if a.f[k] ~= b.f[k] then same = false end
    if a.f[k] ~= c.f[k] then diff_c = diff_c + 1 end
    if a.f[k] ~= d.f[k] then diff_d = diff_d + 1 end
  end
  H.assert(same, 'same seed, different masks')
  -- independent masks at p = 0.5 differ in about half the places
  H.assert(math.abs(diff_c / N - 0.5) < 0.01, 'another seed: fraction differing ' .. diff_c / N)
  H.assert(math.abs(diff_d / N - 0.5) < 0.01, 'next draw: fraction differing ' .. diff_d / N)
end)

H.test('dropout edge cases: p = 0, p = 1, evaluation mode, bad p, no_grad', function()
  local x = lat.randn(100):requires_grad_()
  H.assert(lat.dropout(x, 0.7, false) == x, 'evaluation mode must return the input')
  H.assert(lat.dropout(x, 0, true) == x, 'p = 0 must return the input')
  local y = lat.dropout(x, 1, true, lat.Generator(1))
  local g = lat.grad(y, x, lat.ones(100))
  for k = 0, 99 do H.assert(y.f[k] == 0 and g.f[k] == 0, 'p = 1 must give zeros') end
  H.raises(function() local _ = lat.dropout(x, 1.5, true) end, 'dropout', '1.5', '[0, 1]')
  H.raises(function() local _ = lat.dropout(x, -0.1, true) end, 'dropout', '-0.1')
  H.raises(function() local _ = lat.dropout(lat.ones(3, 'int32'), 0.5, true) end, 'dropout', 'float32', 'int32')
  local z = lat.no_grad(lat.dropout, x, 0.5, true, lat.Generator(4))
  H.assert(not z.requires_grad and z.grad_fn == nil, 'recorded under no_grad')
  -- the default generator is used when none is given, and advances
  local a, b = lat.dropout(lat.ones(1000), 0.5, true), lat.dropout(lat.ones(1000), 0.5, true)
  local diff = 0
  for k = 0, 999 do if a.f[k] ~= b.f[k] then diff = diff + 1 end end
  H.assert(diff > 0, 'default generator did not advance')
end)

H.finish()
