-- bench.lua: lat side of the benchmarks (see run.sh). Prints one line per workload,
-- 'name<TAB>median_ms', with the same names as bench_torch.py.
-- Usage: lat tests/bench/bench.lua [THREADS [REPEATS [FILTER,...]]]
-- A repeat is a block of calls lasting at least BLOCK seconds, timed as a whole, so that lat's
-- garbage collections (which return a step's tensors to the caching allocator) fall inside the
-- timed region as often as they do in a training loop.
local lat = require 'lat'
local ffi = require 'ffi'

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
]]
local blas = ffi.load('openblas')
local ts = ffi.new('bench_timespec')
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = tonumber(arg[1]) or lat.get_num_threads()
local repeats = tonumber(arg[2]) or 10
local only = arg[3]
lat.set_num_threads(threads)

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

local BLOCK = 0.1
local function timeit(fn, warmup)
  local t0 = now()
  for _ = 1, warmup or 3 do fn() end
  local calls = math.max(1, math.ceil(BLOCK / ((now() - t0) / (warmup or 3))))
  local ts = {}
  for i = 1, repeats do
    t0 = now()
    for _ = 1, calls do fn() end
    ts[i] = (now() - t0) / calls
  end
  return median(ts) * 1000
end

local work, order = {}, {}
local function add(name, fn) work[name] = fn; order[#order + 1] = name end

local g = lat.Generator(0)
local a, b = lat.randn({ 1024, 1024 }, { rng = g }), lat.randn({ 1024, 1024 }, { rng = g })
add('matmul 1024^3', function() return a:matmul(b) end)
local c = lat.empty({ 1024, 1024 })
add('raw cblas_sgemm 1024^3', function()
  blas.cblas_sgemm(101, 111, 111, 1024, 1024, 1024, 1, a.f, 1024, b.f, 1024, 0, c.f, 1024)
end)

do
  local x = lat.randn({ 128, 784 }, { rng = g }):requires_grad_(true)
  local w = lat.randn({ 256, 784 }, { rng = g }):requires_grad_(true)
  local bias = lat.randn({ 256 }, { rng = g }):requires_grad_(true)
  local gy = lat.randn({ 128, 256 }, { rng = g })
  add('linear 128x784->256 f+b', function()
    local y = lat.linear(x, w, bias)
    return lat.grad(y, { x, w, bias }, gy)
  end)
end

local function conv_case(cin, cout, wrt)
  local x = lat.randn({ 128, cin, 28, 28 }, { rng = g }):requires_grad_(true)
  local w = (lat.randn({ cout, cin, 3, 3 }, { rng = g }) * 0.1):detach():requires_grad_(true)
  local bias = lat.randn({ cout }, { rng = g }):requires_grad_(true)
  local gy = lat.randn({ 128, cout, 28, 28 }, { rng = g })
  local ins = { x = x, w = w, b = bias }
  local targets = {}
  for k in wrt:gmatch('.') do targets[#targets + 1] = ins[k] end
  return function()
    local y = lat.conv2d(x, w, bias, { padding = 1 })
    return lat.grad(y, targets, gy)
  end
end
add('conv 1->32 f+b (x,w,b)', conv_case(1, 32, 'xwb'))
add('conv 32->64 f+b (x,w,b)', conv_case(32, 64, 'xwb'))
add('conv 1->32 f+b (x only)', conv_case(1, 32, 'x'))
add('conv 32->64 f+b (x only)', conv_case(32, 64, 'x'))

do
  local x = lat.randn({ 128, 32, 28, 28 }, { rng = g }):requires_grad_(true)
  local gy = lat.randn({ 128, 32, 14, 14 }, { rng = g })
  add('max_pool2d 2x2 f+b', function() return lat.grad(lat.max_pool2d(x, 2), { x }, gy) end)
  add('avg_pool2d 2x2 f+b', function() return lat.grad(lat.avg_pool2d(x, 2), { x }, gy) end)
end

-- elementwise ops on a conv activation, and the l2 threat's per-example norm and projection
do
  local x, y = lat.randn({ 128, 32, 14, 14 }, { rng = g }), lat.randn({ 128, 32, 14, 14 }, { rng = g })
  local bias = lat.randn({ 1, 32, 1, 1 }, { rng = g })
  local dims = { 2, 3, 4 }
  add('clamp 128x32x14x14', function() return x:clamp(-0.5, 0.5) end)
  add('add 128x32x14x14', function() return x + y end)
  add('add broadcast 1x32x1x1', function() return x + bias end)
  add('mul scalar 128x32x14x14', function() return x * 0.5 end)
  add('norm per example', function() return x:norm(2, dims, true) end)
  add('l2 project per example', function() return x * (2.0 / x:norm(2, dims, true):clamp(1e-12)):clamp(-math.huge, 1) end)
end

local function wanted(name)
  if not only then return true end
  for f in only:gmatch('[^,]+') do if name:find(f, 1, true) then return true end end
  return false
end
for _, name in ipairs(order) do
  if wanted(name) then
    io.write(('%s\t%.3f\n'):format(name, timeit(work[name])))
    io.flush()
  end
end
