-- OpenMP workers wait passively under lat: the lat command sets OMP_WAIT_POLICY=PASSIVE before
-- libgomp loads unless the user chose a policy, so idle threads sleep instead of spinning
-- against other work on the machine.
local H = require 'harness'

local LAT = arg[-1]
local CHILD = [[
local lat, ffi = require 'lat', require 'ffi'
ffi.cdef 'typedef struct wp_ts { long s, ns; } wp_ts; int wp_clock(int c, wp_ts *t) __asm__("clock_gettime"); int wp_sleep(const wp_ts *t, wp_ts *rem) __asm__("nanosleep");'
local t = ffi.new('wp_ts')
local function clock(c) ffi.C.wp_clock(c, t) return tonumber(t.s) + tonumber(t.ns) * 1e-9 end
local nap = ffi.new('wp_ts', 0, 10e6)
local x = lat.randn({ 1000000 })
local wall, cpu = clock(1), clock(2) -- CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID
for _ = 1, 30 do x:exp() ffi.C.wp_sleep(nap, nil) end -- a parallel op, then 10 ms of idling
print(('policy=%s threads=%d cpu/wall=%.3f'):format(os.getenv('OMP_WAIT_POLICY') or 'unset',
  lat.get_num_threads and lat.get_num_threads() or -1, (clock(2) - cpu) / (clock(1) - wall)))
]]

local function child(env)
  local path = os.tmpname()
  H.write(path, CHILD)
  local out = H.run(("env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT LAT_NUM_THREADS=2 %s '%s' '%s'"):format(env, LAT, path))
  os.remove(path)
  local policy, ratio = out:match('policy=(%S+) threads=%S+ cpu/wall=(%S+)')
  H.assert(policy, 'the child did not finish: ' .. out, 2)
  print('     ' .. out:match('[^\n]*policy=[^\n]*'))
  return policy, tonumber(ratio)
end

H.test('lat waits passively by default: idle workers burn no CPU time', function()
  local policy, ratio = child('')
  H.assert(policy == 'PASSIVE', 'OMP_WAIT_POLICY is ' .. policy)
  -- 30 x 10 ms asleep against ~1 ms of work each: a spinning worker would make this ~1
  H.assert(ratio < 0.5, ('cpu/wall %.3f: idle threads spin'):format(ratio))
end)

H.test("the user's own policy is kept", function()
  H.assert(child('OMP_WAIT_POLICY=ACTIVE') == 'ACTIVE', 'OMP_WAIT_POLICY=ACTIVE was overridden')
  H.assert(child('GOMP_SPINCOUNT=1000') == 'unset', 'GOMP_SPINCOUNT was overridden by a policy')
end)

H.finish()
