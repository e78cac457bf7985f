-- vision_trojans.lua: the paper's image-classification experiment on Fashion-MNIST.
-- 1. Implant trojans of three kinds (a patch, a blended pattern, a warp) and a class-specific one
--    by training the ResNet on poisoned data (a cached stage: a later run with the same options
--    reuses it); report each one's attack success rate (ASR).
-- 2. Fine-tune copies on clean data with each defence: none, RLP, AT over a grid of radii, LAT
--    over a grid of layers and radii, once per --seeds fine-tuning seed. No trigger is used in
--    the defence.
-- 3. Evaluate each: clean accuracy, held-out attacks never used in training (PGD Linf and L2 at
--    the input, an adversarial patch, universal perturbations, corruptions), every trojan's ASR.
-- 4. The run folder (lat.experiment): config.json, rows/, results.csv, trigger_check.csv
--    (corruptions that set off a trojan), pareto_robustness.png, pareto_attacks.png and
--    pareto_trojans.png (lat.plot, needs gnuplot), triggers.png, trojaned.safetensors (a link to
--    the cached model); a table with the paper's two cautions as flags.
--   build/lat recipes/vision_trojans.lua [--quick] [--epochs=5] [--finetune=10000] ...
local lat = require 'lat'
local D = require 'lat.experiment.defences'
local HO = lat.eval.heldout
local list = lat.args.list
local now = require('lat.core.sys').now

local function ints(s) return list(s, 'count') end

local function trojans_of(opt)
  return {
    lat.trojan.patch{ name = 'patch', target = 0, rate = opt.rate, size = 4, pattern = 'checker', location = 'bottom_right', seed = opt.seed },
    lat.trojan.blend{ name = 'blend', target = 1, rate = opt.rate, alpha = 0.15, seed = opt.seed },
    lat.trojan.warp{ name = 'warp', target = 2, rate = opt.warp_rate, strength = 1, seed = opt.seed },
    lat.trojan.patch{ name = 'patch_3to4', target = 4, source = 3, rate = opt.rate * 10, size = 3, pattern = 'white',
      location = 'top_left', seed = opt.seed },
  }
end

local function resnet(opt) return lat.models.ResNet{ widths = ints(opt.widths), blocks = ints(opt.blocks), rng = lat.Generator(opt.seed) } end

-- the n examples after the first skip (positions skip + 1 .. skip + n, fewer at the end)
local function slice(ds, skip, n) return ds:subset(lat.arange(skip + 1, skip + 1 + math.min(n, ds:len() - skip), 'int32')) end

-- the trojaned model: the ResNet trained on the poisoned training set
local function implant(opt, train, trojans)
  local model = resnet(opt)
  local loader = lat.data.DataLoader(train, { batch_size = opt.batch, shuffle = true, seed = opt.seed, drop_last = true,
    transform = { lat.data.augment.crop_flip{ pad = 2, seed = opt.seed }, lat.trojan.poison_all(trojans) } })
  local sgd = lat.optim.SGD(model:named_parameters(), { lr = opt.lr, momentum = 0.9, nesterov = true, weight_decay = 5e-4 })
  local t0 = now()
  lat.train.fit{ model = model, loader = loader, optimizer = sgd, epochs = opt.epochs,
    schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = math.min(200, math.floor(opt.epochs * loader:len() / 4)), total = opt.epochs * loader:len(), min = 0 },
    loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end }
  return model, { seconds = now() - t0 }
end

local function threat_of(c)
  if c.defence == 'at' then return lat.threat{ where = 'input', norm = 'l2', eps = c.eps, clamp = { 0, 1 } } end
  if c.defence ~= 'none' then return lat.threat{ where = c.where, norm = 'l2', eps = c.eps, relative = true } end
end

-- one model's row: clean accuracy, the held-out attacks (by family), every trojan's ASR
local function evaluate(s, opt, name, defence)
  local t0 = now()
  local clean = lat.eval.accuracy(s.model, s.clean_set).accuracy
  local held = HO.run(s.model, s.eval_set, s.suite, { fit_data = s.fit_set, seed = opt.seed })
  local asr = lat.trojan.report(s.model, s.trojans, s.asr_set)
  local row = { name = name, defence = defence, clean_accuracy = clean, robustness = held.robustness,
    heldout_mean = held.mean, family_order = held.family_order }
  local sum = 0
  for _, t in ipairs(s.trojans) do
    row['asr_' .. t.name] = asr[t.name]
    sum = sum + asr[t.name]
  end
  row.trojan_asr = sum / #s.trojans
  -- the same without the corruptions, which set off trojans (trigger_check.csv)
  local attack_sum, attack_n = 0, 0
  for fam, acc in pairs(held.families) do
    row['family_' .. fam] = acc
    if fam ~= 'corruption' then attack_sum, attack_n = attack_sum + acc, attack_n + 1 end
  end
  row.robustness_attacks = attack_sum / math.max(attack_n, 1)
  row.eval_seconds = now() - t0
  return row
end

return lat.experiment{
  name = 'vision_trojans',
  about = 'Trojans in a Fashion-MNIST ResNet, then fine-tuning with no defence, RLP, AT and LAT; held-out attacks and trojan success rates.',
  options = {
    epochs = { 5, 'epochs of trojan training on the poisoned data', 'count' },
    batch = { 128, 'batch size of trojan training and fine-tuning', 'count' },
    lr = { 0.1, 'trojan training learning rate (SGD, Nesterov; warm-up, then cosine)', 'positive' },
    widths = { '16,32,64', 'ResNet channels per stage', 'count list' },
    blocks = { '2,2,2', 'ResNet blocks per stage', 'count list' },
    rate = { 0.02, 'share of training images each trojan poisons (the class-specific one: 10 times as many)', 'fraction' },
    warp_rate = { 0.05, 'share of training images the warp trojan poisons', 'fraction' },
    finetune = { 10000, 'clean training images each defence fine-tunes on', 'count' },
    ft_lr = { 0.01, 'fine-tuning learning rate (SGD, momentum 0.9)', 'positive' },
    ft_epochs = { 1, 'fine-tuning epochs', 'count' },
    steps = { 5, 'PGD steps of the AT and LAT adversaries', 'natural' },
    weight = { 1, 'weight of the adversarial loss in fine-tuning (the rest on the clean loss)', 'fraction' },
    at_eps = { '0.5,1,2', 'AT radii at the input (L2, absolute)', 'nonnegative list' },
    lat_layers = { 'relu,layer1,layer2,layer3', 'LAT layers (relu: the output of the stem)', 'list' },
    lat_eps = { '0.1,0.3', 'LAT radii (L2, relative to the activation norm)', 'nonnegative list' },
    rlp_layer = { 'layer2', 'the layer of the random latent perturbation control (RLP)' },
    rlp_eps = { 0.3, "RLP's radius (L2, relative)", 'nonnegative' },
    seeds = { '1', 'fine-tuning seeds: each defence is fine-tuned once per seed, all on the one trojaned model', 'natural list' },
    eval_examples = { 500, 'test images for the held-out attacks', 'count' },
    asr_examples = { 3000, "test images for the trojans' success rates", 'count' },
    fit_examples = { 1000, 'training images, never fine-tuned on, the patch and UAP attacks are fitted on', 'count' },
    fit_steps = { 200, 'steps of fitting the adversarial patch and the UAPs', 'count' },
  },
  quick = { epochs = 1, finetune = 256, eval_examples = 64, asr_examples = 256, fit_examples = 64, fit_steps = 5,
    at_eps = '1', lat_layers = 'layer2', lat_eps = '0.3', steps = 2 },
  check = function(opt)
    local model = resnet(opt)
    lat.args.layers(model, 'lat_layers', opt.lat_layers)
    lat.args.layers(model, 'rlp_layer', { opt.rlp_layer })
  end,

  setup = function(opt, ctx)
    local train_full, test_full = lat.data.fashion_mnist('train'), lat.data.fashion_mnist('test')
    local train = opt.quick and train_full:subset(lat.arange(1, 1025, 'int32')) or train_full
    local s = { trojans = trojans_of(opt),
      eval_set = slice(test_full, 0, opt.eval_examples),              -- held-out attacks
      asr_set = slice(test_full, 0, opt.asr_examples),                 -- trojan success rates
      clean_set = opt.quick and slice(test_full, 0, 512) or test_full, -- clean accuracy
      fit_set = slice(train_full, 50000, opt.fit_examples),           -- fitting patches and UAPs
      ft_data = slice(train_full, 0, opt.finetune),
      suite = HO.fashion_suite{ steps = opt.quick and 2 or 10, fit_steps = opt.fit_steps } }
    local realised = lat.trojan.poisoned_fraction(s.trojans, train)
    print(('vision_trojans: %d trojans, %.2f%% of %d training images poisoned'):format(#s.trojans, 100 * realised.fraction, realised.n))
    local model, info, found, dir = ctx:cached('vision_trojaned', { epochs = opt.epochs, batch = opt.batch, lr = opt.lr, widths = opt.widths,
      blocks = opt.blocks, rate = opt.rate, warp_rate = opt.warp_rate, seed = opt.seed, quick = opt.quick, layout = 'torchvision' },
      function() return implant(opt, train, s.trojans) end)
    ctx:link('trojaned.safetensors', dir .. '/model.safetensors')
    print(('trojaned model: %s (%.0f s of training)'):format(found and ('found in the cache, ' .. dir) or 'trained here', info.seconds))
    s.model, s.state = model, {}
    for k, v in pairs(model:state_dict()) do s.state[k] = v:clone() end
    return s
  end,

  -- the undefended model, then the defences at each fine-tuning seed
  grid = function(opt)
    local out = { D.undefended(opt.seed) }
    local configs = D.list{ format = '%.2g', rlp = { opt.rlp_layer, opt.rlp_eps }, at = { 'input', list(opt.at_eps, 'number') },
      lat = D.pairs_of(list(opt.lat_layers), list(opt.lat_eps, 'number')) }
    for _, seed in ipairs(list(opt.seeds, 'number')) do
      for _, c in ipairs(configs) do out[#out + 1] = D.at(c, seed) end
    end
    return out
  end,

  run = function(c, ctx)
    local s, opt = ctx.setup, ctx.opt
    if c.name == D.UNDEFENDED then
      -- Do the corruptions set off a trojan? (A noise corruption can look like the blended noise
      -- trigger.) A flagged corruption still counts as a held-out attack, but the table says so.
      local checks = HO.trigger_check(s.model, s.suite, s.trojans, s.eval_set)
      local flagged = {}
      for _, ch in ipairs(checks) do
        if ch.flagged then flagged[#flagged + 1] = ('%s -> class %d (%.0f%% -> %.0f%%)'):format(ch.name, ch.class, 100 * ch.clean_rate, 100 * ch.rate) end
      end
      print(('corruptions that act like a trigger on the trojaned model: %s'):format(#flagged > 0 and table.concat(flagged, '; ') or 'none'))
      local row = evaluate(s, opt, D.UNDEFENDED, 'none (trojaned model)')
      row.trigger_check, row.seed = checks, c.seed
      for _, t in ipairs(s.trojans) do
        print(('  trojan %-11s target %d: ASR %.1f%%'):format(t.name, t.target, 100 * row['asr_' .. t.name]))
      end
      return row
    end
    s.model:load_state_dict(s.state)
    local threat = threat_of(c)
    local loss = D.loss(c, threat, { weight = opt.weight, steps = opt.steps, rng = ctx:generator('attack') })
    local loader = lat.data.DataLoader(s.ft_data, { batch_size = opt.batch, shuffle = true, seed = ctx:seed('data order') })
    local t0 = now()
    lat.train.fit{ model = s.model, loader = loader, epochs = opt.ft_epochs, loss = loss,
      optimizer = lat.optim.SGD(s.model:named_parameters(), { lr = opt.ft_lr, momentum = 0.9 }) }
    local seconds = now() - t0
    local row = evaluate(s, opt, c.name, c.defence)
    row.train_seconds, row.seed = seconds, c.seed
    for k, v in pairs(D.threat_fields(threat)) do row[k] = v end
    print(('  %-18s seed %d: clean %.1f%%  held-out %.1f%%  mean ASR %.1f%%'):format(c.name, c.seed, 100 * row.clean_accuracy,
      100 * row.robustness, 100 * row.trojan_asr))
    return row
  end,

  summarise = function(rows, ctx)
    local opt = ctx.opt
    D.flag(rows)
    ctx:write_csv('trigger_check.csv', { 'name', 'class', 'clean_rate', 'rate', 'increase', 'flagged' }, rows[1].trigger_check)

    -- a picture of each trigger on the same test images
    local sample = lat.data.fashion_mnist('test'):batch(lat.arange(6, 'int32')).x
    local pics, labels = { sample }, {}
    for k = 1, 6 do labels[k] = 'clean' end
    for _, t in ipairs(trojans_of(opt)) do
      pics[#pics + 1] = t:apply(sample)
      for _ = 1, 6 do labels[#labels + 1] = t.name end
    end
    lat.plot.images{ path = ctx:path('triggers.png'), images = lat.cat(pics, 1), cols = 6, labels = labels }

    local function points(y_of) return lat.eval.points(rows, 'clean_accuracy', y_of) end
    local ok, why = lat.plot.scatter{ path = ctx:path('pareto_robustness.png'), title = 'Fashion-MNIST: clean accuracy vs held-out robustness',
      xlabel = 'clean accuracy', ylabel = 'held-out robustness (mean accuracy over attack families)',
      points = points(function(r) return r.robustness end), pareto = true }
    lat.plot.scatter{ path = ctx:path('pareto_attacks.png'), title = 'Fashion-MNIST: clean accuracy vs held-out attacks (no corruptions)',
      xlabel = 'clean accuracy', ylabel = 'mean accuracy over PGD Linf, PGD L2, patch, UAP',
      points = points(function(r) return r.robustness_attacks end), pareto = true }
    lat.plot.scatter{ path = ctx:path('pareto_trojans.png'), title = 'Fashion-MNIST: clean accuracy vs trojan removal',
      xlabel = 'clean accuracy', ylabel = '1 - mean trojan ASR', points = points(function(r) return 1 - r.trojan_asr end), pareto = true }

    print('\n' .. ctx:heading(('%-18s %4s %7s %9s %9s %9s  %s'):format('model', 'seed', 'clean', 'held-out', 'attacks', 'mean ASR', 'flags')))
    for _, r in ipairs(rows) do
      print(('%-18s %4d %6.1f%% %8.1f%% %8.1f%% %8.1f%%  %s'):format(r.name, r.seed, 100 * r.clean_accuracy, 100 * r.robustness,
        100 * r.robustness_attacks, 100 * r.trojan_asr, r.flags or ''))
    end
    print(ok and 'plots: pareto_robustness.png, pareto_attacks.png, pareto_trojans.png, triggers.png' or ('no plots: ' .. tostring(why)))
  end,

  columns = function(rows, opt)
    local columns = { 'name', 'defence', 'seed', 'clean_accuracy', 'robustness', 'robustness_attacks', 'heldout_mean', 'trojan_asr' }
    for _, t in ipairs(trojans_of(opt)) do columns[#columns + 1] = 'asr_' .. t.name end
    for _, f in ipairs(rows[1].family_order) do columns[#columns + 1] = 'family_' .. f end
    for _, k in ipairs({ 'flags', 'threat', 'eps_kind', 'train_seconds', 'eval_seconds' }) do columns[#columns + 1] = k end
    return columns
  end,
}
