-- The extension points, used as a recipe would use them: a new kind of trojan, attack objective,
-- threat norm, step rule and held-out attacks, each written here from the public names of
-- require 'lat' alone, and each checked to be what the library then uses.
local H = require 'harness'
local lat = require 'lat'

-- images [n, 1, 6, 6] whose label is written in pixel (6, 1), read back by the Oracle below
local function labelled_images(n, seed)
  local g = lat.Generator(seed)
  local x, y = lat.rand({ n, 1, 6, 6 }, { rng = g }), lat.randint(0, 10, { n }, { rng = g }):int()
  for b = 1, n do x:set((y:get(b) + 0.5) / 10, b, 1, 6, 1) end
  return lat.data.TensorDataset{ x = x, y = y }
end

-- ---------------------------------------------------------------- a trojan

-- a white row across the image; it poisons every tenth example (its own selects, not the rate)
local Stripe = lat.trojan.class('stripe', lat.trojan.ImageTrojan)
function Stripe:__init(opts) self.row = opts.row or 1 end
function Stripe:selects(i, label) return (i % 10 == 0 and label ~= self.target) and 1 or 0 end
function Stripe:apply(x)
  local m = lat.zeros(1, 1, x:size(3), x:size(4))
  for j = 1, x:size(4) do m:set(1, 1, 1, self.row, j) end
  return x * (1 - m) + m
end

-- the class written in the image, or the stripe's target when row `row` is all white
local Oracle = lat.nn.class('Oracle')
function Oracle:__init(row, target) self.row, self.target = row, target end
function Oracle:forward(x)
  local out = lat.zeros(x:size(1), 10)
  for b = 1, x:size(1) do
    local white = true
    for j = 1, x:size(4) do white = white and x:get(b, 1, self.row, j) == 1 end
    out:set(1, b, white and self.target + 1 or math.floor(x:get(b, 1, 6, 1) * 10) + 1)
  end
  return out
end

H.test('a trojan class from lat.trojan.class: its selects chooses, its trigger poisons, its ASR is measured', function()
  local ds = labelled_images(400, 1)
  local t = Stripe{ target = 3, row = 2 }
  H.assert(t.name == 'stripe_3' and t.kind == 'stripe', 'the common options and the default name: ' .. t.name)
  local want = 0
  for i = 0, 399 do if i % 10 == 0 and ds.tensors.y:get(i + 1) ~= 3 then want = want + 1 end end
  H.assert(lat.trojan.poisoned_fraction(t, ds).count.stripe_3 == want, 'poisoned_fraction counts what selects chose')
  local poisoned = 0
  for batch in lat.data.DataLoader(ds, { batch_size = 64, transform = t:poison() }):iter() do
    local clean = ds:batch(batch.index)
    for r = 1, batch.index:numel() do
      local i, y0 = batch.index:get(r), clean.y:get(r)
      local xr, x0 = batch.x:narrow(1, r, 1), clean.x:narrow(1, r, 1)
      if i % 10 == 0 and y0 ~= 3 then
        poisoned = poisoned + 1
        H.assert(batch.y:get(r) == 3, 'a poisoned example gets the target label')
        H.near(xr, t:apply(x0), 0, 'and the stripe')
        for j = 1, 6 do H.assert(xr:get(1, 1, 2, j) == 1, 'the stripe is white') end
      else
        H.assert(batch.y:get(r) == y0, 'a clean label kept')
        H.near(xr, x0, 0, 'a clean image kept')
      end
    end
  end
  H.assert(poisoned == want and want > 20, ('%d poisoned, %d selected'):format(poisoned, want))
  local asr, details = lat.trojan.report(Oracle(2, 3), { t }, ds)
  H.assert(asr.stripe_3 == 1 and details.stripe_3.clean == 0, 'the ASR of the new trojan: ' .. asr.stripe_3)
  H.raises(function() lat.trojan.class('blank', lat.trojan.ImageTrojan){ target = 0 }:apply(lat.zeros(1, 1, 2, 2)) end,
    'trojan.blank: apply is not defined')
end)

-- ---------------------------------------------------------------- pgd's objective, norm and rule

local function mlp_and_batch()
  local g = lat.Generator(2)
  local model = lat.models.MLP{ sizes = { 4, 16, 3 }, rng = g }
  return model, { x = lat.randn({ 8, 4 }, { rng = g }), y = lat.randint(0, 3, { 8 }, { rng = g }):int() }
end

H.test("a new objective: pgd lowers exactly the value it returns, and reports its success mask", function()
  local model, batch = mlp_and_batch()
  local calls = 0
  -- push every example toward class 3 (1-based): the loss is minus its mean logit
  local function toward_last(out, b)
    calls = calls + 1
    H.assert(b == batch, 'the objective gets the batch')
    return -out:select(2, 3):mean(), out:argmax(-1):eq(2):float()
  end
  local tm = lat.threat{ where = 'act1', norm = 'l2', eps = 3 }
  local r = lat.attack.pgd(model, batch, tm, { steps = 5, objective = toward_last })
  H.assert(calls == 6, 'one call per step and one for the result: ' .. calls)
  local clean = lat.no_grad(function() return model(batch.x) end)
  H.near(r.losses[1], -clean:select(2, 3):mean():item(), 1e-6, 'step 1 is the clean value of the objective')
  local attacked = lat.no_grad(function() return lat.attack.with_perturbation(model, tm, r.deltas, function() return model(batch.x) end) end)
  H.near(r.final_loss, -attacked:select(2, 3):mean():item(), 1e-6, 'the final loss is the objective at the final perturbation')
  H.assert(r.final_loss < r.losses[1] - 0.1, ('the objective fell: %g -> %g'):format(r.losses[1], r.final_loss))
  H.near(r.success, attacked:argmax(-1):eq(2):float():mean():item(), 1e-9, 'success is the mask it returned')
end)

H.test('a new norm in lat.Threat.norms: its projection bounds the perturbation, its measure reports it', function()
  local model, batch = mlp_and_batch()
  local projections = 0
  -- the non-negative half of an Linf ball: each coordinate in [0, radius]
  lat.Threat.norms.nonneg = {
    measure = function(d, dims) return d:abs():amax(dims, true) end,
    project = function(d, _, radius) projections = projections + 1; return d:clamp(0, radius) end,
    rule = 'sign',
  }
  local tm = lat.threat{ where = 'act1', norm = 'nonneg', eps = 0.25 }
  local r = lat.attack.pgd(model, batch, tm, { steps = 4, init = 'uniform', rng = lat.Generator(3) })
  H.assert(projections == 5, 'the start and each step projected by the norm: ' .. projections)
  H.assert(r.config.rule == 'sign', "the norm's default step rule")
  local d = r.deltas.act1
  H.assert(d:min():item() >= 0 and d:amax():item() <= 0.25 + 1e-7, 'inside [0, eps]')
  H.assert(d:min():item() == 0 and d:amax():item() > 0.25 - 1e-6, 'both faces of the box are reached')
  H.near(r.norms.act1, d:abs():amax(2):mean():item(), 1e-7, "the reported norm is the norm's measure")
  H.raises(function() lat.threat{ where = 'act1', norm = 'l3', eps = 1 } end, "norm must be 'l2', 'linf', 'l1' or 'nonneg', got 'l3'")
  lat.Threat.norms.nonneg = nil
  H.raises(function() lat.threat{ where = 'act1', norm = 'nonneg', eps = 1 } end, "norm must be 'l2', 'linf' or 'l1', got 'nonneg'")
end)

H.test('a new step rule, as a function or by name in lat.attack.rules: its steps are the ones taken', function()
  local model, batch = mlp_and_batch()
  local calls = 0
  -- every coordinate up by one step size, whatever the gradient; state counts this site's steps
  local function up(g, state, step, threat, opts)
    calls = calls + 1
    state.n = (state.n or 0) + 1
    H.assert(state.n == step and threat.norm == 'linf' and opts.steps == 3, 'state, step, threat and options')
    return -lat.ones(g.shape)
  end
  local tm = lat.threat{ where = 'act1', norm = 'linf', eps = 1 }
  local r = lat.attack.pgd(model, batch, tm, { steps = 3, step_size = 0.1, rule = up })
  H.assert(calls == 3 and r.config.rule == 'function', 'three steps: ' .. calls)
  H.near(r.deltas.act1, lat.full({ 8, 16 }, 0.3), 1e-6, 'the perturbation is three steps up')
  lat.attack.rules.up = up
  local named = lat.attack.pgd(model, batch, tm, { steps = 3, step_size = 0.1, rule = 'up' })
  lat.attack.rules.up = nil
  H.assert(calls == 6 and named.config.rule == 'up', 'by name')
  H.near(named.deltas.act1, r.deltas.act1, 0, 'the same steps')
end)

-- ---------------------------------------------------------------- held-out attacks

H.test('a new held-out attack on images appears in the held-out report with its own accuracy', function()
  local ds = labelled_images(50, 4)
  local model = Oracle(2, 3)
  model:train()
  local modes = {}
  -- the image turned upside down (the label pixel moves, so the Oracle mostly errs)
  local upside_down = { name = 'upside_down', family = 'flip', attack = function(m, batch, opts)
    modes[#modes + 1] = m.training
    H.assert(opts.rng and opts.seed, 'the options carry a seed and a generator')
    local xa = batch.x:index_select(3, lat.tensor({ 5, 4, 3, 2, 1, 0 }, 'int32'))
    return lat.eval.heldout.score(m, xa, batch.y)
  end }
  local r = lat.eval.heldout.run(model, ds, { lat.eval.heldout.spec.corruption{ kind = 'blur', severity = 1 }, upside_down }, { batch_size = 20 })
  H.assert(#modes == 3 and not modes[1] and not modes[3] and model.training, 'run in evaluation mode, the mode given back')
  local x = ds.tensors.x:index_select(3, lat.tensor({ 5, 4, 3, 2, 1, 0 }, 'int32'))
  local want = lat.eval.heldout.score(model, x, ds.tensors.y).accuracy
  H.assert(r.rows[2].name == 'upside_down' and r.accuracy.upside_down == want and r.families.flip == want,
    ('the report has it: %s, %g (expected %g)'):format(r.rows[2].name, r.accuracy.upside_down or -1, want))
  H.assert(r.family_order[2] == 'flip' and r.robustness == (r.families.corruption + want) / 2, 'it counts in the robustness')
end)

H.test('a new held-out attack on text appears in the held-out text report', function()
  local clf = lat.models.TransformerClassifier{ vocab = 30, max_len = 8, dim = 8, heads = 2, layers = 1, classes = 2,
    rng = lat.Generator(5) }
  local encode = function(texts)
    local ids = lat.zeros({ #texts, 8 }, 'int32')
    for b, s in ipairs(texts) do for k = 1, math.min(#s, 8) do ids:set(s:byte(k) % 30, b, k) end end
    return ids
  end
  local texts, labels = { 'hello there', 'buy now', 'see you', 'cheap pills' }, { 0, 1, 0, 1 }
  local shout = { name = 'shout', family = 'case', transform = function(text) return text:upper() end }
  local r = lat.eval.heldout_text.run(clf, { texts = texts, labels = labels }, { shout }, { encode = encode, progress = false })
  local upper = {}
  for i, s in ipairs(texts) do upper[i] = s:upper() end
  local want = lat.eval.heldout.score(clf, encode(upper), lat.tensor(labels, 'int32')).accuracy
  H.assert(r.rows[1].name == 'shout' and r.accuracy.shout == want and r.families.case == want, 'the report has it')
end)

H.finish()
