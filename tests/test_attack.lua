-- Threat models and attacks: projections onto every set, initialisations, PGD at the input and
-- at latent layers, objectives, the random control, and adversarial training's loss.
local H = require 'harness'
local lat = require 'lat'

local function max_group_norm(d, tm, p)
  return d:norm(p, tm:group_dims(d:dim())):amax():item()
end

H.test('projection onto L2 balls per example, token and channel', function()
  for _, gran in ipairs({ 'example', 'token', 'channel' }) do
    local tm = lat.threat{ where = 'x', norm = 'l2', eps = 0.5, granularity = gran }
    local clean = lat.randn(3, 4, 5)
    local d = tm:project(lat.randn(3, 4, 5) * 10, clean)
    H.near(max_group_norm(d, tm, 2), 0.5, 1e-5, gran .. ': on the sphere')
    local small = lat.randn(3, 4, 5) * 1e-3
    H.near(tm:project(small, clean), small, 1e-9, gran .. ': inside stays put')
  end
end)

H.test('projection onto Linf and L1 balls, relative radius, mask and clamp', function()
  local clean = lat.rand(2, 6)
  local linf = lat.threat{ where = 'x', norm = 'linf', eps = 0.1 }
  local d = linf:project(lat.randn(2, 6), clean)
  H.assert(d:abs():amax():item() <= 0.1 + 1e-7, 'linf bound')
  local l1 = lat.threat{ where = 'x', norm = 'l1', eps = 0.7 }
  local v = lat.tensor{ { 1, -2, 0.5, 0, 0, 0 }, { 0.1, 0.1, 0, 0, 0, 0 } }
  local p = l1:project(v, clean)
  H.near(p:abs():sum(2), { 0.7, 0.2 }, 1e-6, 'l1 norms: projected and untouched')
  H.near(p:narrow(1, 1, 1), { 0, -0.7, 0, 0, 0, 0 }, 1e-6, 'l1 projection soft-thresholds')
  local rel = lat.threat{ where = 'x', norm = 'l2', eps = 0.1, relative = true }
  local r = rel:project(lat.randn(2, 6) * 100, clean)
  H.near(r:norm(2, 2), (clean:norm(2, 2) * 0.1):tolist(), 1e-5, 'relative radius')
  local masked = lat.threat{ where = 'x', norm = 'linf', eps = 1, mask = lat.tensor{ { 1, 1, 0, 0, 0, 0 } } }
  local m = masked:project(lat.ones(2, 6), clean)
  H.near(m:narrow(2, 3, 4):abs():sum():item(), 0, 0, 'masked positions stay clean')
  local boxed = lat.threat{ where = 'input', norm = 'linf', eps = 1, clamp = { 0, 1 } }
  local b = boxed:project(lat.ones(2, 6), clean)
  H.near((clean + b):amax():item(), 1, 1e-6, 'clamped to the valid range')
  local ranged = lat.threat{ where = 'x', norm = 'linf', eps = 5, clamp = 'batch_range' }
  local q = ranged:project(lat.randn(2, 6) * 5, clean)
  H.assert((clean + q):amax():item() <= clean:amax():item() + 1e-6, "clamped to the batch's range")
end)

H.test('initialisations lie in the set; sphere and random radius as documented', function()
  local clean = lat.randn(4, 3, 5)
  local tm = lat.threat{ where = 'x', norm = 'l2', eps = 2 }
  local g = lat.Generator(1)
  H.near(max_group_norm(tm:sample(clean, 'sphere', g), tm, 2), 2, 1e-5, 'sphere')
  local s = tm:sample(clean, 'sphere', g):norm(2, { 2, 3 })
  H.near(s:min():item(), 2, 1e-5, 'every example on the sphere')
  local rr = tm:sample(clean, 'random_radius', g):norm(2, { 2, 3 })
  H.assert(rr:amax():item() <= 2 + 1e-5 and rr:min():item() < 2, 'random radius inside')
  H.near(tm:sample(clean, 'zero', g):abs():sum():item(), 0, 0, 'zero')
  local li = lat.threat{ where = 'x', norm = 'linf', eps = 0.3 }
  H.assert(li:sample(clean, 'uniform', g):abs():amax():item() <= 0.3 + 1e-7, 'uniform in the box')
  H.raises(function() tm:sample(clean, 'gaussian', g) end, "unknown initialisation 'gaussian'")
end)

-- a small trained classifier on two separable blobs, so attacks have something to break
local function trained_mlp()
  local g = lat.Generator(2)
  local n = 256
  local x = lat.randn({ n, 8 }, { rng = g })
  local y = lat.empty({ n }, 'int32')
  for i = 0, n - 1 do
    y.i[i] = i % 2
    x.f[i * 8] = x.f[i * 8] * 0.3 + (i % 2 == 0 and -1.5 or 1.5)
  end
  local m = lat.models.MLP{ sizes = { 8, 32, 2 }, rng = g }
  local opt = lat.optim.SGD(m:parameters(), { lr = 0.1, momentum = 0.9 })
  for _ = 1, 100 do
    opt:zero_grad()
    lat.cross_entropy(m(x), y):backward()
    opt:step()
  end
  m:zero_grad()
  return m, { x = x, y = y }
end

H.test('PGD at the input and at a hidden layer raises the loss; parameters and mode untouched', function()
  local m, batch = trained_mlp()
  local clean_acc = lat.eval.accuracy(m, lat.data.TensorDataset(batch)).accuracy
  H.assert(clean_acc > 0.95, 'the blobs are learned: ' .. clean_acc)
  m:train()
  for where, eps in pairs({ input = 2.5, act1 = 6 }) do
    local tm = lat.threat{ where = where, norm = 'l2', eps = eps }
    local r = lat.attack.pgd(m, batch, tm, { steps = 10 })
    H.assert(r.final_loss < r.losses[1] - 0.5, where .. ': the adversary lowers its loss (raises the task loss): '
      .. r.losses[1] .. ' -> ' .. r.final_loss)
    H.assert(r.success > 0.5, where .. ': most examples broken, got ' .. r.success)
    H.near(r.norms[where], eps, 1e-3, where .. ': ends on the boundary')
    H.assert(m.training, 'mode restored')
    for _, p in ipairs(m:parameters()) do H.assert(p.grad == nil, 'no parameter gradient') end
  end
  local tiny = lat.attack.pgd(m, batch, lat.threat{ where = 'act1', eps = 1e-4 }, { steps = 3 })
  H.assert(tiny.success < 0.05, 'a tiny radius breaks almost nothing')
end)

H.test('targeted and toward/away objectives, Adam and sign steps, early stopping', function()
  local m, batch = trained_mlp()
  local target = lat.empty({ 256 }, 'int32') -- the other class for every example
  for i = 0, 255 do target.i[i] = 1 - batch.y.i[i] end
  local r = lat.attack.pgd(m, batch, lat.threat{ where = 'act1', eps = 4 }, { steps = 20, rule = 'adam', step_size = 0.2, objective = { target = target } })
  H.assert(r.success > 0.9, 'targeted success ' .. r.success)
  local ta = lat.attack.pgd(m, batch, lat.threat{ where = 'act1', eps = 6 }, { steps = 20, objective = { toward = target, away = batch.y } })
  H.assert(ta.success > 0.9, 'toward/away success ' .. ta.success)
  local es = lat.attack.pgd(m, batch, lat.threat{ where = 'input', norm = 'linf', eps = 3 }, { steps = 30, early_stop = true })
  H.assert(es.success == 1 and es.steps < 30, 'early stop after ' .. es.steps .. ' steps')
end)

H.test('the random control moves by the full radius and breaks less than the attack', function()
  local m, batch = trained_mlp()
  local tm = lat.threat{ where = 'act1', norm = 'l2', eps = 2.5 }
  local rnd = lat.attack.random(m, batch, tm, { rng = lat.Generator(4) })
  local adv = lat.attack.pgd(m, batch, tm, { steps = 10 })
  H.near(rnd.norms.act1, 2.5, 1e-4, 'random perturbation on the sphere')
  H.assert(rnd.success < adv.success, ('random %.2f vs attack %.2f'):format(rnd.success, adv.success))
end)

H.test('several layers at once, and a transformer\'s values and residual stream', function()
  local g = lat.models.GPT{ vocab = 30, max_len = 8, dim = 16, heads = 2, layers = 2, rng = lat.Generator(6) }
  local ids = lat.randint(0, 30, { 4, 8 })
  local batch = { x = ids, y = lat.randint(0, 30, { 4, 8 }) }
  local tm = lat.threat{ where = { 'h.1:in', 'h.0.attn.v' }, norm = 'l2', eps = 1, granularity = 'token' }
  local r = lat.attack.pgd(g, batch, tm, { steps = 4 })
  H.assert(r.deltas['h.1:in'] and r.deltas['h.0.attn.v'], 'a perturbation per site')
  H.assert(r.final_loss < r.losses[1], 'the language-model loss rises')
  H.assert(r.deltas['h.1:in']:norm(2, 3):amax():item() <= 1 + 1e-5, 'per-token radius')
end)

H.test('adversarial training loss: AT, LAT, RLP and the clean/adversarial mix', function()
  local m, batch = trained_mlp()
  local clean = lat.cross_entropy(m(batch.x), batch.y):item()
  local lat_loss = lat.train.adversarial{ threat = lat.threat{ where = 'act1', eps = 2.5 }, attack = { steps = 5 } }
  local l, extra = lat_loss(m, batch)
  H.assert(l:item() > clean + 0.1 and extra.attack_success > 0, 'the adversarial loss exceeds the clean loss')
  local mixed = lat.train.adversarial{ threat = lat.threat{ where = 'act1', eps = 2.5 }, attack = { steps = 5 }, weight = 0.5 }
  local lm, em = mixed(m, batch)
  H.near(lm:item(), 0.5 * em.adv_loss + 0.5 * em.clean_loss, 1e-5, 'weighted sum')
  local rlp = lat.train.adversarial{ threat = lat.threat{ where = 'act1', eps = 2.5 }, random = true }
  local lr = rlp(m, batch)
  H.assert(lr:item() < l:item(), 'random perturbations hurt less than attacks')
  l:backward()
  H.assert(m.fc1.weight.grad ~= nil, 'the training loss reaches the parameters')
end)

H.finish()
