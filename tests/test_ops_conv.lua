-- conv2d, max_pool2d, avg_pool2d and global average pooling: finite differences, PyTorch
-- parity (tolerance 1e-4 relative to the largest reference value unless a row says otherwise)
-- and error messages.
local H = require 'harness'
local lat = require 'lat'

-- NaN and -inf in pooling windows: max-pooling gives NaN (the last NaN takes the gradient) as PyTorch
local nan, inf = 0 / 0, math.huge
local pool_special = lat.randn({ 1, 2, 4, 6 }, { rng = lat.Generator(3) })
for k, v in pairs({ [0] = nan, [3] = nan, [7] = nan, [8] = -inf, [13] = inf, [24] = -inf, [25] = -inf, [30] = -inf, [31] = -inf }) do pool_special.f[k] = v end

local function conv(opts) return function(x, w, b) return lat.conv2d(x, w, b, opts) end end
local function conv_nb(opts) return function(x, w) return lat.conv2d(x, w, nil, opts) end end

H.ops{
  -- conv2d
  { name = 'conv2d 3x3 bias', inputs = { { 'x', { { 2, 3, 5, 6 } } }, { 'w', { { 4, 3, 3, 3 } } }, { 'b', { { 4 } } } },
    lat = conv(), torch = 'F.conv2d(x, w, b)' },
  { name = 'conv2d 3x3 no bias pad 1', inputs = { { 'x', { { 2, 3, 5, 6 } } }, { 'w', { { 4, 3, 3, 3 } } } },
    lat = conv_nb{ padding = 1 }, torch = 'F.conv2d(x, w, padding=1)' },
  { name = 'conv2d stride 2 pad 1 odd size', inputs = { { 'x', { { 3, 2, 7, 9 } } }, { 'w', { { 5, 2, 3, 3 } } }, { 'b', { { 5 } } } },
    lat = conv{ stride = 2, padding = 1 }, torch = 'F.conv2d(x, w, b, stride=2, padding=1)' },
  { name = 'conv2d pad 2 kernel 5', inputs = { { 'x', { { 2, 2, 6, 5 } } }, { 'w', { { 3, 2, 5, 5 } } }, { 'b', { { 3 } } } },
    lat = conv{ padding = 2 }, torch = 'F.conv2d(x, w, b, padding=2)' },
  { name = 'conv2d non-square kernel 2x3', inputs = { { 'x', { { 2, 3, 6, 7 } } }, { 'w', { { 4, 3, 2, 3 } } }, { 'b', { { 4 } } } },
    lat = conv(), torch = 'F.conv2d(x, w, b)' },
  { name = 'conv2d non-square kernel 3x1, stride {2,1}, padding {1,0}', inputs = { { 'x', { { 2, 2, 7, 5 } } }, { 'w', { { 3, 2, 3, 1 } } }, { 'b', { { 3 } } } },
    lat = conv{ stride = { 2, 1 }, padding = { 1, 0 } }, torch = 'F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0))' },
  { name = 'conv2d 1 input channel, 8 outputs, pad 1', inputs = { { 'x', { { 4, 1, 9, 8 } } }, { 'w', { { 8, 1, 3, 3 } } }, { 'b', { { 8 } } } },
    lat = conv{ padding = 1 }, torch = 'F.conv2d(x, w, b, padding=1)' },
  { name = 'conv2d 1 input channel, stride 2, no bias', inputs = { { 'x', { { 3, 1, 8, 8 } } }, { 'w', { { 6, 1, 3, 3 } } } },
    lat = conv_nb{ stride = 2 }, torch = 'F.conv2d(x, w, stride=2)' },
  { name = 'conv2d 1x1', inputs = { { 'x', { { 3, 4, 5, 5 } } }, { 'w', { { 6, 4, 1, 1 } } }, { 'b', { { 6 } } } },
    lat = conv(), torch = 'F.conv2d(x, w, b)' },
  { name = 'conv2d 1x1 large batch (images grouped per gemm)', inputs = { { 'x', { { 40, 3, 4, 4 } } }, { 'w', { { 5, 3, 1, 1 } } }, { 'b', { { 5 } } } },
    lat = conv(), torch = 'F.conv2d(x, w, b)' },
  { name = 'conv2d small maps, batch 37 (grouped, ragged last group)', inputs = { { 'x', { { 37, 2, 5, 5 } } }, { 'w', { { 3, 2, 3, 3 } } }, { 'b', { { 3 } } } },
    lat = conv{ padding = 1 }, torch = 'F.conv2d(x, w, b, padding=1)' },
  { name = 'conv2d kernel as large as the padded input', inputs = { { 'x', { { 2, 2, 3, 4 } } }, { 'w', { { 2, 2, 5, 4 } } }, { 'b', { { 2 } } } },
    lat = conv{ padding = { 1, 0 } }, torch = 'F.conv2d(x, w, b, padding=(1, 0))' },
  { name = 'conv2d stride larger than kernel', inputs = { { 'x', { { 2, 3, 11, 10 } } }, { 'w', { { 2, 3, 2, 2 } } } },
    lat = conv_nb{ stride = 3, padding = 1 }, torch = 'F.conv2d(x, w, stride=3, padding=1)' },
  { name = 'conv2d gradient for x only', inputs = { { 'x', { { 2, 3, 6, 6 } } }, { 'w', { { 4, 3, 3, 3 } } }, { 'b', { { 4 } } } },
    lat = conv{ padding = 1 }, torch = 'F.conv2d(x, w, b, padding=1)', grad = { 'x' } },
  { name = 'conv2d gradient for w and b only', inputs = { { 'x', { { 2, 3, 6, 6 } } }, { 'w', { { 4, 3, 3, 3 } } }, { 'b', { { 4 } } } },
    lat = conv{ padding = 1 }, torch = 'F.conv2d(x, w, b, padding=1)', grad = { 'w', 'b' } },
  { name = 'conv2d 17 -> 20 channels, kernel 3x2, padding {2,1} (tails of every tile)', inputs = { { 'x', { { 3, 17, 8, 7 } } }, { 'w', { { 20, 17, 3, 2 } } }, { 'b', { { 20 } } } },
    lat = conv{ padding = { 2, 1 } }, torch = 'F.conv2d(x, w, b, padding=(2, 1))' },
  { name = 'conv2d 2x3 map, 2x2 kernel, pad 1 (grid rows shorter than a vector)', inputs = { { 'x', { { 3, 2, 2, 3 } } }, { 'w', { { 5, 2, 2, 2 } } }, { 'b', { { 5 } } } },
    lat = conv{ padding = 1 }, torch = 'F.conv2d(x, w, b, padding=1)' },
  { name = 'conv2d input used twice (gradients accumulate)', inputs = { { 'x', { { 2, 2, 5, 5 } } }, { 'w', { { 2, 2, 3, 3 } } } },
    lat = function(x, w) return lat.conv2d(x, w, nil, { padding = 1 }) + lat.conv2d(x, w, nil, { padding = 1 }) * x end,
    torch = 'F.conv2d(x, w, padding=1) + F.conv2d(x, w, padding=1) * x' },
  -- max pooling (ties are unlikely with normal inputs; kinks are skipped in finite differences)
  { name = 'max_pool2d 2x2', inputs = { { 'x', { { 2, 3, 6, 8 } } } }, lat = function(x) return lat.max_pool2d(x, 2) end,
    torch = 'F.max_pool2d(x, 2)', kinks = true },
  { name = 'max_pool2d 2x2 odd size', inputs = { { 'x', { { 2, 2, 7, 5 } } } }, lat = function(x) return lat.max_pool2d(x, 2) end,
    torch = 'F.max_pool2d(x, 2)', kinks = true },
  { name = 'max_pool2d 3x3 stride 2 pad 1', inputs = { { 'x', { { 2, 3, 7, 8 } } } }, lat = function(x) return lat.max_pool2d(x, 3, { stride = 2, padding = 1 }) end,
    torch = 'F.max_pool2d(x, 3, stride=2, padding=1)', kinks = true },
  { name = 'max_pool2d 3x3 stride 1 (overlapping)', inputs = { { 'x', { { 1, 2, 6, 6 } } } }, lat = function(x) return lat.max_pool2d(x, 3, { stride = 1 }) end,
    torch = 'F.max_pool2d(x, 3, stride=1)', kinks = true },
  { name = 'max_pool2d 2x3 stride {1,2} pad {1,1}', inputs = { { 'x', { { 2, 2, 5, 7 } } } }, lat = function(x) return lat.max_pool2d(x, { 2, 3 }, { stride = { 1, 2 }, padding = { 1, 1 } }) end,
    torch = 'F.max_pool2d(x, (2, 3), stride=(1, 2), padding=(1, 1))', kinks = true },
  { name = 'max_pool2d 3-d input', inputs = { { 'x', { { 3, 6, 6 } } } }, lat = function(x) return lat.max_pool2d(x, 2) end,
    torch = 'F.max_pool2d(x, 2)', kinks = true },
  -- average pooling (count_include_pad=True, PyTorch's default)
  { name = 'avg_pool2d 2x2', inputs = { { 'x', { { 2, 3, 6, 8 } } } }, lat = function(x) return lat.avg_pool2d(x, 2) end, torch = 'F.avg_pool2d(x, 2)' },
  { name = 'avg_pool2d 2x2 odd size', inputs = { { 'x', { { 2, 3, 7, 5 } } } }, lat = function(x) return lat.avg_pool2d(x, 2) end, torch = 'F.avg_pool2d(x, 2)' },
  { name = 'avg_pool2d and max_pool2d of one input (gradients accumulate)', inputs = { { 'x', { { 2, 2, 6, 4 } } } },
    lat = function(x) return lat.avg_pool2d(x, 2) * lat.avg_pool2d(x, 2) + lat.max_pool2d(x, 2) * lat.max_pool2d(x, 2) end,
    torch = 'F.avg_pool2d(x, 2) * F.avg_pool2d(x, 2) + F.max_pool2d(x, 2) * F.max_pool2d(x, 2)', kinks = true },
  { name = 'avg_pool2d 3x3 stride 2 pad 1', inputs = { { 'x', { { 2, 2, 7, 8 } } } }, lat = function(x) return lat.avg_pool2d(x, 3, { stride = 2, padding = 1 }) end,
    torch = 'F.avg_pool2d(x, 3, stride=2, padding=1)' },
  { name = 'avg_pool2d 3x2 stride 1 pad {1,0}', inputs = { { 'x', { { 2, 2, 5, 6 } } } }, lat = function(x) return lat.avg_pool2d(x, { 3, 2 }, { stride = 1, padding = { 1, 0 } }) end,
    torch = 'F.avg_pool2d(x, (3, 2), stride=1, padding=(1, 0))' },
  { name = 'avg_pool2d odd size, stride 3', inputs = { { 'x', { { 1, 3, 11, 9 } } } }, lat = function(x) return lat.avg_pool2d(x, 2, { stride = 3 }) end,
    torch = 'F.avg_pool2d(x, 2, stride=3)' },
  { name = 'global_avg_pool2d', inputs = { { 'x', { { 3, 4, 5, 6 } } } }, lat = function(x) return lat.global_avg_pool2d(x) end,
    torch = 'F.adaptive_avg_pool2d(x, 1).flatten(1)' },
  -- a small CNN end to end
  { name = 'conv -> relu -> max_pool -> conv -> avg_pool', inputs = { { 'x', { { 2, 1, 10, 10 } } }, { 'w1', { { 4, 1, 3, 3 } } }, { 'b1', { { 4 } } }, { 'w2', { { 3, 4, 3, 3 } } } },
    lat = function(x, w1, b1, w2)
      local h = lat.max_pool2d(lat.conv2d(x, w1, b1, { padding = 1 }):relu(), 2)
      return lat.avg_pool2d(lat.conv2d(h, w2, nil, { padding = 1 }), 5)
    end,
    torch = 'F.avg_pool2d(F.conv2d(F.max_pool2d(F.conv2d(x, w1, b1, padding=1).relu(), 2), w2, padding=1), 5)',
    fd = false }, -- ReLU and max-pool kinks lie too close for finite differences here; each op is checked alone above
  { name = 'max_pool2d 2x2 with NaN, inf and all -inf windows', inputs = { { 'x', { { 1, 2, 4, 6 }, 'const', pool_special } } },
    lat = function(x) return lat.max_pool2d(x, 2) end, torch = 'F.max_pool2d(x, 2)', fd = false },
  { name = 'max_pool2d 3x3 stride 1 pad 1 with NaN, inf and -inf', inputs = { { 'x', { { 1, 2, 4, 6 }, 'const', pool_special } } },
    lat = function(x) return lat.max_pool2d(x, 3, { stride = 1, padding = 1 }) end, torch = 'F.max_pool2d(x, 3, stride=1, padding=1)', fd = false },
  { name = 'avg_pool2d with NaN and infinities', inputs = { { 'x', { { 1, 2, 4, 6 }, 'const', pool_special } } },
    lat = function(x) return lat.avg_pool2d(x, 2) end, torch = 'F.avg_pool2d(x, 2)', fd = false },
  { name = 'conv2d on an empty batch', inputs = { { 'x', { { 0, 2, 5, 5 } } }, { 'w', { { 3, 2, 3, 3 } } }, { 'b', { { 3 } } } },
    lat = conv{ padding = 1 }, torch = 'F.conv2d(x, w, b, padding=1)', fd = false },
  { name = 'max_pool2d on an empty batch', inputs = { { 'x', { { 0, 2, 4, 4 } } } }, lat = function(x) return lat.max_pool2d(x, 2) end, torch = 'F.max_pool2d(x, 2)', fd = false },
  { name = 'conv2d(x, x): one tensor as input and weight', inputs = { { 'x', { { 2, 2, 3, 3 } } } },
    lat = function(x) return lat.conv2d(x, x, nil, { padding = 1 }) end, torch = 'F.conv2d(x, x, padding=1)' },
  { name = 'conv2d(x, x) 1x1 (the im2col path)', inputs = { { 'x', { { 3, 3, 1, 1 } } } },
    lat = function(x) return lat.conv2d(x, x) end, torch = 'F.conv2d(x, x)' },
}

local function randn(...) return lat.randn({ ... }) end

H.test('conv2d errors', function()
  H.raises(function() lat.conv2d(randn(3, 5, 5), randn(2, 3, 3, 3)) end, 'conv2d', '[N, C, H, W]', '[3, 5, 5]')
  H.raises(function() lat.conv2d(randn(1, 3, 5, 5), randn(2, 3, 3)) end, 'conv2d', 'weight', '[2, 3, 3]')
  H.raises(function() lat.conv2d(randn(1, 3, 5, 5), randn(2, 1, 3, 3)) end, 'conv2d: input has 3 channels, weight expects 1')
  H.raises(function() lat.conv2d(randn(1, 3, 5, 5), randn(2, 3, 3, 3), randn(3)) end, 'conv2d: bias must be [2]')
  H.raises(function() lat.conv2d(randn(1, 3, 4, 4), randn(2, 3, 7, 3), nil, { padding = 1 }) end, 'kernel 7x3 is larger than the padded input 6x6')
  H.raises(function() lat.conv2d(randn(1, 3, 5, 5), randn(2, 3, 3, 3), nil, { stride = 0 }) end, 'conv2d: stride must be at least 1')
  H.raises(function() lat.conv2d(randn(1, 3, 5, 5), randn(2, 3, 3, 3), nil, { padding = -1 }) end, 'conv2d: padding must not be negative')
  H.raises(function() lat.conv2d(lat.randint(0, 3, { 1, 3, 5, 5 }), randn(2, 3, 3, 3)) end, 'conv2d')
end)

H.test('pooling errors', function()
  H.raises(function() lat.max_pool2d(randn(5, 5), 2) end, 'max_pool2d', '[N, C, H, W]')
  H.raises(function() lat.max_pool2d(randn(1, 1, 3, 3), 5) end, 'max_pool2d: kernel 5x5 is larger than the padded input 3x3')
  H.raises(function() lat.max_pool2d(randn(1, 1, 6, 6), 2, { stride = 0 }) end, 'max_pool2d: stride must be at least 1')
  H.raises(function() lat.avg_pool2d(randn(1, 1, 6, 6), 2, { padding = 2 }) end, 'avg_pool2d: padding 2x2 is more than half the kernel 2x2')
  H.raises(function() lat.avg_pool2d(randn(1, 1, 6, 6), 0) end, 'avg_pool2d: kernel must be at least 1x1')
end)

H.test('conv2d empty batch', function()
  local x = lat.randn({ 0, 2, 5, 5 })
  local w = lat.randn({ 3, 2, 3, 3 }):requires_grad_(true)
  local b = lat.randn({ 3 }):requires_grad_(true)
  local y = lat.conv2d(x, w, b, { padding = 1 })
  H.assert(table.concat(y.shape, ',') == '0,3,5,5')
  local g = lat.grad(y:sum(), { w, b })
  H.near(g[1], lat.zeros({ 3, 2, 3, 3 }), 0)
  H.near(g[2], lat.zeros({ 3 }), 0)
end)

-- backward (not lat.grad, which fills in zeros): every leaf gets a gradient, zero-size for x
H.test('conv2d and pooling on an empty batch give x a zero-size gradient, as PyTorch', function()
  local cases = {
    { 'conv2d 3x3', function(x, w, b) return lat.conv2d(x, w, b, { padding = 1 }) end, { 3, 2, 3, 3 } },
    { 'conv2d 1x1', function(x, w, b) return lat.conv2d(x, w, b) end, { 3, 2, 1, 1 } },
    { 'conv2d stride 2', function(x, w, b) return lat.conv2d(x, w, b, { stride = 2 }) end, { 3, 2, 3, 3 } },
    { 'max_pool2d', function(x) return lat.max_pool2d(x, 2) end },
    { 'avg_pool2d', function(x) return lat.avg_pool2d(x, 2) end },
  }
  for _, c in ipairs(cases) do
    local x = lat.randn({ 0, 2, 6, 6 }):requires_grad_(true)
    local w = c[3] and lat.randn(c[3]):requires_grad_(true)
    local b = c[3] and lat.randn({ 3 }):requires_grad_(true)
    c[2](x, w, b):sum():backward()
    H.assert(x.grad and table.concat(x.grad.shape, ',') == '0,2,6,6', c[1] .. ': x.grad is a [0, 2, 6, 6] tensor')
    if w then
      H.near(w.grad, lat.zeros(c[3]), 0, c[1] .. ': zero weight gradient')
      H.near(b.grad, lat.zeros({ 3 }), 0, c[1] .. ': zero bias gradient')
    end
  end
end)

H.test('max_pool2d ties go to the first maximum, padding never wins', function()
  local x = lat.full({ 1, 1, 2, 2 }, -5):requires_grad_(true)
  local y = lat.max_pool2d(x, 2, { stride = 1, padding = 1 })
  H.near(y, lat.full({ 1, 1, 3, 3 }, -5), 0)
  local g = lat.grad(y:sum(), { x })[1]
  -- each of the 9 windows routes to its first (row-major) element
  H.near(g, { 4, 2, 2, 1 }, 0)
end)

local ffi = require 'ffi'
ffi.cdef 'int setenv(const char *name, const char *value, int overwrite); int unsetenv(const char *name);'

-- relative agreement of two tensors, scaled by the largest magnitude in a
local function close(a, b, rel, what)
  local scale = 1
  for i = 0, a:numel() - 1 do scale = math.max(scale, math.abs(a.f[i])) end
  H.near(a, b, rel * scale, what)
end

-- output and gradients of x, w, b for conv2d with gy, under LAT_CONV_PATH=path
local function conv_all(path, x, w, b, gy, opts)
  ffi.C.setenv('LAT_CONV_PATH', path, 1)
  local ok, res = pcall(function()
    local xs, ws, bs = x:clone():requires_grad_(true), w:clone():requires_grad_(true), b:clone():requires_grad_(true)
    local y = lat.conv2d(xs, ws, bs, opts)
    return { y, unpack(lat.grad(y, { xs, ws, bs }, gy)) }
  end)
  ffi.C.unsetenv('LAT_CONV_PATH')
  if not ok then error(res, 0) end
  return res
end

H.test('conv2d direct kernels agree with im2col + sgemm', function()
  -- N, C, H, W, O, kh, kw, ph, pw[, sh, sw] (where the direct kernels apply)
  for _, c in ipairs{
    { 2, 3, 7, 9, 5, 3, 3, 1, 1 }, { 3, 1, 2, 3, 4, 2, 2, 1, 1 }, { 2, 17, 6, 5, 20, 3, 2, 2, 1 },
    { 1, 4, 16, 20, 9, 5, 5, 2, 2 }, { 4, 2, 1, 1, 3, 1, 3, 0, 1 }, { 2, 5, 9, 4, 33, 1, 2, 0, 1 },
    { 5, 32, 12, 12, 64, 3, 3, 1, 1 }, { 3, 1, 28, 28, 32, 3, 3, 1, 1 }, { 2, 64, 5, 5, 16, 3, 3, 0, 0 },
    { 3, 5, 9, 8, 7, 3, 3, 1, 1, 2, 2 }, { 2, 3, 10, 11, 6, 3, 3, 0, 0, 2, 2 }, { 2, 4, 13, 9, 5, 5, 4, 2, 3, 2, 3 },
    { 2, 2, 12, 12, 8, 4, 4, 1, 1, 4, 4 }, { 3, 16, 14, 14, 32, 3, 3, 1, 1, 2, 2 }, { 2, 3, 7, 6, 4, 3, 2, 1, 0, 3, 1 },
    { 4, 1, 28, 28, 16, 3, 3, 1, 1, 2, 2 }, { 2, 2, 3, 3, 3, 3, 3, 2, 2, 2, 2 },
  } do
    local N, C, Hh, W, O, kh, kw, ph, pw, sh, sw = unpack(c)
    sh, sw = sh or 1, sw or 1
    local x, w, b = lat.randn({ N, C, Hh, W }), lat.randn({ O, C, kh, kw }), lat.randn({ O })
    local opts = { padding = { ph, pw }, stride = { sh, sw } }
    local OH, OW = math.floor((Hh + 2 * ph - kh) / sh) + 1, math.floor((W + 2 * pw - kw) / sw) + 1
    local gy = lat.randn({ N, O, OH, OW })
    local d, r = conv_all('direct', x, w, b, gy, opts), conv_all('im2col', x, w, b, gy, opts)
    for k, what in ipairs{ 'output', 'd input', 'd weight', 'd bias' } do
      close(r[k], d[k], 1e-5, table.concat(c, ',') .. ': ' .. what)
    end
  end
end)

H.test('conv2d and pooling under threads 1 and 2 agree', function()
  -- large enough that both conv2d and max_pool2d split their work across threads
  local x = lat.randn({ 32, 8, 16, 16 })
  local w = lat.randn({ 8, 8, 3, 3 })
  local b = lat.randn({ 8 })
  local res = {}
  for _, t in ipairs({ 1, 2 }) do
    lat.set_num_threads(t)
    local xs, ws, bs = x:clone():requires_grad_(true), w:clone():requires_grad_(true), b:clone():requires_grad_(true)
    local y = lat.max_pool2d(lat.conv2d(xs, ws, bs, { padding = 1 }), 2)
    res[t] = { y, unpack(lat.grad(y:sum(), { xs, ws, bs })) }
  end
  lat.set_num_threads(0)
  for k = 1, 4 do close(res[1][k], res[2][k], 1e-5) end
end)

H.test('conv2d im2col path under threads 1 and 2 agrees (small maps grouped)', function()
  local x, w, b = lat.randn({ 33, 6, 9, 9 }), lat.randn({ 7, 6, 3, 3 }), lat.randn({ 7 })
  local gy = lat.randn({ 33, 7, 5, 5 })
  local res = {}
  for _, t in ipairs({ 1, 2 }) do
    lat.set_num_threads(t)
    res[t] = conv_all('im2col', x, w, b, gy, { stride = 2, padding = 1 })
  end
  lat.set_num_threads(0)
  for k = 1, 4 do close(res[1][k], res[2][k], 1e-5) end
end)

H.finish()
