-- Held-out attacks: corruptions (determinism, range, severity, edge cases), patch and UAP on a
-- tiny trained model, PGD at the input, run()'s aggregation, target rates, flags and pareto.
local H = require 'harness'
local lat = require 'lat'
local HO = lat.eval.heldout
local C, U = HO.corrupt, HO.universal
local nn = lat.nn

H.test('corruptions: deterministic by seed, in [0, 1], farther from the clean image with severity', function()
  local x = lat.rand({ 3, 2, 14, 14 }, { rng = lat.Generator(1) })
  for _, kind in ipairs(C.kinds) do
    local a, b = C.apply(x, kind, 2, { seed = 5 }), C.apply(x, kind, 2, { seed = 5 })
    H.near(a, b, 0, kind .. ': same seed, same image')
    if kind == 'gaussian_noise' or kind == 'fog' then
      H.assert((C.apply(x, kind, 2, { seed = 6 }) - a):abs():amax():item() > 0.01, kind .. ': another seed differs')
    end
    local last = 0
    for s = 1, 5 do
      local y = C.apply(x, kind, s, { seed = 5 })
      H.assert(y.shape[4] == 14 and y:min():item() >= 0 and y:amax():item() <= 1, kind .. ': stays in [0, 1]')
      local d = (y - x):norm(2):item()
      H.assert(d > last, ('%s: severity %d is no farther than %d (%g <= %g)'):format(kind, s, s - 1, d, last))
      last = d
    end
  end
  H.raises(function() C.apply(x, 'snow', 1) end, "unknown kind 'snow'")
  H.raises(function() C.apply(x, 'blur', 9) end, 'severity must be 1..5')
end)

H.test('blur keeps a constant image (and its mean); pixelation of a constant image is the identity', function()
  local c = lat.full({ 2, 3, 13, 11 }, 0.37)
  for s = 1, 5 do
    H.near(C.apply(c, 'blur', s), c, 1e-6, 'blur of a constant image')
    H.near(C.apply(c, 'pixelate', s), c, 1e-6, 'pixelation of a constant image (sizes not multiples of the block)')
    H.near(C.apply(c, 'contrast', s), c, 1e-6, 'contrast of a constant image')
  end
  local x = lat.rand({ 1, 1, 12, 12 }, { rng = lat.Generator(2) })
  H.near(C.apply(x, 'pixelate', 3):mean():item(), x:mean():item(), 1e-6, 'pixelation keeps the mean when blocks tile the image')
end)

H.test('a patch changes only its square, and takes gradients', function()
  local x = lat.rand({ 4, 2, 9, 10 }, { rng = lat.Generator(3) })
  local patch = lat.rand({ 1, 2, 3, 3 }, { rng = lat.Generator(4) }):requires_grad_()
  local pos = U.positions(x, 3, lat.Generator(5))
  local y = U.apply_patch(x, patch, pos)
  for b = 1, 4 do
    local top, left = pos.top[b], pos.left[b]
    for c = 1, 2 do
      for i = 1, 9 do
        for j = 1, 10 do
          local inside = i - 1 >= top and i - 1 < top + 3 and j - 1 >= left and j - 1 < left + 3
          local want = inside and patch:get(1, c, i - 1 - top + 1, j - 1 - left + 1) or x:get(b, c, i, j)
          H.near(y:get(b, c, i, j), want, 0, 'patched pixel')
        end
      end
    end
  end
  H.near(lat.grad(y:sum(), { patch })[1], lat.full({ 1, 2, 3, 3 }, 4), 0, 'each patch pixel lands once per image')
end)

-- a tiny classifier on 12x12 images whose class is the brightness of the centre 4x4
local function images(n, seed)
  local x = lat.rand({ n, 1, 12, 12 }, { rng = lat.Generator(seed) }) * 0.4 + 0.1
  local y = lat.empty({ n }, 'int32')
  for i = 0, n - 1 do
    y.i[i] = i % 2
    if i % 2 == 1 then
      for r = 4, 7 do for q = 4, 7 do x.f[(i * 12 + r) * 12 + q] = x.f[(i * 12 + r) * 12 + q] + 0.4 end end
    end
  end
  return { x = x, y = y }
end
local train, test = images(400, 1), images(200, 2)
local model = nn.Sequential{ { 'flat', nn.Flatten() }, { 'fc1', nn.Linear(144, 32, { rng = lat.Generator(3) }) },
  { 'act', nn.ReLU() }, { 'fc2', nn.Linear(32, 2, { rng = lat.Generator(4) }) } }
local opt = lat.optim.SGD(model:parameters(), { lr = 0.1, momentum = 0.9 })
for _ = 1, 60 do
  opt:zero_grad()
  lat.cross_entropy(model(train.x), train.y):backward()
  opt:step()
end
model:zero_grad()

H.test('a universal patch, fitted on training images, breaks held-out ones', function()
  local clean = HO.score(model, test.x, test.y).accuracy
  H.assert(clean > 0.97, 'the tiny model learned the task: ' .. clean)
  local patch, info = U.fit_patch(model, train, { size = 5, steps = 60 })
  H.assert(info.losses[60] > info.losses[1], 'the loss rises while fitting')
  H.assert(patch:min():item() >= 0 and patch:amax():item() <= 1 and patch.shape[3] == 5, 'a 5x5 patch in [0, 1]')
  local r = HO.patch(model, test, { patch = patch, seed = 7 })
  H.assert(r.accuracy < clean - 0.15, ('patched accuracy %.3f vs clean %.3f'):format(r.accuracy, clean))
  local pos = U.positions(test.x, 5, lat.Generator(7))
  H.near(r.x, U.apply_patch(test.x, patch, pos), 0, 'the patch sits where the seed put it, and nowhere else')
  H.assert(model.training, 'the model gets its mode back')
end)

H.test('a universal perturbation stays in its ball and lowers accuracy', function()
  local clean = HO.score(model, test.x, test.y).accuracy
  for _, c in ipairs({ { norm = 'linf', eps = 0.15 }, { norm = 'l2', eps = 1.5 } }) do
    local d = U.fit_uap(model, train, { norm = c.norm, eps = c.eps, steps = 40 })
    local n = c.norm == 'linf' and d:abs():amax():item() or d:norm(2):item()
    H.assert(n <= c.eps + 1e-5 and d.shape[1] == 1, c.norm .. ': inside the ball, one delta: ' .. n)
    local r = HO.uap(model, test, { delta = d })
    H.assert(r.accuracy < clean - 0.2, ('%s: UAP accuracy %.3f vs clean %.3f'):format(c.norm, r.accuracy, clean))
    H.assert(r.x:min():item() >= 0 and r.x:amax():item() <= 1, c.norm .. ': valid images')
  end
end)

H.test('PGD at the input respects eps and [0, 1]', function()
  local r = HO.pgd(model, test, { norm = 'linf', eps = 0.1, steps = 5, rng = lat.Generator(1) })
  H.assert((r.x - test.x):abs():amax():item() <= 0.1 + 1e-6 and r.x:min():item() >= 0 and r.x:amax():item() <= 1, 'in the box')
  H.assert(r.accuracy < 0.5, 'PGD breaks the tiny model: ' .. r.accuracy)
end)

-- a hand-set model on 2x2 images: predicts class 1 when the mean brightness exceeds 0.5
local function threshold_model()
  local m = nn.Sequential{ { 'flat', nn.Flatten() }, { 'fc', nn.Linear(4, 2) } }
  lat.no_grad(function()
    m.fc.weight:copy_(lat.tensor{ { 0, 0, 0, 0 }, { 1, 1, 1, 1 } })
    m.fc.bias:copy_(lat.tensor{ 0, -2 })
  end)
  return m
end
-- ten constant images of brightness 0.05, 0.15, ..., 0.95, labels from fn(i), i = 0..9
local function ramp(label)
  local x, y = lat.empty(10, 1, 2, 2), lat.empty({ 10 }, 'int32')
  for i = 0, 9 do
    for k = 0, 3 do x.f[i * 4 + k] = (i + 0.5) / 10 end
    y.i[i] = label(i)
  end
  return lat.data.TensorDataset{ x = x, y = y }
end
local function shift(dv) return function(x) return (x + dv):clamp(0, 1) end end

H.test('run aggregates over uneven batches, attacks and families', function()
  local m = threshold_model()
  local ds = ramp(function() return 1 end)
  local attacks = {
    function(mm, b) return HO.score(mm, shift(0.3)(b.x), b.y) end,  -- correct for i = 2..7
    { name = 'dark', family = 'shift', attack = function(mm, b) return { accuracy = HO.score(mm, shift(-0.3)(b.x), b.y).accuracy } end },
    { name = 'same', family = 'shift', attack = function(mm, b) return HO.score(mm, b.x, b.y) end },
  }
  local r = HO.run(m, ds, attacks, { batch_size = 3, max_examples = 8 })
  H.near(r.clean_accuracy, 3 / 8, 1e-12, 'clean: i = 5, 6, 7 of 0..7')
  H.near(r.accuracy.attack1, 6 / 8, 1e-12, 'brighter')
  H.near(r.accuracy.dark, 0, 1e-12, 'darker')
  H.near(r.accuracy.same, 3 / 8, 1e-12, 'unchanged')
  H.near(r.families.shift, 3 / 16, 1e-12, 'family mean')
  H.near(r.robustness, (6 / 8 + 3 / 16) / 2, 1e-12, 'robustness: the mean of the family means')
  H.near(r.mean, (6 / 8 + 3 / 8) / 3, 1e-12, 'mean over attacks')
  H.assert(r.n == 8 and r.rows[2].n == 8 and r.rows[1].family == 'attack1', 'counts and names')
  H.raises(function() HO.run(m, ds, { HO.spec.patch{ size = 1 } }) end, 'needs opts.fit_data')
end)

H.test('target rates and the trigger check flag a corruption that looks like a trigger', function()
  local m = threshold_model()
  local ds = ramp(function(i) return i >= 5 and 1 or 0 end)
  H.near(HO.target_rate(m, ds, 1), 0, 0, 'clean: no class-0 image predicted 1')
  H.near(HO.target_rate(m, ds, 1, shift(0.3)), 3 / 5, 1e-12, 'brighter: 3 of the 5 others')
  H.near(HO.target_rate(m, ds, 1, shift(0.3), { exclude = false }), 8 / 10, 1e-12, 'among all images')
  local attacks = { HO.spec.pgd{ eps = 0.1 }, { name = 'bright', transform = shift(0.3) }, HO.spec.corruption{ kind = 'contrast', severity = 3 } }
  local rows = HO.trigger_check(m, attacks, { { target = 1 } }, ds)
  H.assert(#rows == 2, 'one row per corruption and trojan target')
  H.assert(rows[1].name == 'bright' and rows[1].flagged and math.abs(rows[1].increase - 0.6) < 1e-12, 'brightening flagged')
  H.assert(rows[2].name == 'contrast_3' and not rows[2].flagged, 'contrast leaves constant images alone')
  H.assert(#HO.trigger_check(m, attacks, nil, ds) == 4, 'every class when no trojans are given')
end)

H.test('the default Fashion-MNIST suite spans five families', function()
  local fams, names = {}, {}
  for _, s in ipairs(HO.fashion_suite()) do fams[s.family] = (fams[s.family] or 0) + 1; names[s.name] = true end
  for _, f in ipairs({ 'pgd_linf', 'pgd_l2', 'patch', 'uap', 'corruption' }) do H.assert(fams[f], 'family ' .. f) end
  H.assert(fams.corruption == 15 and names['pgd_linf_8/255'] and names['pgd_l2_2'] and names['fog_3'], 'names and severities')
end)

H.test('flags mark harmed robustness and entrenched trojans; pareto keeps the undominated rows', function()
  local und = { name = 'undefended', robustness = 0.5, trojan_asr = 0.9, clean_accuracy = 0.9 }
  local cft = { name = 'clean_finetune', robustness = 0.52, trojan_asr = 0.6, clean_accuracy = 0.9 }
  local rows = {
    und, cft,
    { name = 'at', robustness = 0.48, trojan_asr = 0.7, clean_accuracy = 0.85 },
    { name = 'lat', robustness = 0.6, trojan_asr = 0.3, clean_accuracy = 0.88 },
    { name = 'rlp', robustness = 0.495, trojan_asr = 0.55, clean_accuracy = 0.89 },
  }
  lat.eval.flags(rows, { undefended = und, clean_finetune = cft })
  H.assert(rows[3].flags == 'robustness harmed, trojan entrenched', 'both: ' .. rows[3].flags)
  H.assert(rows[4].flags == '' and rows[4].robustness_harmed == false and rows[4].trojan_entrenched == false, 'neither')
  H.assert(rows[5].flags == 'robustness harmed', 'one')
  lat.eval.flags(rows, { undefended = und, clean_finetune = cft }, { tolerance = 0.01 })
  H.assert(rows[5].flags == '' and rows[3].flags == 'robustness harmed, trojan entrenched', 'a tolerance forgives small drops')
  local front = lat.eval.pareto(rows, 'robustness', 'clean_accuracy')
  local got = {}
  for _, r in ipairs(front) do got[#got + 1] = r.name end
  H.assert(table.concat(got, ',') == 'clean_finetune,lat', 'front: ' .. table.concat(got, ','))
  local f2 = lat.eval.pareto(rows, 'robustness', function(r) return -r.trojan_asr end)
  H.assert(#f2 == 1 and f2[1].name == 'lat', 'minimising the ASR through a function')
  local pts = lat.eval.points({ { name = 'AT 1', defence = 'at (input)', clean_accuracy = 0.8, trojan_asr = 0.25 } },
    'clean_accuracy', function(r) return 1 - r.trojan_asr end)
  H.assert(#pts == 1 and pts[1].x == 0.8 and pts[1].y == 0.75 and pts[1].label == 'AT 1' and pts[1].group == 'at',
    'points: x, y, the name as label, the first word of the defence as group')
  local own = lat.eval.points(rows, 'clean_accuracy', 'robustness', function(r) return r.name:upper() end)
  H.assert(#own == 5 and own[4].group == 'LAT' and own[4].y == 0.6, 'points with a group function')
end)

H.finish()
