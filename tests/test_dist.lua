-- lat.dist: data-parallel training over MPI ranks. The single-process behaviour and the errors
-- are tested everywhere; the runs under mpirun (2 ranks on loopback) only where liblat_mpi was
-- built. Without it the test says why and exits 77, which CTest reports as skipped.
local H = require 'harness'
local lat = require 'lat'
local ffi = require 'ffi'
local dist = lat.dist

local LAT = arg[-1]
local MPIRUN = '< /dev/null ' .. (os.getenv('LAT_MPIEXEC') or 'mpirun') .. ' --oversubscribe --allow-run-as-root'
local TOL = 1e-5 -- the loss curves agree to about 2e-7 (float sums in another order)

local function normalise(s)
  return (s:gsub('/%*.-%*/', ''):gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', ''))
end

H.test('dist/cdef.lua matches core/dist/lat_dist.h', function()
  local block = H.read('../core/dist/lat_dist.h'):match('/%* LAT_DIST_FFI_BEGIN %*/(.-)/%* LAT_DIST_FFI_END %*/')
  H.assert(block, 'markers not found in lat_dist.h')
  H.assert(normalise(block) == normalise(require 'lat.dist.cdef'), 'the declarations differ')
end)

H.test('one process: size 1, rank 0, the main one; the collective calls change nothing', function()
  H.assert(dist.size() == 1 and dist.rank() == 0 and dist.is_main(), 'not a single process')
  local p = lat.full({ 3 }, 2):requires_grad_()
  ;(p * p):sum():backward()
  dist.allreduce_grads({ p }, 5)
  H.near(p.grad, { 4, 4, 4 }, 0, 'gradient')
  dist.broadcast({ p })
  H.near(p, { 2, 2, 2 }, 0, 'broadcast tensor')
  local s = dist.sum({ 1.5, -2 })
  H.assert(s[1] == 1.5 and s[2] == -2, 'sum')
  dist.barrier()
  H.raises(function() dist.allreduce_grads({ p, 'w' }) end, '[2] is a string, not a tensor')
end)

H.test('Part: rank r of N gets rows [floor(r*B/N), floor((r+1)*B/N)) of each field of B rows', function()
  local batch = { x = lat.arange(20):reshape(10, 2), y = lat.arange(10, 'int32'), words = {},
    mask = lat.ones(4), note = 'shared' }
  for i = 1, 10 do batch.words[i] = 'w' .. i end
  local firsts, rows = {}, {}
  for r = 0, 2 do
    local part = dist.Part(batch, r, 3)
    firsts[#firsts + 1], rows[#rows + 1] = part.batch.y.i[0], part.rows
    H.near(part.batch.x, batch.x:narrow(1, firsts[#firsts] + 1, part.rows), 0, 'x rows')
    H.assert(#part.batch.words == part.rows and part.batch.words[1] == 'w' .. (firsts[#firsts] + 1), 'list rows')
    H.assert(part.batch.mask == batch.mask and part.batch.note == 'shared', 'fields of another length are shared')
  end
  H.assert(table.concat(firsts, ',') == '0,3,6' and table.concat(rows, ',') == '3,3,4', 'slices ' .. table.concat(rows, ','))
  H.raises(function() dist.Part({ x = lat.zeros(1, 2) }, 0, 2) end, 'a batch of 1 rows cannot be split over 2 ranks')
  H.raises(function() dist.Part({ z = lat.zeros(4) }, 0, 2) end, 'without a tensor x or y')
end)

H.test('Part:reduce in one process gives back the loss and the extra numbers', function()
  local part = dist.Part({ x = lat.zeros(4, 2) })
  local p = lat.zeros(2):requires_grad_()
  local loss, extra = part:reduce({ p }, 0.25, { acc = lat.full({ 1 }, 0.5), name = 'kept' })
  H.assert(loss == 0.25 and extra.acc == 0.5 and extra.name == 'kept', 'reduce changed the values')
end)

-- a child lat with a fake launcher environment and, unless given, no MPI library
local function child(env, code)
  return H.run(("env %s '%s' -e \"%s\""):format(env, LAT, code))
end

H.test('several ranks without MPI: an error that says so, not each rank training alone', function()
  local out = child('OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 LAT_MPI_LIBRARY=/nonexistent/liblat_mpi.so',
    'print(lat.dist.size())')
  H.assert(out:find('one of 2 ranks that mpirun (Open MPI) started, but this lat was built without MPI', 1, true)
    and out:find('[exit 1]', 1, true), out)
  out = child('LAT_MPI_LIBRARY=/nonexistent/liblat_mpi.so', 'lat.dist.init()')
  H.assert(out:find('lat.dist.init: MPI is not available: cannot load /nonexistent/liblat_mpi.so', 1, true)
    and out:find('[exit 1]', 1, true), out)
  out = child('PMI_SIZE=3 PMI_RANK=2 LAT_MPI_LIBRARY=/nonexistent/liblat_mpi.so',
    'lat.dist.independent(); print(lat.dist.size(), lat.dist.rank(), lat.dist.launched())')
  H.assert(out:find('1\t0\t3\t2\ta PMI launcher', 1, true) and out:find('[exit 0]', 1, true), out)
end)

-- ---------------------------------------------------------------- under mpirun

local mpi_lib = ((os.getenv('LAT_LIBRARY') or ''):match('^(.*/)[^/]*$') or '') .. 'liblat_mpi.so'
if not H.exists(mpi_lib) then
  print(('skipped: the runs under mpirun, as lat was built without liblat_mpi (no %s: CMake found no ' ..
    'MPI C library, or this is a sanitizer or fuzz build; install libopenmpi-dev and openmpi-bin, then ' ..
    'rebuild)'):format(mpi_lib))
  print(('%d passed, %d failed'):format(H.passed, H.failed))
  os.exit(H.failed == 0 and 77 or 1, true)
end

-- the lines 'phase step loss grad_norm' that rank 0 of dist_child.lua prints
local function curve(out)
  local steps = {}
  for phase, step, loss, gnorm in out:gmatch('(%a+) (%d+) (%S+) (%S+)\n') do
    steps[#steps + 1] = { phase = phase, step = tonumber(step), loss = tonumber(loss), gnorm = tonumber(gnorm) }
  end
  return steps
end

local function run_child(ranks, args, seconds)
  local cmd = ranks == 1 and ("'%s' dist_child.lua %s"):format(LAT, args)
    or ("timeout %d %s -np %d '%s' dist_child.lua %s"):format(seconds or 300, MPIRUN, ranks, LAT, args)
  local out = H.run('LAT_NUM_THREADS=1 ' .. cmd)
  return out, curve(out)
end

-- the largest difference between two loss curves of one phase (they must have the same steps)
local function compare(a, b, phase)
  local worst, n = 0, 0
  local bi = {}
  for _, s in ipairs(b) do if s.phase == phase then bi[s.step] = s end end
  for _, s in ipairs(a) do
    if s.phase == phase then
      local t = bi[s.step]
      H.assert(t, ('%s step %d is missing'):format(phase, s.step), 2)
      worst = math.max(worst, math.abs(s.loss - t.loss), math.abs(s.gnorm - t.gnorm))
      n = n + 1
    end
  end
  H.assert(n > 0, 'no ' .. phase .. ' steps', 2)
  H.assert(worst <= TOL, ('%s: the loss curves differ by up to %g (tolerance %g)'):format(phase, worst, TOL), 2)
  return worst, n
end

local one_out, one = run_child(1, '--batch=64 --lat')
local two_out, two = run_child(2, '--batch=64 --lat')

H.test('plain training: 2 ranks x 32 rows follow 1 process x 64 rows', function()
  H.assert(#one == 24 and one_out:find('[exit 0]', 1, true), one_out)
  H.assert(#two == 24 and two_out:find('[exit 0]', 1, true), two_out)
  local worst, n = compare(one, two, 'train')
  print(('     %d steps, largest difference %.3g'):format(n, worst))
end)

H.test('LAT fine-tuning (the attack on each rank\'s rows): 2 ranks follow 1 process', function()
  local worst, n = compare(one, two, 'lat')
  print(('     %d steps, largest difference %.3g'):format(n, worst))
end)

H.test('uneven rows (63 over 2 and 3 ranks) are weighted by their counts', function()
  local _, ref = run_child(1, '--batch=63 --lat')
  for _, ranks in ipairs({ 2, 3 }) do
    local out, got = run_child(ranks, '--batch=63 --lat')
    H.assert(#got == #ref and #ref == 27, out)
    local a = compare(ref, got, 'train')
    local b = compare(ref, got, 'lat')
    print(('     %d ranks: largest difference %.3g'):format(ranks, math.max(a, b)))
  end
end)

H.test('a rank that fails ends the whole job with its error (no rank waits forever)', function()
  -- (rank 0 waits in the step's reduction: had rank 1 finalised MPI rather than aborting, the
  -- job would hang; Open MPI's own 'MPI_ABORT was invoked' note is sometimes lost)
  local out = run_child(2, '--fail_at=3', 60)
  H.assert(out:find('rank 1 fails on purpose at step 3', 1, true), out)
  H.assert(not out:find('[exit 0]', 1, true) and not out:find('[exit 124]', 1, true), out)
end)

H.test('ranks whose loaders disagree are an error naming the cause', function()
  local out = run_child(2, '--rank_seed')
  H.assert(out:find('the ranks hold different global batches', 1, true) and not out:find('[exit 0]', 1, true), out)
end)

H.test('allreduce_grads, broadcast, sum, a size mismatch; batch-norm buffers stay alike across 2 ranks', function()
  local path = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/dist_calls.lua'
  H.write(path, [[
local lat = require 'lat'
local d, r = lat.dist, lat.dist.rank()
assert(d.size() == 2)
local p = lat.full({ 4 }, r + 1):requires_grad_()
;(p * p):sum():backward()                     -- grad 2 (rank 0), 4 (rank 1)
d.allreduce_grads({ p }, r == 0 and 1 or 3)  -- (1 * 2 + 3 * 4) / 4
assert(p.grad.f[0] == 3.5 and p.grad.f[3] == 3.5, 'weighted mean ' .. p.grad.f[0])
local q = lat.full({ 2 }, r + 10)
d.broadcast({ q })
assert(q.f[0] == 10 and q.f[1] == 10, 'broadcast')
local s = d.sum({ r, 1 })
assert(s[1] == 1 and s[2] == 2, 'sum')
local list = { p }
if r == 1 then list[2] = lat.zeros(1):requires_grad_(); (list[2] * 1):sum():backward() end
local ok, err = pcall(d.allreduce_grads, list)
assert(not ok and err:find('the ranks pass different numbers of elements %(from 4 to 5%)'), tostring(err))
d.barrier()
-- training with batch norm: the ranks keep the same parameters and running statistics
local nn = lat.nn
local g = lat.Generator(3 + r) -- built differently on each rank: the first step shares rank 0's
local model = nn.Sequential{ { 'fc', nn.Linear(6, 8, { rng = g }) }, { 'bn', nn.BatchNorm1d(8) }, { 'out', nn.Linear(8, 3, { rng = g }) } }
local cfg = { model = model, optimizer = lat.optim.SGD(model:named_parameters(), { lr = 0.1 }),
  loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end }
local data = lat.Generator(9)
for _ = 1, 3 do lat.train.step(cfg, { x = lat.randn({ 10, 6 }, { rng = data }), y = lat.randint(0, 3, { 10 }, { rng = data }) }) end
local state = {}
for _, e in ipairs(model:named_parameters()) do state[#state + 1] = ('%a'):format(e[2]:sum():item()) end
for _, e in ipairs(model:named_buffers()) do state[#state + 1] = ('%a'):format(e[2]:float():sum():item()) end
print('rank ' .. r .. ' state ' .. table.concat(state, ' '))
print('rank ' .. r .. ' ok')
]])
  local out = H.run(('LAT_NUM_THREADS=1 timeout 120 %s -np 2 \'%s\' %s'):format(MPIRUN, LAT, path))
  H.assert(out:find('rank 0 ok', 1, true) and out:find('rank 1 ok', 1, true) and out:find('[exit 0]', 1, true), out)
  local s0, s1 = out:match('rank 0 state ([^\n]+)'), out:match('rank 1 state ([^\n]+)')
  H.assert(s0 and s0 == s1, 'the ranks\' parameters or buffers differ:\n' .. out)
end)

H.finish()
