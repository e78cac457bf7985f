-- targeted_lat.lua: targeted LAT against untargeted LAT and AT on the trojaned byte-level GPT of
-- lm_trojans.lua (loaded with --model=<run>/trojaned.safetensors, or pretrained here).
-- Every defence fine-tunes on good text (Moby Dick) only, on the same batches: each row is a
-- window of good text whose first --prompt_share of bytes is the "prompt" (the only positions
-- the adversary may perturb) and the rest the good completion. The targeted adversary also gets
-- a bad completion (a window of State of the Union text after the same prompt) and moves the
-- model toward it (cross-entropy) and away from the good completion (-log(1 - p)); the model is
-- trained the other way round under that perturbation. The untargeted adversary raises the
-- loss of the good completion, and the model lowers it. Every defence adds the same anchor:
-- --anchor times the clean next-token loss on the whole good window. The adversary never sees
-- a trojan trigger or continuation. Evaluation, flags and outputs as in lm_trojans.lua.
--   build/lat recipes/targeted_lat.lua [--quick] [--threads=1] [--model=runs/lm_trojans/trojaned.safetensors]
local lat = require 'lat'
local X = require 'lat.experiment.lm'
local A = lat.attack

local defaults = {
  at_eps = 0.02, lat_layer = 'blocks.1', lat_eps = 0.03, anchor = 1, prompt_share = 0.5, seeds = 2,
  threads = 0, out = 'runs/targeted_lat', quick = false,
}
for k, v in pairs(X.defaults) do defaults[k] = v end
local opt = lat.args(defaults)
X.check(opt, { count = { 'seeds' }, natural = { 'threads' }, fraction = { 'prompt_share' },
  nonnegative = { 'at_eps', 'lat_eps', 'anchor' } })
if opt.quick then
  X.quick(opt)
  opt.at_eps, opt.lat_eps, opt.seeds = 0.3, 0.3, 1
end
-- --lat_layer on the untrained model (a checkpoint given with --model: after loading)
if opt.model == '' then lat.args.layers(X.model(opt), 'lat_layer', { opt.lat_layer }) end
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)
local now = require('lat.core.sys').now
local t_start = now()
local run = lat.log.run_dir(opt.out, opt)
local metrics = run:jsonl('metrics.jsonl')

local d = X.data(opt)
local model, info = X.trojaned(d, opt, run)
if opt.model ~= '' then lat.args.layers(model, 'lat_layer', { opt.lat_layer }) end
print(('targeted_lat: GPT %d x %d (%d parameters), %s'):format(opt.layers, opt.dim, model:num_parameters(),
  info.loaded and ('loaded from ' .. info.loaded) or ('pretrained here in %.0f s'):format(info.seconds)))
local trojaned_state = {}
for k, v in pairs(model:state_dict()) do trojaned_state[k] = v:clone() end

-- ---------------------------------------------------------------- prompt / completion batches
local T, IGN = opt.len, X.IGNORE
local P = math.max(1, math.floor(T * opt.prompt_share))
local prompt_mask = lat.zeros(1, T, 1)
for j = 0, P - 1 do prompt_mask.f[j] = 1 end

-- batch: x, y (the good window, for the anchor), y_good (its completion; the prompt ignored),
-- x_bad (the prompt, then a bad window), y_bad (the bad completion)
local function pair_sampler(rng)
  local good = X.sampler(d.good_clean, nil, opt.batch, 0, rng)
  local bad = X.sampler(d.bad_train, nil, opt.batch, 0, rng)
  return function()
    local g, b = good(), bad()
    local B = g.x:size(1)
    local x_bad, y_good, y_bad = g.x:clone(), g.y:clone(), lat.full({ B, T }, IGN, 'int32')
    for r = 0, B - 1 do
      for t = 0, T - 1 do
        local k = r * T + t
        if t >= P then x_bad.i[k] = b.x.i[r * T + t - P] end
        if t >= P - 1 then y_bad.i[k] = b.x.i[r * T + t - P + 1] else y_good.i[k] = IGN end
      end
    end
    return { x = g.x, y = g.y, y_good = y_good, x_bad = x_bad, y_bad = y_bad }
  end
end

local function ce(out, y) return lat.cross_entropy(out, y, { ignore_index = IGN }) end
local KINDS = {
  untargeted = {
    forward = function(m, b) return m(b.x) end,
    adversary = function(out, b) return -ce(out, b.y_good) end,
    defender = function(out, b) return ce(out, b.y_good) end,
  },
  targeted = {
    forward = function(m, b) return { good = m(b.x), bad = m(b.x_bad) } end,
    adversary = function(out, b) return ce(out.bad, b.y_bad) + A.unlikelihood(out.good, b.y_good, IGN) end,
    defender = function(out, b) return ce(out.good, b.y_good) + A.unlikelihood(out.bad, b.y_bad, IGN) end,
  },
}

local function defence_loss(c, seed)
  local k = KINDS[c.kind]
  local adv = lat.train.adversarial{ threat = c.threat, forward = k.forward, loss = k.defender,
    objective = function() return k.adversary end,
    attack = { steps = opt.attack_steps, init = 'random_radius', rule = 'l2', rng = lat.Generator(seed + 1000) } }
  return function(m, b)
    local loss, extra = adv(m, b)
    local anchor = lat.cross_entropy(m(b.x), b.y)
    extra.anchor_loss = anchor:item()
    return loss + anchor * opt.anchor, extra
  end
end

-- ---------------------------------------------------------------- defences
local rows, base = {}, X.evaluate(model, d, opt)
base.name, base.defence, base.seed = 'undefended', 'none', opt.seed
rows[1] = base
metrics:write(base)
local configs = { { name = 'clean fine-tune', defence = 'none' } }
for _, site in ipairs({ { 'embedding', opt.at_eps }, { opt.lat_layer, opt.lat_eps } }) do
  local where, e = site[1], site[2]
  for _, kind in ipairs({ 'untargeted', 'targeted' }) do
    local short = where == 'embedding' and 'AT' or 'LAT'
    configs[#configs + 1] = { name = ('%s%s %s %g'):format(kind == 'targeted' and 'targeted ' or '', short, where, e),
      defence = (kind == 'targeted' and 'targeted ' or '') .. short, kind = kind,
      threat = lat.threat{ where = where, norm = 'l2', eps = e, relative = true, granularity = 'token',
        mask = function() return prompt_mask end } }
  end
end

local function defend(c, seed)
  model:load_state_dict(trojaned_state)
  local seconds = X.finetune(model, d, c.kind and defence_loss(c, seed) or nil, opt, seed, c.name, pair_sampler)
  local row = X.evaluate(model, d, opt)
  row.name, row.defence, row.seed, row.train_seconds = c.name, c.defence, seed, seconds
  if c.threat then
    local desc = c.threat:describe()
    row.where, row.eps, row.eps_kind, row.granularity, row.threat = desc.where, desc.eps, desc.eps_kind, desc.granularity, tostring(c.threat)
  end
  metrics:write(row)
  print(('  %-30s seed %d: good %.3f  bad %.3f  typo %.3f  trojan %.3f (%.0f%% exact)  %.0f s'):format(c.name, seed,
    row.good_loss, row.bad_loss, row.typo_loss, row.trojan_loss, 100 * row.trojan_exact, seconds))
  return row
end

local by_name = {}
for s = opt.seed, opt.seed + opt.seeds - 1 do
  for _, c in ipairs(configs) do
    local r = defend(c, s)
    by_name[c.name] = by_name[c.name] or {}
    table.insert(by_name[c.name], r)
    rows[#rows + 1] = r
  end
end
for _, cft in ipairs(by_name['clean fine-tune']) do
  local same_seed = {}
  for i = 2, #rows do if rows[i].seed == cft.seed then same_seed[#same_seed + 1] = rows[i] end end
  X.flags(same_seed, base, cft, opt.flag_tol)
end
base.flags = '(reference)'

-- ---------------------------------------------------------------- results
local columns = { 'name', 'defence', 'seed', 'good_loss', 'bad_loss', 'typo_loss', 'trojan_loss', 'trojan_token_acc', 'trojan_exact', 'control_loss' }
for _, c in ipairs(X.trojan_columns(d)) do columns[#columns + 1] = c end
for _, k in ipairs({ 'flags', 'where', 'eps', 'eps_kind', 'granularity', 'threat', 'train_seconds', 'eval_seconds' }) do columns[#columns + 1] = k end
local csv = run:csv('results.csv', columns)
for _, r in ipairs(rows) do csv:write(r) end

local fields = { 'good_loss', 'bad_loss', 'typo_loss', 'trojan_loss', 'trojan_exact', 'train_seconds' }
local sum_cols = { 'name', 'seeds' }
for _, f in ipairs(fields) do sum_cols[#sum_cols + 1] = f .. '_mean'; sum_cols[#sum_cols + 1] = f .. '_sd' end
local summary, means = run:csv('summary.csv', sum_cols), { base }
for _, c in ipairs(configs) do
  local s = { name = c.name, defence = c.defence, seeds = #by_name[c.name] }
  for _, f in ipairs(fields) do s[f .. '_mean'], s[f .. '_sd'] = X.mean_sd(by_name[c.name], f) end
  summary:write(s)
  means[#means + 1] = { name = c.name, defence = c.defence, good_loss = s.good_loss_mean, bad_loss = s.bad_loss_mean,
    trojan_loss = s.trojan_loss_mean, summary = s }
end
local xlabel = 'minus held-out good-text loss (nats/byte; right is better)'
local function neg_good(r) return -r.good_loss end
local ok, why = X.scatter(means, run:path('pareto_targeted_trojans.png'), 'Targeted vs untargeted LAT: trojan removal (mean over seeds)',
  xlabel, 'mean trojan continuation loss (higher = removed)', neg_good, function(r) return r.trojan_loss end)
X.scatter(means, run:path('pareto_targeted_forgetting.png'), 'Targeted vs untargeted LAT: forgetting the bad text (mean over seeds)',
  xlabel, 'held-out bad-text loss (higher = forgotten)', neg_good, function(r) return r.bad_loss end)

print(('\n%-30s %4s %7s %7s %7s %7s %6s  %s'):format('model', 'seed', 'good', 'bad', 'typo', 'trojan', 'exact', 'flags'))
for _, r in ipairs(rows) do
  print(('%-30s %4d %7.3f %7.3f %7.3f %7.3f %5.0f%%  %s'):format(r.name, r.seed, r.good_loss, r.bad_loss, r.typo_loss,
    r.trojan_loss, 100 * r.trojan_exact, r.flags or ''))
end
print(('\nmean +- sd over %d seeds:'):format(opt.seeds))
for k = 2, #means do
  local s = means[k].summary
  print(('%-30s good %.3f+-%.3f  bad %.3f+-%.3f  trojan %.3f+-%.3f  %4.0f s/fine-tune'):format(s.name, s.good_loss_mean, s.good_loss_sd,
    s.bad_loss_mean, s.bad_loss_sd, s.trojan_loss_mean, s.trojan_loss_sd, s.train_seconds_mean))
end
print(('\nwrote %s (results.csv, summary.csv, metrics.jsonl, %s) in %.0f s'):format(opt.out,
  ok and 'pareto_targeted_trojans.png, pareto_targeted_forgetting.png' or ('no plots: ' .. tostring(why)), now() - t_start))
run:close()
