-- Elementwise ops, matmul, linear and layout ops: finite differences and PyTorch parity.
local H = require 'harness'
local lat = require 'lat'

-- NaN, the infinities and signed zeros among ordinary values: ops must propagate NaN as PyTorch
-- does (relu(NaN) and clamp(NaN) are NaN, not 0 or a bound)
local nan, inf = 0 / 0, math.huge
local special = lat.tensor({ nan, inf, -inf, 0, -0.0, 1, -1, 0.3, -0.7, 2.5, -3 })
local zero_rows = lat.tensor({ { 0, 0, 0, 0 }, { 1, -2, 0.5, 3 }, { 0, 0, 0, 0 } })
local special_rows = lat.tensor({ { 1, nan, 3, nan }, { 1, 5, 5, 2 }, { -inf, -inf, -inf, -inf }, { -inf, 2, inf, 0 } })

-- Every unary op of the C core is checked, by finite differences and against PyTorch, on random
-- input and on NaN, the infinities, signed zeros and negatives: an op added in C needs one entry
-- here, and this file fails for an op without one. input: what finite differences may use ('pos'
-- for values > 0, 'away' to keep off a kink at 0).
local UNARY = {
  neg = { torch = '-x', lat = function(x) return -x end },
  exp = { torch = 'x.exp()' },
  log = { torch = 'x.log()', input = 'pos' },
  sqrt = { torch = 'x.sqrt()', input = 'pos' },
  abs = { torch = 'x.abs()', input = 'away', kinks = true },
  relu = { torch = 'x.relu()', input = 'away', kinks = true },
  gelu = { torch = 'F.gelu(x)' },
  tanh = { torch = 'x.tanh()' },
  sigmoid = { torch = 'x.sigmoid()' },
  gelu_tanh = { torch = "F.gelu(x, approximate='tanh')" },
}

-- rows plus two for each unary op
local function with_unary_ops(rows)
  local C, ffi = require('lat.core').C, require 'ffi'
  local seen = {}
  for op = 0, C.LAT_UNARY_COUNT - 1 do
    local name = ffi.string(C.lat_unary_name(op))
    local u = UNARY[name] or error(('unary op %s has no entry in UNARY (test_ops_elementwise.lua)'):format(name))
    local f = u.lat or function(x) return x[name](x) end
    rows[#rows + 1] = { name = name, inputs = { { 'x', { { 5, 11 }, u.input } } }, lat = f, torch = u.torch, kinks = u.kinks }
    rows[#rows + 1] = { name = name .. ' of NaN, infinities, zeros and negatives', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = f, torch = u.torch, fd = false }
    seen[name] = true
  end
  for name in pairs(UNARY) do
    if not seen[name] then error(('UNARY has an entry for %s, which is not a unary op of the C core'):format(name)) end
  end
  return rows
end

H.ops(with_unary_ops{
  { name = 'add same shape', inputs = { { 'a', { { 3, 5 } } }, { 'b', { { 3, 5 } } } }, lat = function(a, b) return a + b end, torch = 'a + b' },
  { name = 'add broadcast row', inputs = { { 'a', { { 4, 3, 5 } } }, { 'b', { { 5 } } } }, lat = function(a, b) return a + b end, torch = 'a + b' },
  { name = 'sub broadcast both', inputs = { { 'a', { { 4, 1, 5 } } }, { 'b', { { 3, 1 } } } }, lat = function(a, b) return a - b end, torch = 'a - b' },
  { name = 'mul broadcast channel', inputs = { { 'a', { { 2, 3, 4, 5 } } }, { 'b', { { 1, 3, 1, 1 } } } }, lat = function(a, b) return a * b end, torch = 'a * b' },
  { name = 'mul same tensor twice', inputs = { { 'a', { { 7 } } } }, lat = function(a) return a * a end, torch = 'a * a' },
  { name = 'div broadcast', inputs = { { 'a', { { 3, 4 } } }, { 'b', { { 3, 1 }, 'pos' } } }, lat = function(a, b) return a / b end, torch = 'a / b' },
  { name = 'scalar ops', inputs = { { 'a', { { 6 } } } }, lat = function(a) return (a * 3 + 2) / 4 - 1 end, torch = '(a * 3 + 2) / 4 - 1' },
  { name = 'number minus and over tensor', inputs = { { 'a', { { 6 }, 'pos' } } }, lat = function(a) return 2 - 3 / a end, torch = '2 - 3 / a' },
  { name = 'pow 3', inputs = { { 'x', { { 13 } } } }, lat = function(x) return x ^ 3 end, torch = 'x ** 3' },
  { name = 'pow 0.5', inputs = { { 'x', { { 13 }, 'pos' } } }, lat = function(x) return x:pow(0.5) end, torch = 'x ** 0.5' },
  { name = 'clamp', inputs = { { 'x', { { 40 } } } }, lat = function(x) return x:clamp(-0.5, 0.7) end, torch = 'x.clamp(-0.5, 0.7)', kinks = true },
  { name = 'where', inputs = { { 'c', { { 3, 4 } } }, { 'a', { { 3, 4 } } }, { 'b', { { 4 } } } },
    lat = function(c, a, b) return lat.where(c:gt(0), a, b) end, torch = 'torch.where(c > 0, a, b)', grad = { 'a', 'b' } },
  { name = 'matmul 2d', inputs = { { 'a', { { 7, 5 } } }, { 'b', { { 5, 3 } } } }, lat = function(a, b) return a:matmul(b) end, torch = 'a @ b' },
  { name = 'matmul batched by matrix', inputs = { { 'a', { { 2, 3, 7, 5 } } }, { 'b', { { 5, 4 } } } }, lat = function(a, b) return a:matmul(b) end, torch = 'a @ b' },
  { name = 'matmul batched', inputs = { { 'a', { { 3, 7, 5 } } }, { 'b', { { 3, 5, 2 } } } }, lat = function(a, b) return a:matmul(b) end, torch = 'a @ b' },
  { name = 'matmul broadcast batch', inputs = { { 'a', { { 2, 1, 4, 5 } } }, { 'b', { { 3, 5, 2 } } } }, lat = function(a, b) return a:matmul(b) end, torch = 'a @ b' },
  { name = 'matmul matrix by batch', inputs = { { 'a', { { 4, 5 } } }, { 'b', { { 3, 5, 2 } } } }, lat = function(a, b) return a:matmul(b) end, torch = 'a @ b' },
  { name = 'linear with bias', inputs = { { 'x', { { 2, 3, 6 } } }, { 'w', { { 4, 6 } } }, { 'b', { { 4 } } } }, lat = function(x, w, b) return lat.linear(x, w, b) end, torch = 'F.linear(x, w, b)' },
  { name = 'linear without bias', inputs = { { 'x', { { 5, 6 } } }, { 'w', { { 3, 6 } } } }, lat = function(x, w) return lat.linear(x, w) end, torch = 'F.linear(x, w)' },
  { name = 'reshape', inputs = { { 'x', { { 2, 6 } } } }, lat = function(x) return x:reshape(3, -1) * 2 end, torch = 'x.reshape(3, -1) * 2' },
  { name = 'narrow dim 1 (view)', inputs = { { 'x', { { 5, 3 } } } }, lat = function(x) return x:narrow(1, 2, 3) * 1 end, torch = 'x.narrow(0, 1, 3) * 1' },
  { name = 'narrow dim 2 (copy)', inputs = { { 'x', { { 4, 6, 2 } } } }, lat = function(x) return x:narrow(2, 3, 2) end, torch = 'x.narrow(1, 2, 2)' },
  { name = 'transpose', inputs = { { 'x', { { 3, 4, 5 } } } }, lat = function(x) return x:transpose(1, 3) end, torch = 'x.transpose(0, 2)' },
  { name = 'permute', inputs = { { 'x', { { 2, 3, 4, 5 } } } }, lat = function(x) return x:permute(3, 1, 4, 2) end, torch = 'x.permute(2, 0, 3, 1)' },
  { name = 'expand', inputs = { { 'x', { { 3, 1 } } } }, lat = function(x) return x:expand(2, 3, 4) end, torch = 'x.expand(2, 3, 4)' },
  { name = 'cat dim 2', inputs = { { 'a', { { 2, 3 } } }, { 'b', { { 2, 5 } } } }, lat = function(a, b) return lat.cat({ a, b, a }, 2) end, torch = 'torch.cat([a, b, a], 1)' },
  { name = 'cat dim 1', inputs = { { 'a', { { 2, 3 } } }, { 'b', { { 1, 3 } } } }, lat = function(a, b) return lat.cat({ a, b }, 1) end, torch = 'torch.cat([a, b], 0)' },
  -- one tensor as both (or all) inputs of one op: the second gradient write adds to the first
  { name = 'add same tensor twice', inputs = { { 'a', { { 7 } } } }, lat = function(a) return a + a end, torch = 'a + a' },
  { name = 'sub same tensor twice', inputs = { { 'a', { { 7 } } } }, lat = function(a) return a - a end, torch = 'a - a' },
  { name = 'div same tensor twice', inputs = { { 'a', { { 7 }, 'pos' } } }, lat = function(a) return a / a end, torch = 'a / a' },
  { name = 'matmul(a, a)', inputs = { { 'a', { { 4, 4 } } } }, lat = function(a) return a:matmul(a) end, torch = 'a @ a' },
  { name = 'matmul(a, a) batched', inputs = { { 'a', { { 2, 3, 3 } } } }, lat = function(a) return a:matmul(a) end, torch = 'a @ a' },
  { name = 'linear(x, x)', inputs = { { 'x', { { 4, 4 } } } }, lat = function(x) return lat.linear(x, x) end, torch = 'F.linear(x, x)' },
  { name = 'linear(v, w, v): input = bias', inputs = { { 'v', { { 3 } } }, { 'w', { { 3, 3 } } } }, lat = function(v, w) return lat.linear(v, w, v) end, torch = 'F.linear(v, w, v)' },
  { name = 'where(m, a, a)', inputs = { { 'c', { { 3, 4 } } }, { 'a', { { 3, 4 } } } },
    lat = function(c, a) return lat.where(c:gt(0), a, a * 2) + lat.where(c:gt(0), a, a) end, torch = 'torch.where(c > 0, a, a * 2) + torch.where(c > 0, a, a)', grad = { 'a' } },
  { name = 'clamp of NaN, infinities and zeros', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:clamp(-0.5, 0.5) end, torch = 'x.clamp(-0.5, 0.5)', fd = false },
  { name = 'clamp below only, of NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:clamp(0) end, torch = 'x.clamp(min=0)', fd = false },
  { name = 'amax over a dim with NaN and -inf rows (the gradient of max(dim): to the index)', inputs = { { 'x', { { 4, 4 }, 'const', special_rows } } },
    lat = function(x) return x:amax(2) end, torch = 'x.max(1)[0]', fd = false },
  { name = 'argmax over a dim with NaN (the first NaN wins, as PyTorch)', inputs = { { 'x', { { 4, 4 }, 'const', special_rows } } }, grad = {},
    lat = function(x) return x:argmax(2) end, torch = 'x.argmax(1)' },
  { name = 'argmax over dim 1 with NaN', inputs = { { 'x', { { 4, 4 }, 'const', special_rows } } }, grad = {},
    lat = function(x) return x:argmax(1) end, torch = 'x.argmax(0)' },
  { name = 'argmax of everything with NaN', inputs = { { 'x', { { 4, 4 }, 'const', special_rows } } }, grad = {},
    lat = function(x) return x:argmax() end, torch = 'x.argmax()' },
  { name = 'max(dim) indices with NaN', inputs = { { 'x', { { 4, 4 }, 'const', special_rows } } }, grad = {},
    lat = function(x) local _, i = x:max(2); return i end, torch = 'x.max(1)[1]' },
  { name = 'min(dim) with NaN and -inf rows', inputs = { { 'x', { { 4, 4 }, 'const', special_rows } } },
    lat = function(x) return (x:min(2)) end, torch = 'x.min(1)[0]', fd = false },
  { name = 'softmax of rows with NaN, -inf and +inf', inputs = { { 'x', { { 4, 4 }, 'const', special_rows } } },
    lat = function(x) return x:softmax(2) end, torch = 'x.softmax(1)', fd = false },
  { name = 'amax over a dim of an empty batch', inputs = { { 'x', { { 0, 3 } } } }, lat = function(x) return x:amax(2) end, torch = 'x.amax(1)', fd = false },
  { name = 'argmax over a dim of an empty batch', inputs = { { 'x', { { 0, 3 } } } }, grad = {}, lat = function(x) return x:argmax(2) end, torch = 'x.argmax(1)' },
  { name = 'norm(2) over a dim', inputs = { { 'x', { { 3, 5 } } } }, lat = function(x) return x:norm(2, 2) end, torch = 'x.norm(2, dim=1)' },
  { name = 'norm(2) of all, keepdim', inputs = { { 'x', { { 2, 3, 4 } } } }, lat = function(x) return x:norm(2, { 2, 3 }, true) end, torch = 'x.norm(2, dim=(1, 2), keepdim=True)' },
  -- the norm's gradient at 0 is 0 as in PyTorch (a zero-initialised perturbation), not NaN
  { name = 'norm(2) of zero rows has gradient 0', inputs = { { 'x', { { 3, 4 }, 'const', zero_rows } } }, lat = function(x) return x:norm(2, 2) end, torch = 'x.norm(2, dim=1)', fd = false },
  { name = 'norm(2) of an all-zero tensor has gradient 0', inputs = { { 'x', { { 2, 4 }, 'const', lat.zeros({ 2, 4 }) } } }, lat = function(x) return x:norm(2) end, torch = 'x.norm(2)', fd = false },
  { name = 'norm(1) and norm(inf) of zero rows', inputs = { { 'x', { { 3, 4 }, 'const', zero_rows } } }, lat = function(x) return x:norm(1, 2) + x:norm(math.huge, 2) end, torch = 'x.norm(1, dim=1) + x.norm(float("inf"), dim=1)', fd = false },
  -- pow at 0, -0, negatives, NaN and infinities: PyTorch's values and derivatives (x^0 has derivative 0 everywhere)
  { name = 'pow 0 of zeros, NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:pow(0) end, torch = 'x ** 0', fd = false },
  { name = 'pow 0.3 of zeros, NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:pow(0.3) end, torch = 'x ** 0.3', fd = false },
  { name = 'pow 0.5 of zeros, NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:pow(0.5) end, torch = 'x ** 0.5', fd = false },
  { name = 'pow 1.5 of zeros, NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:pow(1.5) end, torch = 'x ** 1.5', fd = false },
  { name = 'pow -0.5 of zeros, NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:pow(-0.5) end, torch = 'x ** -0.5', fd = false },
  { name = 'pow -1 and -2 of zeros, NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:pow(-1) + x:pow(-2) end, torch = 'x ** -1 + x ** -2', fd = false },
  { name = 'pow 2 and 3 of zeros, NaN and infinities', inputs = { { 'x', { { 11 }, 'const', special } } }, lat = function(x) return x:pow(2) * x:pow(3) end, torch = '(x ** 2) * (x ** 3)', fd = false },
  { name = 'pow 0 has derivative 0 (finite differences)', inputs = { { 'x', { { 7 } } } }, lat = function(x) return x:pow(0) end, torch = 'x ** 0' },
  { name = 'cat of one tensor twice', inputs = { { 'a', { { 2, 3 } } } }, lat = function(a) return lat.cat({ a, a }, 1) end, torch = 'torch.cat([a, a], 0)' },
})

-- ops on an empty batch (N = 0): PyTorch's shapes, and under backward every leaf gets a
-- gradient (zero-size, or zeros for parameters)
H.test('ops on an empty batch: forward shapes and gradients under backward', function()
  local E = function(...) return lat.randn({ ... }) end
  local cases = {
    { 'linear', { E(0, 4), E(3, 4), E(3) }, function(x, w, b) return lat.linear(x, w, b) end, '0,3' },
    { 'matmul', { E(0, 4), E(4, 3) }, function(a, b) return a:matmul(b) end, '0,3' },
    { 'batched matmul', { E(0, 2, 4), E(0, 4, 3) }, function(a, b) return a:matmul(b) end, '0,2,3' },
    { 'relu', { E(0, 3) }, function(x) return x:relu() end, '0,3' },
    { 'mul broadcast', { E(0, 3), E(3) }, function(a, b) return a * b end, '0,3' },
    { 'softmax', { E(0, 5) }, function(x) return x:softmax(2) end, '0,5' },
    { 'cross_entropy sum', { E(0, 5), lat.zeros({ 0 }, 'int32') }, function(x, y) return lat.cross_entropy(x, y, { reduction = 'sum' }) end, '' },
    { 'layer_norm', { E(0, 5), E(5), E(5) }, function(x, w, b) return lat.layer_norm(x, w, b) end, '0,5' },
    { 'batch_norm evaluation', { E(0, 3, 2, 2), E(3), E(3) }, function(x, w, b) return lat.batch_norm(x, w, b, lat.zeros({ 3 }), lat.ones({ 3 })) end, '0,3,2,2' },
    { 'attention', { E(0, 4, 8), E(0, 4, 8), E(0, 4, 8) }, function(q, k, v) return lat.attention(q, k, v, 2) end, '0,4,8' },
    { 'sum over dim 2', { E(0, 3) }, function(x) return x:sum(2) end, '0' },
    { 'amax over dim 2', { E(0, 3) }, function(x) return x:amax(2) end, '0' },
    { 'max over dim 2', { E(0, 3) }, function(x) return (x:max(2)) end, '0' },
    { 'norm(2) over dim 2', { E(0, 3) }, function(x) return x:norm(2, 2) end, '0' },
    { 'cat', { E(0, 3), E(0, 2) }, function(a, b) return lat.cat({ a, b }, 2) end, '0,5' },
  }
  for _, c in ipairs(cases) do
    local ins = c[2]
    for _, t in ipairs(ins) do if t.dtype == 'float32' then t:requires_grad_(true) end end
    local y = c[3](unpack(ins))
    H.assert(table.concat(y.shape, ',') == c[4], ('%s: output shape [%s], want [%s]'):format(c[1], table.concat(y.shape, ','), c[4]))
    y:sum():backward()
    for j, t in ipairs(ins) do
      if t.dtype == 'float32' then
        H.assert(t.grad and table.concat(t.grad.shape, ',') == table.concat(t.shape, ','), ('%s: input %d has a gradient of its shape'):format(c[1], j))
        H.near(t.grad, lat.zeros(t.shape), 0, c[1] .. ': zero gradient')
      end
    end
  end
  H.raises(function() lat.randn({ 0, 3 }):amax(1) end, 'amax', 'empty')
  H.raises(function() lat.randn({ 0, 3 }):argmax(1) end, 'argmax', 'empty')
end)

H.test('clamp_ lets NaN through and clamps the infinities, as clamp (checked against PyTorch above)', function()
  local t = special:clone():clamp_(-0.5, 0.5)
  local want = special:clamp(-0.5, 0.5)
  for k = 0, t:numel() - 1 do
    H.assert(t.f[k] == want.f[k] or (t.f[k] ~= t.f[k] and want.f[k] ~= want.f[k]), ('element %d: %g, want %g'):format(k, t.f[k], want.f[k]))
  end
  H.assert(t.f[0] ~= t.f[0] and t.f[1] == 0.5 and t.f[2] == -0.5, 'clamp_(NaN) is NaN, +-inf go to the bounds')
end)

-- the vectorised exp, tanh and erf against Lua's double-precision math over a wide range
H.test('exp, tanh, sigmoid, gelu over a wide range, and exp at the edges', function()
  local n = 2001
  local x = lat.empty(n)
  for i = 0, n - 1 do x.f[i] = (i - 1000) / 50 end -- -20 .. 20
  local function erf(v) -- double precision erf by its series / continued fraction is overkill:
    local t = 1 / (1 + 0.5 * math.abs(v))  -- Numerical Recipes erfc, relative error < 1.2e-7
    local r = t * math.exp(-v * v - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
    return v >= 0 and 1 - r or r - 1
  end
  local checks = {
    { 'exp', function(v) return math.exp(v) end, x:mul(4) }, -- -80 .. 80
    { 'tanh', math.tanh, x },
    { 'sigmoid', function(v) return 1 / (1 + math.exp(-v)) end, x },
    { 'gelu', function(v) return 0.5 * v * (1 + erf(v / math.sqrt(2))) end, x },
  }
  for _, c in ipairs(checks) do
    local name, ref, input = c[1], c[2], c[3]
    local y = input[name](input)
    for i = 0, n - 1 do
      local want = ref(input.f[i])
      H.assert(math.abs(y.f[i] - want) <= 3e-7 * math.max(1, math.abs(want)) + 2e-6 * math.abs(want),
        ('%s(%.6g) = %.9g, want %.9g'):format(name, input.f[i], y.f[i], want))
    end
  end
  local small = lat.tensor({ 1e-3, -1e-5, 0.1 })
  H.near(small:tanh(), { math.tanh(1e-3), math.tanh(-1e-5), math.tanh(0.1) }, 2e-8, 'tanh near 0 (2 float32 ulp at 0.1)')
  local e = lat.tensor({ 100, -110, 0 / 0 }):exp() -- exp(-100) is a denormal, 3.8e-44
  H.assert(e.f[0] == math.huge and e.f[1] == 0 and e.f[2] ~= e.f[2], 'exp keeps inf, 0 and nan')
end)

-- float64 references: erfc by its series (|z| < 3) or its continued fraction (z >= 3)
local function erfc(z)
  if z < 0 then return 2 - erfc(-z) end
  if z < 3 then
    local term, sum = z, z
    for n = 1, 200 do
      term = term * -z * z / n
      sum = sum + term / (2 * n + 1)
      if math.abs(term) < 1e-17 then break end
    end
    return 1 - 2 / math.sqrt(math.pi) * sum
  end
  local f = z
  for k = 200, 1, -1 do f = z + (k / 2) / f end
  return math.exp(-z * z) / (math.sqrt(math.pi) * f)
end
local SQRT_HALF, INV_SQRT_2PI = math.sqrt(0.5), 1 / math.sqrt(2 * math.pi)
local accurate = {
  { 'tanh', math.tanh, function(v) return 1 / math.cosh(v) ^ 2 end },
  { 'sigmoid', function(v) return 1 / (1 + math.exp(-v)) end, function(v) local e = math.exp(-math.abs(v)); return e / (1 + e) ^ 2 end },
  { 'gelu', function(v) return v * 0.5 * erfc(-v * SQRT_HALF) end,
    function(v) return 0.5 * erfc(-v * SQRT_HALF) + v * math.exp(-v * v / 2) * INV_SQRT_2PI end },
  { 'gelu_tanh', function(v) return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ^ 3))) end,
    function(v)
      local u = math.sqrt(2 / math.pi) * (v + 0.044715 * v ^ 3)
      local du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * v * v)
      return 0.5 * (1 + math.tanh(u)) + 0.5 * v * du / math.cosh(u) ^ 2
    end },
}

-- forward and derivative to float32 accuracy (a few ulp: 4e-6 relative, or 1e-7 absolute for the
-- tails), every 1/1024 over [-10, 10]; tanh' and gelu' were 2.3e-4 off near |x| = 4.5, and
-- gelu_tanh as PyTorch computes it (x (1 + tanh u) / 2 in float) gave -0 for -1.0e-7 at x = -5.12
H.test('tanh, sigmoid, gelu, gelu_tanh and their derivatives within a few ulp of float64 over [-10, 10]', function()
  local n = 20 * 1024 + 1
  local x = lat.empty(n)
  for i = 0, n - 1 do x.f[i] = -10 + i / 1024 end
  x:requires_grad_(true)
  for _, c in ipairs(accurate) do
    local name, f, df = c[1], c[2], c[3]
    local y = x[name](x)
    local g = lat.grad(y, { x }, lat.ones({ n }))[1]
    for i = 0, n - 1 do
      local v = x.f[i]
      for _, pair in ipairs({ { 'forward', y.f[i], f(v) }, { 'derivative', g.f[i], df(v) } }) do
        local got, want = pair[2], pair[3]
        local err = math.abs(got - want)
        H.assert(err <= 1e-7 or err <= 4e-6 * math.abs(want),
          ('%s %s at %.9g: %.9g, float64 %.9g (relative error %.3g)'):format(name, pair[1], v, got, want, err / math.abs(want)))
      end
    end
  end
end)

-- lat__expf (core/internal.h) states a maximum error of 1 ulp against expf: every 2^-12 from -110
-- to 90, and every float around the edges (overflow at 88.7228, the smallest normal result at
-- -87.34, 0 below -103.97, and 0 itself)
H.test('exp within 1 ulp of expf over the whole float range, Inf and denormals included', function()
  local ffi = require 'ffi'
  pcall(ffi.cdef, 'float expf(float);')
  local xs = {}
  for i = 0, 200 * 4096 do xs[#xs + 1] = -110 + i / 4096 end
  local bits = ffi.new('union { float f; int32_t i; }')
  local function key(v) -- floats in order as integers, so that a difference counts ulps
    bits.f = v
    return bits.i < 0 and -(bits.i - -0x80000000) or bits.i
  end
  local function unkey(k)
    bits.i = k < 0 and -0x80000000 - k or k
    return bits.f
  end
  for _, centre in ipairs({ 88.72283935546875, -87.33654022216797, -103.97207641601562, 0 }) do
    local c = key(centre)
    for d = -3000, 3000 do xs[#xs + 1] = unkey(c + d) end
  end
  local x = lat.tensor(xs)
  local y = x:exp()
  local worst, at = 0, nil
  for k = 0, x:numel() - 1 do
    local want = ffi.C.expf(x.f[k])
    local d = math.abs(key(y.f[k]) - key(want))
    if d > worst then worst, at = d, k end
  end
  H.assert(worst <= 1, ('exp(%.9g) = %.9g is %d ulp from expf %.9g'):format(at and x.f[at] or 0, at and y.f[at] or 0, worst, at and ffi.C.expf(x.f[at]) or 0))
  local e = lat.tensor({ 88.72283172607422, 88.72283935546875, 88.5, -103.9, -104, 0 / 0, -0 / 0 }):exp()
  H.assert(e.f[0] > 3.4e38 and e.f[0] < math.huge and e.f[1] == math.huge, 'the last finite value and Inf just above')
  H.near(e.f[2], math.exp(88.5), math.exp(88.5) * 2e-7, 'exp(88.5) (was exp(88))')
  H.assert(e.f[3] > 0 and e.f[3] < 1.2e-38 and e.f[4] == 0, 'a denormal, then 0')
  H.assert(e.f[5] ~= e.f[5] and e.f[6] ~= e.f[6], 'NaN gives NaN')
end)

-- Above 2^20 elements the binary ops split rows into chunks for the threads (ops_elementwise.c,
-- pieces_of); chunk edges, broadcast strides and their gradients must give what one loop gives.
H.test('large binary ops, split into chunks, and their gradients equal elementwise references', function()
  local g = lat.Generator(5)
  local n = 1100003 -- not a multiple of a chunk
  local a = lat.randn({ 3, n }, { rng = g }):requires_grad_()
  local row = lat.randn({ n }, { rng = g }):add(3):requires_grad_()
  local col = lat.randn({ 3, 1 }, { rng = g }):add(3):requires_grad_()
  local function each(t, fn)
    local bad = 0
    for r = 0, 2 do for i = 0, n - 1 do if t.f[r * n + i] ~= fn(r, i) then bad = bad + 1 end end end
    return bad
  end
  local af, rf, cf = a:detach(), row:detach(), col:detach()
  local A = function(r, i) return af.f[r * n + i] end
  local f32 = function(x) return lat.tensor({ x }).f[0] end -- a product or quotient rounded to float
  H.assert(each(a * row, function(r, i) return f32(A(r, i) * rf.f[i]) end) == 0, 'a * row')
  H.assert(each(a - col, function(r, i) return f32(A(r, i) - cf.f[r]) end) == 0, 'a - col')
  H.assert(each(col / a:detach():add(9), function(r, i) return f32(cf.f[r] / f32(A(r, i) + 9)) end) == 0, 'col / a')
  local ga, grow, gcol = unpack(lat.grad((a * row + a / col):sum(), { a, row, col }))
  H.assert(each(ga, function(r, i) return f32(rf.f[i] + f32(1 / cf.f[r])) end) == 0, 'd a = row + 1 / col')
  local worst = 0
  for i = 0, n - 1, 9973 do
    local want = A(0, i) + A(1, i) + A(2, i)
    worst = math.max(worst, math.abs(grow.f[i] - want) / (1 + math.abs(want)))
  end
  H.assert(worst < 1e-6, 'd row = the column sums of a, within ' .. worst)
  for r = 0, 2 do
    local sum = 0
    for i = 0, n - 1 do sum = sum + A(r, i) end
    local want = -sum / (cf.f[r] * cf.f[r])
    H.assert(math.abs(gcol.f[r] - want) < 1e-4 * math.abs(want) + 1e-3, ('d col[%d] = %g, want %g'):format(r, gcol.f[r], want))
  end
end)

H.finish()
