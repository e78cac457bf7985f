-- targeted_lat.lua: targeted LAT against untargeted LAT and AT on the trojaned byte-level GPT of
-- lm_trojans.lua (the same cached stage: pretrained once for both recipes' options, or loaded
-- with --model=FILE). Every defence fine-tunes on good text (Moby Dick) only, on the same
-- batches: each row is a window of good text whose first --prompt_share of bytes is the "prompt"
-- (the only positions the adversary may perturb) and the rest the good completion. The targeted
-- adversary also gets a bad completion (a window of State of the Union text after the same
-- prompt) and moves the model toward it (cross-entropy) and away from the good completion
-- (-log(1 - p)); the model is trained the other way round under that perturbation. The
-- untargeted adversary raises the loss of the good completion, and the model lowers it. Every
-- defence adds the same anchor: --anchor times the clean next-token loss on the whole good
-- window. The adversary never sees a trojan trigger or continuation. Evaluation, flags and
-- outputs as in lm_trojans.lua (summary.csv: mean and sd over --seeds).
--   build/lat recipes/targeted_lat.lua [--quick] [--threads=1] [--model=trojaned.safetensors]
local lat = require 'lat'
local X = require 'lat.experiment.lm'
local D = require 'lat.experiment.defences'
local A = lat.attack

local IGN = X.IGNORE

-- the defences: clean fine-tuning, then untargeted and targeted AT at the embeddings and LAT at
-- --lat_layer
local function defences(opt)
  local out = { { name = D.CLEAN, defence = 'none' } }
  for _, site in ipairs({ { 'embedding', opt.at_eps }, { opt.lat_layer, opt.lat_eps } }) do
    local where, e = site[1], site[2]
    for _, kind in ipairs({ 'untargeted', 'targeted' }) do
      local short = where == 'embedding' and 'AT' or 'LAT'
      local prefix = kind == 'targeted' and 'targeted ' or ''
      out[#out + 1] = { name = ('%s%s %s %g'):format(prefix, short, where, e), defence = prefix .. short, kind = kind, where = where, eps = e }
    end
  end
  return out
end

-- the batches: x, y (the good window, for the anchor), y_good (its completion; the prompt
-- ignored), x_bad (the prompt, then a bad window), y_bad (the bad completion); P prompt bytes
local function pair_sampler(d, opt, P)
  local T = opt.len
  return function(rng)
    local good = X.sampler(d.good_clean, nil, opt.batch, 0, rng)
    local bad = X.sampler(d.bad_train, nil, opt.batch, 0, rng)
    return function()
      local g, b = good(), bad()
      local B = g.x:size(1)
      local x_bad, y_good, y_bad = g.x:clone(), g.y:clone(), lat.full({ B, T }, IGN, 'int32')
      for r = 1, B do
        for t = 1, T do
          if t > P then x_bad:set(b.x:get(r, t - P), r, t) end
          if t >= P then y_bad:set(b.x:get(r, t - P + 1), r, t) else y_good:set(IGN, r, t) end
        end
      end
      return { x = g.x, y = g.y, y_good = y_good, x_bad = x_bad, y_bad = y_bad }
    end
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

-- the defence's loss under its adversary, plus the anchor
local function defence_loss(c, threat, opt, rng)
  local k = KINDS[c.kind]
  local adv = lat.train.adversarial{ threat = threat, forward = k.forward, loss = k.defender,
    objective = function() return k.adversary end,
    attack = { steps = opt.attack_steps, init = 'random_radius', rule = 'l2', rng = rng } }
  return function(m, b)
    local loss, extra = adv(m, b)
    local anchor = lat.cross_entropy(m(b.x), b.y)
    extra.anchor_loss = anchor:item()
    return loss + anchor * opt.anchor, extra
  end
end

return lat.experiment{
  name = 'targeted_lat',
  about = 'Targeted against untargeted LAT and AT on the trojaned byte-level GPT of lm_trojans, on good text only.',
  options = X.options{
    at_eps = { 0.02, 'AT radius at the token embeddings (L2 per token, relative)', 'nonnegative' },
    lat_layer = { 'h.0', 'the layer of LAT (its output)' },
    lat_eps = { 0.03, 'LAT radius (L2 per token, relative)', 'nonnegative' },
    anchor = { 1, 'weight of the clean next-token loss every defence adds', 'nonnegative' },
    prompt_share = { 0.5, 'share of each window that is the prompt (the only bytes the adversary perturbs)', 'fraction' },
    seeds = { 2, 'fine-tuning seeds of every configuration: --seed, --seed+1, ...', 'count' },
  },
  quick = X.quick{ at_eps = 0.3, lat_eps = 0.3, seeds = 1 },
  -- --lat_layer on the untrained model (a checkpoint given with --model: after loading it)
  check = function(opt) if opt.model == '' then lat.args.layers(X.model(opt), 'lat_layer', { opt.lat_layer }) end end,

  setup = function(opt, ctx)
    local s = X.setup(opt, ctx, function(model) lat.args.layers(model, 'lat_layer', { opt.lat_layer }) end)
    print(('targeted_lat: GPT %d x %d (%d parameters), %s'):format(opt.layers, opt.dim, s.model:num_parameters(), X.origin(s.info)))
    local P = math.max(1, math.floor(opt.len * opt.prompt_share))
    s.prompt_mask = lat.zeros(1, opt.len, 1)
    for j = 1, P do s.prompt_mask:set(1, 1, j, 1) end
    s.sampler = pair_sampler(s.d, opt, P)
    return s
  end,

  -- the undefended model, then every defence at each seed
  grid = function(opt)
    local out = { D.undefended(opt.seed) }
    for seed = opt.seed, opt.seed + opt.seeds - 1 do
      for _, c in ipairs(defences(opt)) do out[#out + 1] = D.at(c, seed) end
    end
    return out
  end,

  run = function(c, ctx)
    local s, opt = ctx.setup, ctx.opt
    if c.name == D.UNDEFENDED then
      local base = X.evaluate(s.model, s.d, opt)
      base.name, base.defence, base.seed = c.name, c.defence, c.seed
      return base
    end
    local threat = c.kind and lat.threat{ where = c.where, norm = 'l2', eps = c.eps, relative = true, granularity = 'token',
      mask = function() return s.prompt_mask end }
    local loss = c.kind and defence_loss(c, threat, opt, ctx:generator('attack'))
    return X.defend(s, { name = c.name, defence = c.defence, seed = c.seed, threat = threat }, loss, opt, ctx:generator('data order'),
      s.sampler, 30)
  end,

  summarise = function(rows, ctx)
    local opt = ctx.opt
    D.flag(rows, function(group, base, clean) X.flags(group, base, clean, opt.flag_tol) end)
    local fields = { 'good_loss', 'bad_loss', 'typo_loss', 'trojan_loss', 'trojan_exact', 'train_seconds' }
    local columns = { 'name', 'seeds' }
    for _, f in ipairs(fields) do columns[#columns + 1] = f .. '_mean'; columns[#columns + 1] = f .. '_sd' end
    local summary, means = {}, { rows[1] }
    for _, c in ipairs(defences(opt)) do
      local of = {}
      for _, r in ipairs(rows) do if r.name == c.name then of[#of + 1] = r end end
      local sm = { name = c.name, seeds = #of }
      for _, f in ipairs(fields) do sm[f .. '_mean'], sm[f .. '_sd'] = D.mean_sd(of, f) end
      summary[#summary + 1] = sm
      means[#means + 1] = { name = c.name, defence = c.defence, good_loss = sm.good_loss_mean, bad_loss = sm.bad_loss_mean,
        trojan_loss = sm.trojan_loss_mean }
    end
    ctx:write_csv('summary.csv', columns, summary)
    local xlabel = 'minus held-out good-text loss (nats/byte; right is better)'
    local function neg_good(r) return -r.good_loss end
    local ok, why = X.scatter(means, ctx:path('pareto_targeted_trojans.png'), 'Targeted vs untargeted LAT: trojan removal (mean over seeds)',
      xlabel, 'mean trojan continuation loss (higher = removed)', neg_good, function(r) return r.trojan_loss end)
    X.scatter(means, ctx:path('pareto_targeted_forgetting.png'), 'Targeted vs untargeted LAT: forgetting the bad text (mean over seeds)',
      xlabel, 'held-out bad-text loss (higher = forgotten)', neg_good, function(r) return r.bad_loss end)

    X.print_table(rows, 30, ctx)
    print(('\nmean +- sd over %d seeds:'):format(opt.seeds))
    for _, sm in ipairs(summary) do
      print(('%-30s good %.3f+-%.3f  bad %.3f+-%.3f  trojan %.3f+-%.3f  %4.0f s/fine-tune'):format(sm.name, sm.good_loss_mean, sm.good_loss_sd,
        sm.bad_loss_mean, sm.bad_loss_sd, sm.trojan_loss_mean, sm.trojan_loss_sd, sm.train_seconds_mean))
    end
    print(ok and 'plots: pareto_targeted_trojans.png, pareto_targeted_forgetting.png' or ('no plots: ' .. tostring(why)))
  end,
  columns = X.columns(),
}
