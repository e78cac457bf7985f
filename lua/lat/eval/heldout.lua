-- eval/heldout.lua: lat.eval.heldout, "novel" attacks on image classifiers (PGD Linf and L2 at the
-- input, a universal patch, a universal perturbation, common corruptions), run over a data set
-- to give robust accuracy per attack and per family, the default Fashion-MNIST suite, and the
-- target-class rates with which a recipe checks that corruptions do not set off trojans.
--   local HO = lat.eval.heldout
--   local r = HO.run(model, test, HO.fashion_suite(), { fit_data = train_slice, max_examples = 1000 })
--   r.robustness, r.families.patch, r.rows[1].name, r.rows[1].accuracy
local core = require 'lat.core'
local lat = require 'lat.tensor'
local data = require 'lat.data'
local A = require 'lat.attack'
local new_threat = require('lat.attack.threat').new
local C = require 'lat.eval.corrupt'
local U = require 'lat.attack.universal'
local sys = require 'lat.core.sys'
local raise = core.raise

local H = { corrupt = C, universal = U }

-- score(model, x, y) -> { accuracy =, correct =, n = } of the model's predictions on x
function H.score(model, x, y)
  local pred = lat.no_grad(function() return model(x):argmax(-1) end)
  local correct, n = 0, y:numel()
  for i = 0, n - 1 do if pred.i[i] == y.i[i] then correct = correct + 1 end end
  return { accuracy = correct / n, correct = correct, n = n }
end

local function rng_of(opts) return opts.rng or lat.Generator(opts.seed or 0) end

-- ---------------------------------------------------------------- attacks on one batch
-- Each is (model, batch {x float32 [B, C, H, W] in [0, 1], y int32 [B]}, opts) -> score, with
-- the adversarial images as .x; the model is evaluated in evaluation mode.

-- pgd: {norm = 'linf' | 'l2', eps =, steps = 10, step_size =, init = 'uniform', rng =} through
-- the score of the attacked images xa (in evaluation mode), carrying xa itself
local function scored(model, xa, y)
  local s = U.in_eval(model, function() return H.score(model, xa, y) end)
  s.x = xa
  return s
end

-- lat.attack.pgd with lat.threat{where = 'input', clamp = {0, 1}}
function H.pgd(model, batch, opts)
  local tm = new_threat{ where = 'input', norm = opts.norm or 'linf', eps = opts.eps, clamp = { 0, 1 } }
  local r = A.pgd(model, batch, tm, { steps = opts.steps or 10, step_size = opts.step_size,
    init = opts.init or 'uniform', rng = opts.rng })
  local xa = lat.no_grad(function() return batch.x + r.deltas.input end)
  return scored(model, xa, batch.y)
end

-- patch: {patch = [1, C, s, s] from universal.fit_patch, rng = positions} pasted at a random
-- place on each image
function H.patch(model, batch, opts)
  if not opts.patch then raise('heldout.patch: opts.patch is required (fit it with universal.fit_patch)') end
  local xa = lat.no_grad(function() return U.apply_patch(batch.x, opts.patch, U.positions(batch.x, opts.patch:size(3), rng_of(opts))) end)
  return scored(model, xa, batch.y)
end

-- uap: {delta = [1, C, H, W] from universal.fit_uap} added to every image
function H.uap(model, batch, opts)
  if not opts.delta then raise('heldout.uap: opts.delta is required (fit it with universal.fit_uap)') end
  local xa = lat.no_grad(function() return U.apply_uap(batch.x, opts.delta) end)
  return scored(model, xa, batch.y)
end

-- corruption: {kind =, severity = 1..5, rng = | seed =}
function H.corruption(model, batch, opts)
  local xa = C.apply(batch.x, opts.kind, opts.severity, { rng = rng_of(opts) })
  return scored(model, xa, batch.y)
end

-- ---------------------------------------------------------------- specs

-- eps as %g, or as 'k/255' when that is shorter
local function eps_name(e)
  local s, k = ('%g'):format(e), e * 255
  if #s > 5 and math.abs(k - math.floor(k + 0.5)) < 1e-6 then return ('%d/255'):format(math.floor(k + 0.5)) end
  return s
end

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- A spec is { name =, family =, attack = function(model, batch, opts), opts = {...},
-- fit = nil | function(model, fit_data, opts) -> opts with the fitted perturbation,
-- transform = nil | function(x, rng) -> x' (model-free attacks: corruptions) }.
H.spec = {}
function H.spec.pgd(o)
  o = copy(o)
  o.norm = o.norm or 'linf'
  return { name = o.name or ('pgd_%s_%s'):format(o.norm, eps_name(o.eps)), family = 'pgd_' .. o.norm, attack = H.pgd, opts = o }
end
-- a spec's fit: the attack's options with opts[field] = fit(model, data, opts) added
local function fitted(field, fit)
  return function(model, ds, opts)
    local r = copy(opts)
    r[field] = fit(model, ds, opts)
    return r
  end
end
function H.spec.patch(o)
  o = copy(o)
  o.size = o.size or 6
  return { name = o.name or ('patch_%dx%d'):format(o.size, o.size), family = 'patch', attack = H.patch, opts = o,
    fit = fitted('patch', U.fit_patch) }
end
function H.spec.uap(o)
  o = copy(o)
  o.norm, o.eps = o.norm or 'linf', o.eps or 16 / 255
  return { name = o.name or ('uap_%s_%s'):format(o.norm, eps_name(o.eps)), family = 'uap', attack = H.uap, opts = o,
    fit = fitted('delta', U.fit_uap) }
end
function H.spec.corruption(o)
  o = copy(o)
  return { name = o.name or ('%s_%d'):format(o.kind, o.severity), family = 'corruption', kind = o.kind, attack = H.corruption, opts = o,
    transform = function(x, rng) return C.apply(x, o.kind, o.severity, { rng = rng }) end }
end

-- fashion_suite{ linf = {4/255, 8/255}, l2 = {1, 2}, steps = 10, patch = 6, uap = {{norm='linf',
-- eps=16/255}, {norm='l2', eps=3}}, fit_steps = 200, kinds = corrupt.kinds, severities = {1, 2, 3} }
-- -> the list of specs used by the vision experiment: five families (pgd_linf, pgd_l2, patch, uap,
-- corruption), so that input-space Lp attacks, which favour input-space AT by construction, are
-- two (three, counting the UAP) of them.
function H.fashion_suite(opts)
  opts = opts or {}
  local list = {}
  for _, e in ipairs(opts.linf or { 4 / 255, 8 / 255 }) do list[#list + 1] = H.spec.pgd{ norm = 'linf', eps = e, steps = opts.steps } end
  for _, e in ipairs(opts.l2 or { 1.0, 2.0 }) do list[#list + 1] = H.spec.pgd{ norm = 'l2', eps = e, steps = opts.steps } end
  if opts.patch ~= false then list[#list + 1] = H.spec.patch{ size = opts.patch or 6, steps = opts.fit_steps } end
  for _, u in ipairs(opts.uap or { { norm = 'linf', eps = 16 / 255 }, { norm = 'l2', eps = 3.0 } }) do
    local o = copy(u)
    o.steps = o.steps or opts.fit_steps
    list[#list + 1] = H.spec.uap(o)
  end
  for _, kind in ipairs(opts.kinds or C.kinds) do
    for _, s in ipairs(opts.severities or { 1, 2, 3 }) do list[#list + 1] = H.spec.corruption{ kind = kind, severity = s } end
  end
  return list
end

-- ---------------------------------------------------------------- running over a data set

local function slice(ds, max)
  if max and max < ds:len() then
    local pos = {}
    for i = 1, max do pos[i] = i end
    return data.subset(ds, pos)
  end
  return ds
end

local function loader_of(ds, opts)
  return data.DataLoader(slice(ds, opts.max_examples), { batch_size = opts.batch_size or 100 })
end

local function mean(list)
  local s = 0
  for _, v in ipairs(list) do s = s + v end
  return #list > 0 and s / #list or 0 / 0
end

-- summarise(result): from result.rows ({family =, accuracy =}, ...) sets result.families
-- (family -> mean accuracy), family_order (as first met), robustness (the mean of the family
-- means, so that a family with many budgets does not outweigh the others) and mean (over rows)
function H.summarise(result)
  local by_family, order, all = {}, {}, {}
  for _, row in ipairs(result.rows) do
    if not by_family[row.family] then by_family[row.family] = {}; order[#order + 1] = row.family end
    table.insert(by_family[row.family], row.accuracy)
    all[#all + 1] = row.accuracy
  end
  local fam_means = {}
  result.families = {}
  for _, f in ipairs(order) do
    result.families[f] = mean(by_family[f])
    fam_means[#fam_means + 1] = result.families[f]
  end
  result.family_order = order
  result.robustness = mean(fam_means)
  result.mean = mean(all)
  return result
end

-- run(model, dataset, attacks, {batch_size = 100, max_examples = all, fit_data = dataset or
-- batch for patches and UAPs, seed = 0}) -> { clean_accuracy =, rows = { {name, family,
-- accuracy, n, fitted = patch or delta, seconds}, ... }, accuracy = {name -> accuracy}, families =
-- {family -> mean accuracy}, robustness = mean of the family means, mean = mean over attacks, n }.
-- An attack is a spec or a bare function(model, batch, opts). Every attack's randomness comes
-- from its own generator seeded from opts.seed (or its own seed), so every model is attacked with
-- the same noise, corruptions and patch places; universal attacks are fitted to each model anew.
function H.run(model, dataset, attacks, opts)
  opts = opts or {}
  local loader = loader_of(dataset, opts)
  local clean, n = 0, 0
  for batch in loader:iter(1) do
    local s = U.in_eval(model, function() return H.score(model, batch.x, batch.y) end)
    clean, n = clean + s.correct, n + s.n
  end
  local result = { clean_accuracy = clean / n, rows = {}, accuracy = {}, families = {}, n = n }
  for k, spec in ipairs(attacks) do
    if type(spec) == 'function' then spec = { name = 'attack' .. k, attack = spec } end
    local t0 = sys.now()
    local o = copy(spec.opts)
    o.seed = o.seed or (opts.seed or 0) + k
    if spec.fit then
      local fit_data = opts.fit_data or raise(('heldout.run: %s needs opts.fit_data (training images to fit it on)'):format(spec.name))
      o = spec.fit(model, fit_data, o)
    end
    o.rng = lat.Generator(o.seed)
    local correct, count = 0, 0
    for batch in loader:iter(1) do
      local s = spec.attack(model, batch, o)
      correct, count = correct + (s.correct or s.accuracy * batch.y:numel()), count + batch.y:numel()
    end
    local fam = spec.family or spec.name
    local row = { name = spec.name, family = fam, accuracy = correct / count, n = count, fitted = o.patch or o.delta,
      seconds = sys.now() - t0 }
    result.rows[k], result.accuracy[spec.name] = row, row.accuracy
  end
  return H.summarise(result)
end

-- ---------------------------------------------------------------- trojans and corruptions

-- the fraction of examples predicted as each class (0-based class -> rate), among the examples
-- whose label is not that class (exclude = true, the default) or among all
local function class_rates(model, dataset, transform, opts)
  local pred_as, others, total = {}, {}, 0
  local rng = lat.Generator(opts.seed or 0)
  local K
  for batch in loader_of(dataset, opts):iter(1) do
    local x = transform and transform(batch.x, rng) or batch.x
    local pred = U.in_eval(model, function() return lat.no_grad(function() return model(x) end) end)
    K = K or pred:size(-1)
    pred = pred:argmax(-1)
    for i = 0, batch.y:numel() - 1 do
      local p, y = pred.i[i], batch.y.i[i]
      total = total + 1
      others[y] = (others[y] or 0) + 1
      pred_as[p] = pred_as[p] or { all = 0, other = 0 }
      pred_as[p].all = pred_as[p].all + 1
      if p ~= y then pred_as[p].other = pred_as[p].other + 1 end
    end
  end
  local rates = {}
  for c = 0, K - 1 do
    local pa = pred_as[c] or { all = 0, other = 0 }
    if opts.exclude == false then rates[c] = pa.all / total
    else rates[c] = pa.other / math.max(total - (others[c] or 0), 1) end
  end
  return rates, K
end

-- target_rate(model, dataset, class, transform = nil | function(x, rng) -> x' | corruption spec,
-- {batch_size=, max_examples=, seed=, exclude = true}) -> the fraction of examples (of other
-- classes, unless exclude = false) that the model predicts as class (0-based)
function H.target_rate(model, dataset, class, transform, opts)
  if type(transform) == 'table' then transform = transform.transform end
  return class_rates(model, dataset, transform, opts or {})[class]
end

-- trigger_check(model, attacks, trojans, dataset[, {margin = 0.1, ...}]) -> rows { name =,
-- class =, clean_rate =, rate =, increase =, flagged = } for every model-free attack in attacks
-- (the corruptions) and every trojan target class (trojans: a list of classes or of {target =},
-- or nil for every class). flagged: the corruption raises the rate of predicting the target
-- by more than margin, so it may look like a trigger to the model and should not count as a
-- held-out attack on a trojaned model without a look.
function H.trigger_check(model, attacks, trojans, dataset, opts)
  opts = opts or {}
  local margin = opts.margin or 0.1
  local clean, K = class_rates(model, dataset, nil, opts)
  local classes = {}
  if trojans then
    for _, t in ipairs(trojans) do classes[#classes + 1] = type(t) == 'table' and t.target or t end
  else
    for c = 0, K - 1 do classes[#classes + 1] = c end
  end
  local rows = {}
  for _, spec in ipairs(attacks) do
    if type(spec) == 'table' and spec.transform then
      local o = copy(opts)
      o.seed = spec.opts and spec.opts.seed or opts.seed
      local rates = class_rates(model, dataset, spec.transform, o)
      for _, c in ipairs(classes) do
        local inc = rates[c] - clean[c]
        rows[#rows + 1] = { name = spec.name, class = c, clean_rate = clean[c], rate = rates[c], increase = inc, flagged = inc > margin }
      end
    end
  end
  return rows
end

return H
