-- lm_trojans.lua: the paper's text-generation experiment at byte-level GPT scale.
-- 1. Pretrain a small GPT on good text (Moby Dick) with eight code-word trojans inserted (a
--    NATO word followed by a fixed nonsense sentence, each in --per_trojan good passages cut at
--    a random word) and bad text (State of the Union addresses, --bad_fraction of each batch).
-- 2. Fine-tune copies on good text only: no defence, RLP, AT at the token embeddings, LAT at
--    the residual stream after chosen blocks (or at a block's q, k or v: --lat=blocks.2.attn.v:0.1),
--    over radii (L2 per token, relative to the clean activation's norm at that token).
-- 3. Evaluate each: loss on held-out good text (lower is better), on held-out bad text (higher
--    = forgotten), on good text with typos (a held-out perturbation), on each trojan's
--    continuation after its trigger (higher = removed), and greedy generations after each trigger.
-- 4. Write the run folder: config.json, metrics.jsonl, results.csv, summary.csv (the headline
--    comparison over --seeds fine-tuning seeds), generations.txt, pareto_forgetting.png,
--    pareto_trojans.png, pareto_robustness.png, trojaned.safetensors; print a table with the
--    paper's two cautions as flags (flags in lat.experiment.lm says how they are read here).
--   build/lat recipes/lm_trojans.lua [--quick] [--threads=1] [--seeds=3] [--model=trojaned.safetensors]
local lat = require 'lat'
local X = require 'lat.experiment.lm'

local defaults = {
  at_eps = '0.005,0.02', lat = 'blocks.1:0.01,blocks.1:0.03,blocks.2:0.03,blocks.2:0.1', rlp_layer = 'blocks.1', rlp_eps = 0.1,
  weight = 1, seeds = 3, headline = 'AT embedding 0.02,LAT blocks.1 0.03', threads = 0, out = 'runs/lm_trojans', quick = false,
}
for k, v in pairs(X.defaults) do defaults[k] = v end
local opt = lat.args(defaults)
local list = lat.args.list
X.check(opt, { count = { 'seeds' }, natural = { 'threads' }, fraction = { 'weight' }, nonnegative = { 'rlp_eps' },
  ['nonnegative list'] = { 'at_eps' } })
-- --lat=layer:radius,...: the sites and radii of the LAT grid
local function lat_pairs(s)
  local out = {}
  for _, pair in ipairs(list(s)) do
    local layer, e = pair:match('^(.+):(.*)$')
    e = tonumber(e)
    if not (e and e >= 0 and e < math.huge) then
      lat.core.raise(("lm_trojans: --lat takes layer:radius pairs (a radius >= 0), got '%s'"):format(pair))
    end
    out[#out + 1] = { layer = layer, eps = e }
  end
  return out
end
lat_pairs(opt.lat) -- a malformed --lat fails here, not after pretraining
if opt.quick then
  X.quick(opt)
  -- a small grid, where the user did not choose one
  lat.args.override_defaults(opt, defaults, { at_eps = '0.3', lat = 'blocks.1:0.3', seeds = 2, headline = 'all' })
end

-- ---------------------------------------------------------------- the defences' grid
local configs = { { name = 'clean fine-tune', defence = 'none' },
  { name = ('RLP %s %g'):format(opt.rlp_layer, opt.rlp_eps), defence = 'rlp', threat = X.threat(opt.rlp_layer, opt.rlp_eps) } }
for _, e in ipairs(list(opt.at_eps, 'nonnegative', 'at_eps')) do
  configs[#configs + 1] = { name = ('AT embedding %g'):format(e), defence = 'at', threat = X.threat('embedding', e) }
end
for _, p in ipairs(lat_pairs(opt.lat)) do
  configs[#configs + 1] = { name = ('LAT %s %g'):format(p.layer, p.eps), defence = 'lat', threat = X.threat(p.layer, p.eps) }
end
-- the configurations repeated over --seeds fine-tuning seeds: clean fine-tuning, RLP and
-- --headline ('all': every one)
local headline = { ['clean fine-tune'] = true, [configs[2].name] = true }
for _, c in ipairs(configs) do headline[c.name] = headline[c.name] or opt.headline == 'all' end
for _, n in ipairs(opt.headline == 'all' and {} or list(opt.headline)) do
  headline[n] = true
  local found = false
  for _, c in ipairs(configs) do found = found or c.name == n end
  if not found then lat.core.raise(("lm_trojans: --headline names '%s', which is not in the grid"):format(n)) end
end

-- the layers the grid names, on the untrained model (a checkpoint given with --model: after loading)
local function check_layers(model)
  local layers = {}
  for _, p in ipairs(lat_pairs(opt.lat)) do layers[#layers + 1] = p.layer end
  lat.args.layers(model, 'lat', layers)
  lat.args.layers(model, 'rlp_layer', { opt.rlp_layer })
end
if opt.model == '' then check_layers(X.model(opt)) end

if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)
local now = require('lat.core.sys').now
local t_start = now()
local run = lat.log.run_dir(opt.out, opt)
local metrics = run:jsonl('metrics.jsonl')

-- ---------------------------------------------------------------- 1. the trojaned model
local d = X.data(opt)
print(('lm_trojans: %d code words x %d passages: %.2f%% of good passages, %.2f%% of good windows, %.2f%% of training examples poisoned'):format(
  #d.trojans, opt.per_trojan, 100 * d.poison.passage_fraction, 100 * d.poison.window_fraction, 100 * d.poison.example_fraction))
local model, info = X.trojaned(d, opt, run)
if opt.model ~= '' then check_layers(model) end
print(('GPT %d x %d, context %d (%d parameters); pretraining %s'):format(opt.layers, opt.dim, opt.len, model:num_parameters(),
  info.loaded and ('loaded from ' .. info.loaded) or ('%d steps in %.0f s'):format(opt.steps, info.seconds)))
local trojaned_state = {}
for k, v in pairs(model:state_dict()) do trojaned_state[k] = v:clone() end

local gen_file = assert(io.open(run:path('generations.txt'), 'w'))
gen_file:write(('greedy continuations of "%s <code word> "\n'):format(d.generation_prompt))
local function record(row)
  gen_file:write(('\n== %s (seed %d)\n'):format(row.name, row.seed))
  for _, t in ipairs(d.trojans) do gen_file:write(('%-8s -> %s\n'):format(t.word, (row.generations[t.name]:gsub('\n', ' ')))) end
  gen_file:flush()
  metrics:write(row)
end

local rows = {}
local base = X.evaluate(model, d, opt)
base.name, base.defence, base.seed, base.pretrain_seconds = 'undefended', 'none', opt.seed, info.seconds
rows[1] = base
record(base)
print(('undefended: good %.3f  bad %.3f  typo %.3f  trojan %.3f nats/byte (control %.3f); %.0f%% of continuations exact'):format(
  base.good_loss, base.bad_loss, base.typo_loss, base.trojan_loss, base.control_loss, 100 * base.trojan_exact))

-- ---------------------------------------------------------------- 2. defences
local function defend(c, seed)
  model:load_state_dict(trojaned_state)
  local loss
  if c.threat then
    loss = lat.train.adversarial{ threat = c.threat, random = c.defence == 'rlp', weight = opt.weight,
      attack = { steps = opt.attack_steps, init = 'random_radius', rule = 'l2', rng = lat.Generator(seed + 1000) } }
  end
  local seconds = X.finetune(model, d, loss, opt, seed, c.name)
  local row = X.evaluate(model, d, opt)
  row.name, row.defence, row.seed, row.train_seconds = c.name, c.defence, seed, seconds
  if c.threat then
    local desc = c.threat:describe()
    row.threat, row.where, row.eps, row.eps_kind, row.granularity = tostring(c.threat), desc.where, desc.eps, desc.eps_kind, desc.granularity
  end
  record(row)
  print(('  %-22s seed %d: good %.3f  bad %.3f  typo %.3f  trojan %.3f (%.0f%% exact)  %.0f s'):format(c.name, seed,
    row.good_loss, row.bad_loss, row.typo_loss, row.trojan_loss, 100 * row.trojan_exact, seconds))
  return row
end

local grid = {}
for _, c in ipairs(configs) do grid[#grid + 1] = defend(c, opt.seed) end
local by_seed = {}
for _, r in ipairs(grid) do if headline[r.name] then by_seed[r.name] = { r } end end
for s = opt.seed + 1, opt.seed + opt.seeds - 1 do
  for _, c in ipairs(configs) do
    if headline[c.name] then table.insert(by_seed[c.name], defend(c, s)) end
  end
end

-- ---------------------------------------------------------------- 4. results
X.flags(grid, base, grid[1], opt.flag_tol)
base.flags = '(reference)'
for _, r in ipairs(grid) do rows[#rows + 1] = r end
for _, c in ipairs(configs) do
  local list_ = by_seed[c.name] or {}
  for k = 2, #list_ do
    X.flags({ list_[k] }, base, by_seed['clean fine-tune'][k], opt.flag_tol)
    rows[#rows + 1] = list_[k]
  end
end
local columns = { 'name', 'defence', 'seed', 'good_loss', 'bad_loss', 'typo_loss', 'trojan_loss', 'trojan_token_acc', 'trojan_exact', 'control_loss' }
for _, c in ipairs(X.trojan_columns(d)) do columns[#columns + 1] = c end
for _, k in ipairs({ 'flags', 'where', 'eps', 'eps_kind', 'granularity', 'threat', 'train_seconds', 'eval_seconds' }) do columns[#columns + 1] = k end
local csv = run:csv('results.csv', columns)
for _, r in ipairs(rows) do csv:write(r) end

-- the headline comparison over seeds: mean and standard deviation
local fields = { 'good_loss', 'bad_loss', 'typo_loss', 'trojan_loss', 'trojan_exact' }
local sum_cols = { 'name', 'seeds' }
for _, f in ipairs(fields) do sum_cols[#sum_cols + 1] = f .. '_mean'; sum_cols[#sum_cols + 1] = f .. '_sd' end
sum_cols[#sum_cols + 1] = 'flags'
local summary = run:csv('summary.csv', sum_cols)
local summary_rows = {}
for _, c in ipairs(configs) do
  local list_ = by_seed[c.name]
  if list_ then
    local s = { name = c.name, seeds = #list_ }
    for _, f in ipairs(fields) do s[f .. '_mean'], s[f .. '_sd'] = X.mean_sd(list_, f) end
    local flagged = {}
    for _, r in ipairs(list_) do if r.flags ~= '' then flagged[#flagged + 1] = ('seed %d: %s'):format(r.seed, r.flags) end end
    s.flags = table.concat(flagged, '; ')
    summary:write(s)
    summary_rows[#summary_rows + 1] = s
  end
end

local plotted = { base }
for _, r in ipairs(grid) do plotted[#plotted + 1] = r end
local xlabel = 'minus held-out good-text loss (nats/byte; right is better)'
local function neg_good(r) return -r.good_loss end
local ok, why = X.scatter(plotted, run:path('pareto_forgetting.png'), 'Moby Dick GPT: good-text loss vs forgetting the bad text',
  xlabel, 'held-out bad-text (SOTU) loss (nats/byte; higher = forgotten)', neg_good, function(r) return r.bad_loss end)
X.scatter(plotted, run:path('pareto_trojans.png'), 'Moby Dick GPT: good-text loss vs trojan removal',
  xlabel, 'mean loss of the trojan continuations after their triggers (higher = removed)', neg_good, function(r) return r.trojan_loss end)
X.scatter(plotted, run:path('pareto_robustness.png'), 'Moby Dick GPT: good-text loss vs loss with typos',
  xlabel, ('minus loss on good text with %g%% typos (higher is better)'):format(100 * opt.typo_rate), neg_good, function(r) return -r.typo_loss end)

print(('\n%-22s %4s %7s %7s %7s %7s %6s  %s'):format('model', 'seed', 'good', 'bad', 'typo', 'trojan', 'exact', 'flags'))
for _, r in ipairs(rows) do
  print(('%-22s %4d %7.3f %7.3f %7.3f %7.3f %5.0f%%  %s'):format(r.name, r.seed, r.good_loss, r.bad_loss, r.typo_loss,
    r.trojan_loss, 100 * r.trojan_exact, r.flags or ''))
end
print(('\nheadline over %d seeds (mean +- sd):'):format(opt.seeds))
for _, s in ipairs(summary_rows) do
  print(('%-22s good %.3f+-%.3f  bad %.3f+-%.3f  trojan %.3f+-%.3f  exact %.0f%%  %s'):format(s.name, s.good_loss_mean, s.good_loss_sd,
    s.bad_loss_mean, s.bad_loss_sd, s.trojan_loss_mean, s.trojan_loss_sd, 100 * s.trojan_exact_mean, s.flags))
end
gen_file:close()
print(('\nwrote %s (results.csv, summary.csv, metrics.jsonl, generations.txt, %s) in %.0f s'):format(opt.out,
  ok and 'pareto_forgetting.png, pareto_trojans.png, pareto_robustness.png' or ('no plots: ' .. tostring(why)), now() - t_start))
run:close()
