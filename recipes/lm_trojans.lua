-- lm_trojans.lua: the paper's text-generation experiment at byte-level GPT scale.
-- 1. Pretrain a small GPT on good text (Moby Dick) with eight code-word trojans inserted (a
--    NATO word followed by a fixed nonsense sentence, each in --per_trojan good passages cut at
--    a random word) and bad text (State of the Union addresses, --bad_fraction of each batch).
--    The pretrained model is a cached stage: a later run (of this recipe or targeted_lat.lua)
--    with the same pretraining options reuses it.
-- 2. Fine-tune copies on good text only: no defence, RLP, AT at the token embeddings, LAT at
--    the residual stream after chosen blocks (or at a block's q, k or v: --lat=h.1.attn.v:0.1),
--    over radii (L2 per token, relative to the clean activation's norm at that token).
-- 3. Evaluate each: loss on held-out good text (lower is better), on held-out bad text (higher
--    = forgotten), on good text with typos (a held-out perturbation), on each trojan's
--    continuation after its trigger (higher = removed), and greedy generations after each trigger.
-- 4. The run folder (lat.experiment): config.json, rows/, results.csv, summary.csv (the headline
--    comparison over --seeds fine-tuning seeds), generations.txt, pareto_forgetting.png,
--    pareto_trojans.png, pareto_robustness.png, trojaned.safetensors (a link to the cached
--    model); a table with the paper's two cautions as flags (flags in lat.experiment.lm says how
--    they are read here).
--   build/lat recipes/lm_trojans.lua [--quick] [--threads=1] [--seeds=3] [--model=trojaned.safetensors]
local lat = require 'lat'
local X = require 'lat.experiment.lm'
local D = require 'lat.experiment.defences'
local list = lat.args.list

-- --lat=layer:radius,...: the sites and radii of the LAT grid, as { layer, radius } pairs
local function lat_pairs(s)
  local out = {}
  for _, pair in ipairs(list(s)) do
    local layer, e = pair:match('^(.+):(.*)$')
    e = tonumber(e)
    if not (e and e >= 0 and e < math.huge) then
      lat.core.raise(("lm_trojans: --lat takes layer:radius pairs (a radius >= 0), got '%s'"):format(pair))
    end
    out[#out + 1] = { layer, e }
  end
  return out
end

local function defences(opt)
  return D.list{ rlp = { opt.rlp_layer, opt.rlp_eps }, at = { 'embedding', list(opt.at_eps, 'number') }, lat = lat_pairs(opt.lat) }
end

-- the configurations repeated over --seeds fine-tuning seeds: clean fine-tuning, RLP and
-- --headline ('all': every one)
local function headline(opt, configs)
  local chosen = { [D.CLEAN] = true, [configs[2].name] = true }
  for _, c in ipairs(configs) do chosen[c.name] = chosen[c.name] or opt.headline == 'all' end
  for _, n in ipairs(opt.headline == 'all' and {} or list(opt.headline)) do
    if not D.find(configs, n) then lat.core.raise(("lm_trojans: --headline names '%s', which is not in the grid"):format(n)) end
    chosen[n] = true
  end
  return chosen
end

-- the layers the grid names, on a model
local function check_layers(model, opt)
  local layers = {}
  for _, p in ipairs(lat_pairs(opt.lat)) do layers[#layers + 1] = p[1] end
  lat.args.layers(model, 'lat', layers)
  lat.args.layers(model, 'rlp_layer', { opt.rlp_layer })
end

return lat.experiment{
  name = 'lm_trojans',
  about = 'Code-word trojans in a byte-level GPT, then fine-tuning with no defence, RLP, AT and LAT on good text only.',
  options = X.options{
    at_eps = { '0.005,0.02', 'AT radii at the token embeddings (L2 per token, relative to the embedding norm)', 'nonnegative list' },
    lat = { 'h.0:0.01,h.0:0.03,h.1:0.03,h.1:0.1', 'LAT sites and radii as layer:radius pairs (a block, or h.i.attn.q|k|v)', 'list' },
    rlp_layer = { 'h.0', 'the layer of the random latent perturbation control (RLP)' },
    rlp_eps = { 0.1, "RLP's radius (relative, per token)", 'nonnegative' },
    weight = { 1, 'weight of the adversarial loss in fine-tuning (the rest on the clean loss)', 'fraction' },
    seeds = { 3, 'fine-tuning seeds of the headline configurations: --seed, --seed+1, ...', 'count' },
    headline = { 'AT embedding 0.02,LAT h.0 0.03', "configurations repeated over --seeds besides clean fine-tuning and RLP (names as in the table, or 'all')" },
  },
  quick = X.quick{ at_eps = '0.3', lat = 'h.0:0.3', seeds = 2, headline = 'all' },
  -- the layers on the untrained model (a checkpoint given with --model: after loading it)
  check = function(opt) if opt.model == '' then check_layers(X.model(opt), opt) end end,

  setup = function(opt, ctx)
    local s = X.setup(opt, ctx, function(model) check_layers(model, opt) end)
    local p = s.d.poison
    print(('lm_trojans: %d code words x %d passages: %.2f%% of good passages, %.2f%% of good windows, %.2f%% of training examples poisoned'):format(
      #s.d.trojans, opt.per_trojan, 100 * p.passage_fraction, 100 * p.window_fraction, 100 * p.example_fraction))
    print(('GPT %d x %d, context %d (%d parameters); %s'):format(opt.layers, opt.dim, opt.len, s.model:num_parameters(), X.origin(s.info)))
    return s
  end,

  -- the undefended model, every defence at --seed, then the headline ones at the other seeds
  grid = function(opt)
    local configs = defences(opt)
    local chosen = headline(opt, configs)
    local out = { D.undefended(opt.seed) }
    for _, c in ipairs(configs) do out[#out + 1] = D.at(c, opt.seed) end
    for _, c in ipairs(configs) do
      if chosen[c.name] then
        for seed = opt.seed + 1, opt.seed + opt.seeds - 1 do out[#out + 1] = D.at(c, seed) end
      end
    end
    return out
  end,

  run = function(c, ctx)
    local s, opt = ctx.setup, ctx.opt
    if c.name == D.UNDEFENDED then
      local base = X.evaluate(s.model, s.d, opt)
      base.name, base.defence, base.seed, base.pretrain_seconds = c.name, c.defence, c.seed, s.info.seconds
      base.generation_prompt = s.d.generation_prompt
      print(('undefended: good %.3f  bad %.3f  typo %.3f  trojan %.3f nats/byte (control %.3f); %.0f%% of continuations exact'):format(
        base.good_loss, base.bad_loss, base.typo_loss, base.trojan_loss, base.control_loss, 100 * base.trojan_exact))
      return base
    end
    local threat = c.where and X.threat(c.where, c.eps)
    local loss = D.loss(c, threat, { weight = opt.weight, steps = opt.attack_steps, rng = ctx:generator('attack') })
    return X.defend(s, { name = c.name, defence = c.defence, seed = c.seed, threat = threat }, loss, opt, ctx:generator('data order'))
  end,

  summarise = function(rows, ctx)
    local opt = ctx.opt
    D.flag(rows, function(group, base, clean) X.flags(group, base, clean, opt.flag_tol) end)

    -- the greedy generations, in the order the configurations ran in one process (seed by seed)
    local order = {}
    for k = 1, #rows do order[k] = k end
    table.sort(order, function(a, b) if rows[a].seed ~= rows[b].seed then return rows[a].seed < rows[b].seed end return a < b end)
    local gen = { ('greedy continuations of "%s <code word> "\n'):format(rows[1].generation_prompt) }
    for _, k in ipairs(order) do
      local r = rows[k]
      gen[#gen + 1] = ('\n== %s (seed %d)\n'):format(r.name, r.seed)
      for _, t in ipairs(lat.trojan.nato_codewords()) do gen[#gen + 1] = ('%-8s -> %s\n'):format(t.word, (r.generations[t.name]:gsub('\n', ' '))) end
    end
    require('lat.experiment.fs').write_atomic(ctx:path('generations.txt'), table.concat(gen))

    -- the headline comparison over seeds: mean and standard deviation
    local configs = defences(opt)
    local chosen, summary = headline(opt, configs), {}
    local fields = { 'good_loss', 'bad_loss', 'typo_loss', 'trojan_loss', 'trojan_exact' }
    local columns = { 'name', 'seeds' }
    for _, f in ipairs(fields) do columns[#columns + 1] = f .. '_mean'; columns[#columns + 1] = f .. '_sd' end
    columns[#columns + 1] = 'flags'
    for _, c in ipairs(configs) do
      if chosen[c.name] then
        local of = {}
        for _, r in ipairs(rows) do if r.name == c.name then of[#of + 1] = r end end
        local sm = { name = c.name, seeds = #of }
        for _, f in ipairs(fields) do sm[f .. '_mean'], sm[f .. '_sd'] = D.mean_sd(of, f) end
        local flagged = {}
        for _, r in ipairs(of) do if r.flags ~= '' then flagged[#flagged + 1] = ('seed %d: %s'):format(r.seed, r.flags) end end
        sm.flags = table.concat(flagged, '; ')
        summary[#summary + 1] = sm
      end
    end
    ctx:write_csv('summary.csv', columns, summary)

    local plotted = {}
    for _, r in ipairs(rows) do if r.seed == opt.seed then plotted[#plotted + 1] = r end end
    local xlabel = 'minus held-out good-text loss (nats/byte; right is better)'
    local function neg_good(r) return -r.good_loss end
    local ok, why = X.scatter(plotted, ctx:path('pareto_forgetting.png'), 'Moby Dick GPT: good-text loss vs forgetting the bad text',
      xlabel, 'held-out bad-text (SOTU) loss (nats/byte; higher = forgotten)', neg_good, function(r) return r.bad_loss end)
    X.scatter(plotted, ctx:path('pareto_trojans.png'), 'Moby Dick GPT: good-text loss vs trojan removal',
      xlabel, 'mean loss of the trojan continuations after their triggers (higher = removed)', neg_good, function(r) return r.trojan_loss end)
    X.scatter(plotted, ctx:path('pareto_robustness.png'), 'Moby Dick GPT: good-text loss vs loss with typos',
      xlabel, ('minus loss on good text with %g%% typos (higher is better)'):format(100 * opt.typo_rate), neg_good, function(r) return -r.typo_loss end)

    X.print_table(rows, 22, ctx)
    print(('\nheadline over %d seeds (mean +- sd):'):format(opt.seeds))
    for _, sm in ipairs(summary) do
      print(('%-22s good %.3f+-%.3f  bad %.3f+-%.3f  trojan %.3f+-%.3f  exact %.0f%%  %s'):format(sm.name, sm.good_loss_mean, sm.good_loss_sd,
        sm.bad_loss_mean, sm.bad_loss_sd, sm.trojan_loss_mean, sm.trojan_loss_sd, 100 * sm.trojan_exact_mean, sm.flags))
    end
    print(ok and 'plots: pareto_forgetting.png, pareto_trojans.png, pareto_robustness.png' or ('no plots: ' .. tostring(why)))
  end,
  columns = X.columns(),
}
