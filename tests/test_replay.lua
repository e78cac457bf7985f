-- Attacks that run only the suffix (nn/replay.lua): for every model of lat.models and sites early,
-- in the middle, late, inside a block, at a layer's input and at several layers, PGD with the
-- prefix replayed gives the perturbations, losses and outputs of PGD with every forward in full;
-- the prefix is really skipped; LAT training's loss and gradients are those of the full path; a
-- forward that changes its order of calls falls back to running in full.
local H = require 'harness'
local lat = require 'lat'
local nn = lat.nn
local replay = require 'lat.nn.replay'

local TOL = 1e-5

local function same_attack(model, batch, where, opts, what)
  local tm = lat.threat{ where = where, norm = opts.norm or 'l2', eps = opts.eps or 0.5, relative = opts.relative,
    granularity = opts.granularity }
  local function run(on)
    local o = { steps = 4, init = opts.init or 'sphere', rng = lat.Generator(11), replay = on, keep_prefix = on }
    return lat.attack.pgd(model, batch, tm, o)
  end
  local full, fast = run(false), run(true)
  H.assert(fast.prefix and full.prefix == nil, what .. ': the replay is returned with keep_prefix only')
  for i = 1, #full.losses do H.near(fast.losses[i], full.losses[i], TOL * math.max(1, math.abs(full.losses[i])), what .. ': loss of step ' .. i) end
  H.near(fast.final_loss, full.final_loss, TOL * math.max(1, math.abs(full.final_loss)), what .. ': final loss')
  for name, d in pairs(full.deltas) do H.near(fast.deltas[name], d, TOL, what .. ': perturbation at ' .. name) end
  H.near(fast.output, full.output, TOL, what .. ': output under the final perturbation')
  return fast.prefix
end

local function images(n, c, hw, seed)
  local g = lat.Generator(seed)
  return { x = lat.rand({ n, c, hw, hw }, { rng = g }), y = lat.randint(0, 10, { n }, { rng = g }) }
end

H.test('MLP, SmallCNN and ResNet: the same attack with the prefix replayed, at every kind of site', function()
  local mlp = lat.models.MLP{ sizes = { 16, 32, 32, 10 }, rng = lat.Generator(1) }
  local mb = { x = lat.randn({ 8, 16 }, { rng = lat.Generator(2) }), y = lat.randint(0, 10, { 8 }, { rng = lat.Generator(3) }) }
  for _, where in ipairs({ 'fc1', 'act1', 'act2', 'fc2:in', { 'act1', 'act2' } }) do
    local rp = same_attack(mlp, mb, where, {}, 'MLP ' .. tostring(type(where) == 'table' and table.concat(where, '+') or where))
    H.assert(rp.replayed > 0, 'MLP: prefix layers replayed')
  end
  local cnn = lat.models.SmallCNN{ rng = lat.Generator(4) }
  local cb = images(6, 1, 28, 5)
  for _, where in ipairs({ 'block1', 'block1.conv', 'block2.relu', 'block2', 'fc:in' }) do
    same_attack(cnn, cb, where, { eps = 0.2, relative = true }, 'SmallCNN ' .. where)
  end
  local resnet = lat.models.ResNet{ widths = { 8, 16 }, blocks = { 2, 2 }, rng = lat.Generator(6) }
  local rb = images(4, 1, 12, 7)
  resnet:train() -- batch norm in training mode outside the attack: the attack runs in evaluation mode
  for _, where in ipairs({ 'relu', 'layer1.0', 'layer1.1.conv1', 'layer2.0.bn1', 'layer2', 'fc:in', { 'layer1.1', 'layer2.1.conv2' } }) do
    local label = type(where) == 'table' and table.concat(where, '+') or where
    local rp = same_attack(resnet, rb, where, { eps = 0.1, relative = true, norm = 'linf' }, 'ResNet ' .. label)
    H.assert(rp.replayed > 0, 'ResNet ' .. label .. ': prefix layers replayed')
  end
  H.assert(resnet.training and resnet.layer1[0].bn1.training, 'modes restored')
end)

H.test('the transformers: residual stream, queries/keys/values, embeddings, several sites', function()
  local gpt = lat.models.GPT{ vocab = 40, max_len = 8, dim = 16, heads = 2, layers = 3, rng = lat.Generator(8) }
  local ids = lat.randint(0, 40, { 3, 8 }, { rng = lat.Generator(9) })
  local batch = { x = ids, y = lat.randint(0, 40, { 3, 8 }, { rng = lat.Generator(10) }) }
  for _, where in ipairs({ 'embedding', 'h.0', 'h.1:in', 'h.1.attn.v', 'h.2.mlp', 'transformer.ln_f', { 'h.2', 'h.0.attn.q' } }) do
    local label = type(where) == 'table' and table.concat(where, '+') or where
    local rp = same_attack(gpt, batch, where, { eps = 0.5, granularity = 'token' }, 'GPT ' .. label)
    H.assert(rp.replayed > 0, 'GPT ' .. label .. ': prefix layers replayed')
  end
  local clf = lat.models.TransformerClassifier{ vocab = 40, max_len = 8, dim = 16, heads = 2, layers = 2, classes = 3, pad_id = 0,
    rng = lat.Generator(12) }
  local cb = { x = ids, y = lat.randint(0, 3, { 3 }, { rng = lat.Generator(13) }) }
  for _, where in ipairs({ 'h.0', 'h.1.attn.k', 'transformer.ln_f' }) do
    same_attack(clf, cb, where, { eps = 0.5, granularity = 'token' }, 'TransformerClassifier ' .. where)
  end
end)

H.test('what a replayed attack skips: the layers before the earliest site, not after', function()
  local m = lat.models.MLP{ sizes = { 4, 8, 8, 8, 2 }, rng = lat.Generator(14) }
  local batch = { x = lat.randn({ 5, 4 }), y = lat.randint(0, 2, { 5 }) }
  local ran = {}
  for _, name in ipairs({ 'fc1', 'fc2', 'fc3', 'fc4' }) do m:hook(name, function() ran[name] = (ran[name] or 0) + 1 end) end
  lat.attack.pgd(m, batch, lat.threat{ where = 'act2', eps = 0.3 }, { steps = 5 })
  -- 6 forwards (5 steps and the final one): the prefix runs in the first only
  H.assert(ran.fc1 == 1 and ran.fc2 == 1, ('prefix layers ran %d and %d times'):format(ran.fc1, ran.fc2))
  H.assert(ran.fc3 == 6 and ran.fc4 == 6, ('suffix layers ran %d and %d times'):format(ran.fc3, ran.fc4))
  ran = {}
  lat.attack.pgd(m, batch, lat.threat{ where = 'act2', eps = 0.3 }, { steps = 5, replay = false })
  H.assert(ran.fc1 == 6 and ran.fc3 == 6, 'replay = false runs every forward in full')
end)

-- the gradients of every parameter after one LAT step's loss, with or without the reuse
local function lat_step(model, batch, threat, weight, on)
  local loss_fn = lat.train.adversarial{ threat = threat, attack = { steps = 3, init = 'sphere', rng = lat.Generator(21), replay = on }, weight = weight }
  model:zero_grad()
  local loss, extra = loss_fn(model, batch)
  loss:backward()
  local grads = {}
  for _, e in ipairs(model:named_parameters()) do grads[e[1]] = e[2].grad and e[2].grad:clone() or false end
  return loss:item(), grads, extra
end

H.test('LAT training reuses the attack\'s prefix: same loss and gradients for every parameter', function()
  local cases = {
    { 'SmallCNN', lat.models.SmallCNN{ width = 8, rng = lat.Generator(15) }, images(6, 1, 28, 16), 'block2.conv' },
    { 'ResNet', lat.models.ResNet{ widths = { 8, 16 }, blocks = { 1, 1 }, rng = lat.Generator(17) }, images(4, 1, 12, 18), 'layer2' },
    { 'GPT with dropout', lat.models.GPT{ vocab = 20, max_len = 6, dim = 16, heads = 2, layers = 2, dropout = 0.1, rng = lat.Generator(19) },
      { x = lat.randint(0, 20, { 2, 6 }), y = lat.randint(0, 20, { 2, 6 }) }, 'h.1' },
  }
  for _, c in ipairs(cases) do
    local name, model, batch, where = c[1], c[2], c[3], c[4]
    model:train()
    local tm = lat.threat{ where = where, eps = 0.2, relative = true }
    for _, weight in ipairs({ 1, 0.5 }) do
      local state = {}
      for k, v in pairs(model:state_dict()) do state[k] = v:clone() end
      -- the same dropout masks in both runs: each model's generator is reseeded
      local function reseed() for _, m in ipairs(model:modules()) do if m.rng then m.rng = lat.Generator(31) end end end
      reseed()
      local l_full, g_full = lat_step(model, batch, tm, weight, false)
      local after = {}
      for k, v in pairs(model:state_dict()) do after[k] = v:clone() end
      model:load_state_dict(state) -- batch norm's running statistics as they were
      reseed()
      local first, calls -- the first layer without children: in the prefix in every case
      for _, e in ipairs(model:named_modules()) do
        if not first and #e[2]._child_names == 0 then first, calls = e[1], 0 end
      end
      local h = model:hook(first, function() calls = calls + 1 end)
      local l_fast, g_fast = lat_step(model, batch, tm, weight, true)
      h.remove()
      H.assert(calls == 1, ('%s weight %s: the first layer ran %d times in the attack and the training forwards, not once'):format(name, weight, calls))
      H.near(l_fast, l_full, 1e-5 * math.max(1, math.abs(l_full)), name .. ' weight ' .. weight .. ': loss')
      for k, g in pairs(g_full) do
        H.assert((g == false) == (g_fast[k] == false), name .. ': ' .. k .. ' has a gradient in both or neither')
        if g then H.near(g_fast[k], g, 1e-5, name .. ' weight ' .. weight .. ': gradient of ' .. k) end
      end
      for k, v in pairs(model:state_dict()) do
        if k:find('running_') then H.near(v, after[k], 1e-6, name .. ': ' .. k .. ' updated as in full') end
      end
    end
  end
end)

H.test('a forward that changes its order of calls runs in full instead of replaying', function()
  local Twist = nn.class('Twist')
  function Twist:__init()
    self:add('a', nn.Linear(4, 4, { rng = lat.Generator(22) }))
    self:add('b', nn.Linear(4, 4, { rng = lat.Generator(23) }))
    self:add('out', nn.Linear(4, 2, { rng = lat.Generator(24) }))
  end
  function Twist:forward(x)
    if self.flip then return self.out(self.a(self.b(x))) end
    return self.out(self.b(self.a(x)))
  end
  local m = Twist()
  local x = lat.randn({ 3, 4 })
  local rp = replay.new()
  local h = m:hook('b', function() rp:reach() end)
  rp:record(function() return m(x) end)
  h.remove()
  H.near(rp:play(function() return m(x) end), m(x), 0, 'the same order: replayed')
  H.assert(rp.replayed == 1, 'the call of a was replayed')
  m.flip = true
  local expect = m(x)
  H.near(rp:play(function() return m(x) end), expect, 0, 'another order: computed in full')
end)

H.finish()
