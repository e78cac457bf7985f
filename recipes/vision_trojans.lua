-- vision_trojans.lua: the paper's image-classification experiment on Fashion-MNIST.
-- 1. Implant trojans of three kinds (a patch, a blended pattern, a warp) and a class-specific one
--    by training the ResNet on poisoned data; report each one's attack success rate (ASR).
-- 2. Fine-tune copies on clean data with each defence: none, RLP, AT over a grid of radii, LAT
--    over a grid of layers and radii. No trigger is used in the defence.
-- 3. Evaluate each: clean accuracy, held-out attacks never used in training (PGD Linf and L2 at
--    the input, an adversarial patch, universal perturbations, corruptions), every trojan's ASR.
-- 4. Write the run folder: config.json, metrics.jsonl (a line per model), results.csv,
--    trigger_check.csv (corruptions that set off a trojan), pareto_robustness.png,
--    pareto_attacks.png and pareto_trojans.png (lat.plot, needs gnuplot), triggers.png, the
--    trojaned model, and print a table with the paper's two cautions as flags.
--   build/lat recipes/vision_trojans.lua [--quick] [--epochs=5] [--finetune=10000] ...
local lat = require 'lat'
local HO = lat.eval.heldout

local defaults = {
  epochs = 5, batch = 128, lr = 0.1, widths = '16,32,64', blocks = '2,2,2', rate = 0.02, warp_rate = 0.05,
  finetune = 10000, ft_lr = 0.01, ft_epochs = 1, steps = 5, weight = 1,
  at_eps = '0.5,1,2', lat_layers = 'stem,layer1,layer2,layer3', lat_eps = '0.1,0.3', rlp_layer = 'layer2', rlp_eps = 0.3,
  eval_examples = 500, asr_examples = 3000, fit_examples = 1000, fit_steps = 200,
  seed = 1, threads = 0, out = 'runs/vision_trojans', quick = false,
}
local opt = lat.args(defaults)
local list = lat.args.list
lat.args.check(opt, { count = { 'epochs', 'batch', 'finetune', 'ft_epochs', 'eval_examples', 'asr_examples', 'fit_examples', 'fit_steps' },
  natural = { 'steps', 'seed', 'threads' }, positive = { 'lr', 'ft_lr' }, fraction = { 'rate', 'warp_rate', 'weight' },
  nonnegative = { 'rlp_eps' }, ['count list'] = { 'widths', 'blocks' }, ['nonnegative list'] = { 'at_eps', 'lat_eps' } })
if opt.quick then
  opt.epochs, opt.finetune, opt.eval_examples, opt.asr_examples, opt.fit_examples, opt.fit_steps = 1, 256, 64, 256, 64, 5
  lat.args.override_defaults(opt, defaults, { at_eps = '1', lat_layers = 'layer2', lat_eps = '0.3', steps = 2 }) -- the grid, unless given
end
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)
local now = require('lat.core.sys').now
local t_start = now()
local run = lat.log.run_dir(opt.out, opt)
local metrics = run:jsonl('metrics.jsonl')

local train_full = lat.data.fashion_mnist('train')
local test_full = lat.data.fashion_mnist('test')
local train = opt.quick and train_full:subset(lat.arange(1024, 'int32')) or train_full
local function slice(ds, from, n) return ds:subset(lat.arange(from, from + math.min(n, ds:len() - from), 'int32')) end
local eval_set = slice(test_full, 0, opt.eval_examples)             -- held-out attacks
local asr_set = slice(test_full, 0, opt.asr_examples)                -- trojan success rates
local clean_set = opt.quick and slice(test_full, 0, 512) or test_full -- clean accuracy
local fit_set = slice(train_full, 50000, opt.fit_examples)          -- fitting patches and UAPs

-- ---------------------------------------------------------------- 1. implant the trojans
local trojans = {
  lat.trojan.patch{ name = 'patch', target = 0, rate = opt.rate, size = 4, pattern = 'checker', location = 'bottom_right', seed = opt.seed },
  lat.trojan.blend{ name = 'blend', target = 1, rate = opt.rate, alpha = 0.15, seed = opt.seed },
  lat.trojan.warp{ name = 'warp', target = 2, rate = opt.warp_rate, strength = 1, seed = opt.seed },
  lat.trojan.patch{ name = 'patch_3to4', target = 4, source = 3, rate = opt.rate * 10, size = 3, pattern = 'white',
    location = 'top_left', seed = opt.seed },
}
local realised = lat.trojan.poisoned_fraction(trojans, train)
print(('vision_trojans: %d trojans, %.2f%% of %d training images poisoned'):format(#trojans, 100 * realised.fraction, realised.n))

local ints = function(s) return list(s, 'count') end
local model = lat.models.ResNet{ widths = ints(opt.widths), blocks = ints(opt.blocks), rng = lat.Generator(opt.seed) }
lat.args.layers(model, 'lat_layers', opt.lat_layers)
lat.args.layers(model, 'rlp_layer', { opt.rlp_layer })
local loader = lat.data.DataLoader(train, { batch_size = opt.batch, shuffle = true, seed = opt.seed, drop_last = true,
  transform = { lat.data.augment.crop_flip{ pad = 2, seed = opt.seed }, lat.trojan.poison_all(trojans) } })
local sgd = lat.optim.SGD(model:named_parameters(), { lr = opt.lr, momentum = 0.9, nesterov = true, weight_decay = 5e-4 })
lat.train.fit{ model = model, loader = loader, optimizer = sgd, epochs = opt.epochs,
  schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = math.min(200, math.floor(opt.epochs * loader:len() / 4)), total = opt.epochs * loader:len(), min = 0 },
  loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end }
lat.models.save(model, run:path('trojaned.safetensors'), { trojans = #trojans })
local trojaned_state = {}
for k, v in pairs(model:state_dict()) do trojaned_state[k] = v:clone() end

-- a picture of each trigger on the same test images
local sample = test_full:batch(lat.arange(6, 'int32')).x
local pics, labels = { sample }, {}
for k = 1, 6 do labels[k] = 'clean' end
for _, t in ipairs(trojans) do
  pics[#pics + 1] = t:apply(sample)
  for _ = 1, 6 do labels[#labels + 1] = t.name end
end
lat.plot.images{ path = run:path('triggers.png'), images = lat.cat(pics, 1), cols = 6, labels = labels }

-- ---------------------------------------------------------------- evaluation of one model
local suite = HO.fashion_suite{ steps = opt.quick and 2 or 10, fit_steps = opt.fit_steps }

-- Do the corruptions set off a trojan? (A noise corruption can look like the blended noise
-- trigger.) A flagged corruption still counts as a held-out attack, but the table says so.
local checks = HO.trigger_check(model, suite, trojans, eval_set)
local check_csv = run:csv('trigger_check.csv', { 'name', 'class', 'clean_rate', 'rate', 'increase', 'flagged' })
local flagged = {}
for _, c in ipairs(checks) do
  check_csv:write(c)
  if c.flagged then flagged[#flagged + 1] = ('%s -> class %d (%.0f%% -> %.0f%%)'):format(c.name, c.class, 100 * c.clean_rate, 100 * c.rate) end
end
print(('corruptions that act like a trigger on the trojaned model: %s'):format(#flagged > 0 and table.concat(flagged, '; ') or 'none'))
local function evaluate(name, defence, extra)
  local t0 = now()
  local clean = lat.eval.accuracy(model, clean_set).accuracy
  local held = HO.run(model, eval_set, suite, { fit_data = fit_set, seed = opt.seed })
  local asr = lat.trojan.report(model, trojans, asr_set)
  local row = { name = name, defence = defence, clean_accuracy = clean, robustness = held.robustness,
    heldout_mean = held.mean, eval_seconds = now() - t0 }
  local sum = 0
  for _, t in ipairs(trojans) do
    row['asr_' .. t.name] = asr[t.name]
    sum = sum + asr[t.name]
  end
  row.trojan_asr = sum / #trojans
  -- the same without the corruptions, which set off trojans (trigger_check.csv)
  local attack_sum, attack_n = 0, 0
  for fam, acc in pairs(held.families) do
    row['family_' .. fam] = acc
    if fam ~= 'corruption' then attack_sum, attack_n = attack_sum + acc, attack_n + 1 end
  end
  row.robustness_attacks = attack_sum / math.max(attack_n, 1)
  for k, v in pairs(extra or {}) do row[k] = v end
  return row, held
end

local rows = {}
local base_row, base_held = evaluate('undefended', 'none (trojaned model)')
rows[1] = base_row
for _, t in ipairs(trojans) do
  print(('  trojan %-11s target %d: ASR %.1f%%'):format(t.name, t.target, 100 * base_row['asr_' .. t.name]))
end
metrics:write(base_row)

-- ---------------------------------------------------------------- 2. defences
local configs = { { name = 'clean fine-tune', defence = 'none' } }
configs[#configs + 1] = { name = ('RLP %s %.2g'):format(opt.rlp_layer, opt.rlp_eps), defence = 'rlp',
  threat = lat.threat{ where = opt.rlp_layer, norm = 'l2', eps = opt.rlp_eps, relative = true } }
for _, e in ipairs(list(opt.at_eps, 'number')) do
  configs[#configs + 1] = { name = ('AT input %.2g'):format(e), defence = 'at',
    threat = lat.threat{ where = 'input', norm = 'l2', eps = e, clamp = { 0, 1 } } }
end
for _, layer in ipairs(list(opt.lat_layers)) do
  for _, e in ipairs(list(opt.lat_eps, 'number')) do
    configs[#configs + 1] = { name = ('LAT %s %.2g'):format(layer, e), defence = 'lat',
      threat = lat.threat{ where = layer, norm = 'l2', eps = e, relative = true } }
  end
end

local ft_data = slice(train_full, 0, opt.finetune)
for i, c in ipairs(configs) do
  model:load_state_dict(trojaned_state)
  local loss
  if c.defence == 'none' then loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end
  else
    loss = lat.train.adversarial{ threat = c.threat, random = c.defence == 'rlp', weight = opt.weight,
      attack = { steps = opt.steps, init = 'random_radius', rule = 'l2' } }
  end
  local ft_loader = lat.data.DataLoader(ft_data, { batch_size = opt.batch, shuffle = true, seed = opt.seed + i })
  local t0 = now()
  lat.train.fit{ model = model, loader = ft_loader, epochs = opt.ft_epochs, loss = loss,
    optimizer = lat.optim.SGD(model:named_parameters(), { lr = opt.ft_lr, momentum = 0.9 }) }
  local row = evaluate(c.name, c.defence, { train_seconds = now() - t0, threat = c.threat and tostring(c.threat) or '',
    eps_kind = c.threat and c.threat:describe().eps_kind or '' })
  rows[#rows + 1] = row
  metrics:write(row)
  print(('  %-18s clean %.1f%%  held-out %.1f%%  mean ASR %.1f%%'):format(c.name, 100 * row.clean_accuracy,
    100 * row.robustness, 100 * row.trojan_asr))
end

-- ---------------------------------------------------------------- 4. results
-- the cautions apply to the fine-tuned models; the undefended model is their reference
local tuned = {}
for i = 2, #rows do tuned[#tuned + 1] = rows[i] end
lat.eval.flags(tuned, { undefended = rows[1], clean_finetune = rows[2] })
rows[1].flags = '(reference)'
local columns = { 'name', 'defence', 'clean_accuracy', 'robustness', 'robustness_attacks', 'heldout_mean', 'trojan_asr' }
for _, t in ipairs(trojans) do columns[#columns + 1] = 'asr_' .. t.name end
for _, f in ipairs(base_held.family_order) do columns[#columns + 1] = 'family_' .. f end
for _, k in ipairs({ 'flags', 'threat', 'eps_kind', 'train_seconds', 'eval_seconds' }) do columns[#columns + 1] = k end
local csv = run:csv('results.csv', columns)
for _, r in ipairs(rows) do csv:write(r) end

local function points(y_of) return lat.eval.points(rows, 'clean_accuracy', y_of) end
local ok1, why = lat.plot.scatter{ path = run:path('pareto_robustness.png'), title = 'Fashion-MNIST: clean accuracy vs held-out robustness',
  xlabel = 'clean accuracy', ylabel = 'held-out robustness (mean accuracy over attack families)',
  points = points(function(r) return r.robustness end), pareto = true }
lat.plot.scatter{ path = run:path('pareto_attacks.png'), title = 'Fashion-MNIST: clean accuracy vs held-out attacks (no corruptions)',
  xlabel = 'clean accuracy', ylabel = 'mean accuracy over PGD Linf, PGD L2, patch, UAP',
  points = points(function(r) return r.robustness_attacks end), pareto = true }
lat.plot.scatter{ path = run:path('pareto_trojans.png'), title = 'Fashion-MNIST: clean accuracy vs trojan removal',
  xlabel = 'clean accuracy', ylabel = '1 - mean trojan ASR', points = points(function(r) return 1 - r.trojan_asr end), pareto = true }

print(('\n%-18s %7s %9s %9s %9s  %s'):format('model', 'clean', 'held-out', 'attacks', 'mean ASR', 'flags'))
for _, r in ipairs(rows) do
  print(('%-18s %6.1f%% %8.1f%% %8.1f%% %8.1f%%  %s'):format(r.name, 100 * r.clean_accuracy, 100 * r.robustness,
    100 * r.robustness_attacks, 100 * r.trojan_asr, r.flags or ''))
end
print(('\nwrote %s (results.csv, metrics.jsonl, %s) in %.0f s'):format(opt.out,
  ok1 and 'pareto_robustness.png, pareto_attacks.png, pareto_trojans.png, triggers.png, trigger_check.csv' or ('no plots: ' .. tostring(why)), now() - t_start))
run:close()
