-- lat.optim against torch.optim: SGD and AdamW step by step, clip_grad_norm, state dicts,
-- schedules. Tolerance: |lat - torch| <= 1e-6 * max(|torch|, 1e-2) per element. On this
-- machine's PyTorch (1.13, AVX2 kernels) the updates agree bit for bit; the clipping norm, which
-- PyTorch sums in float32, differs in the last place.
local H = require 'harness'
local lat = require 'lat'
local cjson = require 'cjson'

local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local RTOL, FLOOR = 1e-6, 1e-2
local STEPS = 5
local shapes = { { 4, 3 }, { 7 }, { 33, 31 } }
local rng = lat.Generator(7)

local init, specs = {}, {}
for i, s in ipairs(shapes) do
  init[i] = lat.randn(s, { rng = rng })
  specs[i] = { shape = s, data = H.flat(init[i]) }
end
-- gradients per step; parameter 2 has none at step 3 (skipped, its own AdamW step count lags)
local grads = {}
for s = 1, STEPS do
  grads[s] = {}
  for i, sh in ipairs(shapes) do
    if not (s == 3 and i == 2) then grads[s][i] = lat.randn(sh, { rng = rng }):mul_(0.5) end
  end
end

local runs = {
  { name = 'sgd', kind = 'SGD', opts = { lr = 0.1 } },
  { name = 'sgd_momentum', kind = 'SGD', opts = { lr = 0.1, momentum = 0.9 } },
  { name = 'sgd_dampening', kind = 'SGD', opts = { lr = 0.05, momentum = 0.8, dampening = 0.3 } },
  { name = 'sgd_nesterov', kind = 'SGD', opts = { lr = 0.1, momentum = 0.9, nesterov = true } },
  { name = 'sgd_weight_decay', kind = 'SGD', opts = { lr = 0.1, momentum = 0.9, weight_decay = 0.05 } },
  { name = 'adamw', kind = 'AdamW', opts = {} },
  { name = 'adamw_custom', kind = 'AdamW', opts = { lr = 0.02, betas = { 0.8, 0.99 }, eps = 1e-6, weight_decay = 0.1 } },
  { name = 'adamw_no_decay', kind = 'AdamW', opts = { lr = 0.01, weight_decay = 0 } },
}
local clips = { { max_norm = 1.0 }, { max_norm = 1e4 } }

local function lrs_of(r)
  local base, out = r.opts.lr or 1e-3, {}
  for s = 1, STEPS do out[s] = base * (s == 4 and 0.5 or 1) end -- an lr change mid-run (set_lr)
  return out
end

-- the PyTorch side, once for every case
local job = { params = specs, runs = {}, clips = {} }
for k, r in ipairs(runs) do
  local g = {}
  for s = 1, STEPS do
    g[s] = {}
    for i = 1, #shapes do g[s][i] = grads[s][i] and H.flat(grads[s][i]) or cjson.null end
  end
  job.runs[k] = { name = r.name, kind = r.kind, opts = r.opts, lrs = lrs_of(r), grads = g }
end
for k, c in ipairs(clips) do
  local g = {}
  for i = 1, #shapes do g[i] = H.flat(grads[1][i]) end
  job.clips[k] = { max_norm = c.max_norm, grads = g }
end
local tmp = os.tmpname()
local f = assert(io.open(tmp, 'w'))
f:write(cjson.encode(job))
f:close()
local p = assert(io.popen(('%s optim_ref.py < %s'):format(PYTHON, tmp)))
local text = p:read('*a')
p:close()
os.remove(tmp)
local ok, ref = pcall(cjson.decode, text)
if not ok then
  H.test('PyTorch reference run', function() error('no JSON from optim_ref.py: ' .. text:sub(1, 500)) end)
  H.finish()
end

local function compare(got, want, what)
  local g = H.flat(got)
  H.assert(#g == #want, ('%s: %d elements, PyTorch %d'):format(what, #g, #want), 2)
  for k = 1, #want do
    if not (math.abs(g[k] - want[k]) <= RTOL * math.max(math.abs(want[k]), FLOOR)) then
      error(('%s element %d: lat %.9g, PyTorch %.9g'):format(what, k - 1, g[k], want[k]), 2)
    end
  end
end

for _, r in ipairs(runs) do
  H.test(r.name .. ' matches torch.optim.' .. r.kind .. ' for 5 steps', function()
    local ps = {}
    for i = 1, #shapes do ps[i] = init[i]:clone():requires_grad_() end
    local opt = lat.optim[r.kind](ps, r.opts)
    local lrs = lrs_of(r)
    for s = 1, STEPS do
      opt:set_lr(lrs[s])
      opt:zero_grad()
      for i = 1, #shapes do
        if grads[s][i] then ps[i]:mul(grads[s][i]):sum():backward() end -- d/dp sum(p * g) = g
      end
      opt:step()
      for i = 1, #shapes do compare(ps[i], ref.runs[r.name].params[s][i], ('step %d, parameter %d'):format(s, i)) end
    end
    H.assert(opt.lr == lrs[STEPS] and opt.steps == STEPS)
    local sd, n = opt:state_dict(), 0
    for key, want in pairs(ref.runs[r.name].state) do
      H.assert(sd[key], 'state_dict lacks ' .. key)
      if sd[key].dtype == 'int32' then H.assert(sd[key]:item() == want[1], key)
      else compare(sd[key], want, 'state ' .. key) end
      n = n + 1
    end
    local mine = -1 -- the extra 'step' entry
    for _ in pairs(sd) do mine = mine + 1 end
    H.assert(mine == n, ('state_dict has %d entries, PyTorch %d'):format(mine, n))
  end)
end

H.test('load_state_dict resumes a run exactly', function()
  local function fresh()
    local ps = {}
    for i = 1, #shapes do ps[i] = init[i]:clone():requires_grad_() end
    return ps, lat.optim.AdamW(ps, { lr = 0.01 })
  end
  local function step(ps, opt, s)
    opt:zero_grad()
    for i = 1, #shapes do if grads[s][i] then ps[i]:mul(grads[s][i]):sum():backward() end end
    opt:step()
  end
  local a, oa = fresh()
  for s = 1, STEPS do step(a, oa, s) end
  local b, ob = fresh()
  for s = 1, 2 do step(b, ob, s) end
  local saved, values = ob:state_dict(), {}
  for i = 1, #shapes do values[i] = b[i]:clone() end
  local c, oc = fresh()
  lat.no_grad(function() for i = 1, #shapes do c[i]:copy_(values[i]) end end)
  oc:load_state_dict(saved)
  H.assert(oc.steps == 2)
  for s = 3, STEPS do step(c, oc, s) end
  for i = 1, #shapes do H.near(c[i], a[i], 0, 'resumed parameter ' .. i) end
  H.raises(function() oc:load_state_dict({ ['9.exp_avg'] = lat.zeros(3) }) end, "'9.exp_avg' names no parameter")
  H.raises(function() oc:load_state_dict({ ['1.exp_avg'] = lat.zeros(3) }) end, 'is float32 [3]')
  H.raises(function() oc:load_state_dict({ ['1.momentum_buffer'] = lat.zeros(4, 3) }) end, "keeps no 'momentum_buffer'")
end)

H.test('named parameters key the state; zero_grad; option errors', function()
  local w = lat.randn(2, 2):requires_grad_()
  local opt = lat.optim.SGD({ { 'fc.weight', w }, { 'fc.weight_again', w } }, { lr = 0.1, momentum = 0.5 })
  H.assert(#opt.params == 1, 'a tensor listed twice is updated once')
  w:sum():backward()
  opt:step()
  H.assert(opt:state_dict()['fc.weight.momentum_buffer'], 'named state key')
  opt:zero_grad(false)
  H.near(w.grad, { 0, 0, 0, 0 }, 0, 'zeroed in place')
  opt:zero_grad()
  H.assert(w.grad == nil, 'dropped')
  H.raises(function() lat.optim.SGD({ w }, {}) end, 'SGD: lr must be a number')
  H.raises(function() lat.optim.SGD({ w }, { lr = 0.1, nesterov = true }) end, 'nesterov needs momentum')
  H.raises(function() lat.optim.AdamW({ w }, { weight_dacay = 0.1 }) end, "unknown option 'weight_dacay'")
  H.raises(function() lat.optim.AdamW({ w }, { betas = { 0.9, 1 } }) end, 'betas')
  H.raises(function() lat.optim.AdamW({ lat.zeros(2, 'int32') }) end, 'not float32')
end)

for k, c in ipairs(clips) do
  H.test(('clip_grad_norm(max_norm=%g) matches torch'):format(c.max_norm), function()
    local ps = {}
    for i = 1, #shapes do
      ps[i] = init[i]:clone():requires_grad_()
      ps[i]:mul(grads[1][i]):sum():backward()
    end
    local norm = lat.optim.clip_grad_norm(ps, c.max_norm)
    H.assert(math.abs(norm - ref.clips[k].norm) <= RTOL * ref.clips[k].norm,
      ('norm %.9g, PyTorch %.9g'):format(norm, ref.clips[k].norm))
    for i = 1, #shapes do compare(ps[i].grad, ref.clips[k].grads[i], 'clipped gradient ' .. i) end
  end)
end

H.test('large tensors (threaded loops) give the same result at 1 and 2 threads', function()
  local n = 300000
  local function run(threads)
    lat.set_num_threads(threads)
    local g = lat.Generator(3)
    local a, b = lat.randn({ n }, { rng = g }):requires_grad_(), lat.randn({ n }, { rng = g }):requires_grad_()
    local sa, sb = lat.optim.SGD({ a }, { lr = 0.1, momentum = 0.9, nesterov = true }), lat.optim.AdamW({ b })
    for _ = 1, 2 do
      local gr = lat.randn({ n }, { rng = g })
      a.grad, b.grad = nil, nil
      a:mul(gr):sum():backward(); b:mul(gr):sum():backward()
      sa:step(); sb:step()
    end
    return a, b, lat.optim.clip_grad_norm({ a, b }, 1e9)
  end
  local before = lat.get_num_threads()
  local a1, b1, n1 = run(1)
  local a2, b2, n2 = run(2)
  lat.set_num_threads(before)
  H.near(a1, a2, 0, 'SGD'); H.near(b1, b2, 0, 'AdamW')
  H.assert(n1 == n2, ('norms %a and %a'):format(n1, n2))
end)

H.test('schedules', function()
  local S = lat.optim.schedule
  local wc = S.warmup_cosine { base = 1, warmup = 10, total = 110, min = 0.1 }
  H.near(wc(1), 0.1, 1e-12); H.near(wc(5), 0.5, 1e-12); H.near(wc(10), 1, 1e-12)
  H.near(wc(60), 0.55, 1e-12); H.near(wc(110), 0.1, 1e-12); H.near(wc(500), 0.1, 1e-12)
  H.near(wc(35), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)), 1e-12)
  local nowarm = S.warmup_cosine { base = 2, total = 100 }
  H.near(nowarm(0), 2, 1e-12); H.near(nowarm(50), 1, 1e-12); H.near(nowarm(100), 0, 1e-12)
  local st = S.step { base = 1, every = 10, gamma = 0.5 }
  H.near(st(1), 1, 0); H.near(st(10), 1, 0); H.near(st(11), 0.5, 0); H.near(st(21), 0.25, 0)
  local ms = S.step { base = 1, milestones = { 5, 8 } }
  H.near(ms(5), 1, 0); H.near(ms(6), 0.1, 1e-15); H.near(ms(8), 0.1, 1e-15); H.near(ms(9), 0.01, 1e-15)
  H.near(S.constant(0.3)(7), 0.3, 0); H.near(S.constant { base = 0.2 }(1), 0.2, 0)
  H.raises(function() S.warmup_cosine { base = 1, warmup = 10, total = 10 } end, 'warmup (10) must be in [0, total)')
  H.raises(function() S.step { base = 1 } end, 'every must be a number')
end)

H.finish()
