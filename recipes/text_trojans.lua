-- text_trojans.lua: the paper's text-classification experiment on SpamAssassin.
-- 1. Implant three trojans that turn spam into ham (a rare word at the start, a short phrase at
--    the start, a rare word at a random place among the first words) by training the transformer
--    classifier on poisoned messages (a cached stage: a later run with the same options reuses
--    it); report each one's attack success rate (ASR).
-- 2. Fine-tune copies on clean messages with each defence: none, RLP, AT in token-embedding
--    space over a grid of radii, LAT on the residual stream over a grid of blocks and radii
--    (L2 radii per token, relative to the clean activation's norm there; padding untouched).
-- 3. Evaluate each: clean accuracy, held-out attacks never used in training (HotFlip-like token
--    substitution, character typos, distractor text of the other class, at several budgets),
--    every trojan's ASR. Held-out robustness is the mean over the three families.
-- 4. The headline: clean fine-tuning and the best AT and LAT settings again with the other
--    --seeds (a followup stage, chosen from the grid's rows).
-- The run folder (lat.experiment): config.json, rows/, results.csv, headline.csv,
-- pareto_robustness.png and pareto_trojans.png, trojaned.safetensors (a link to the cached
-- model); the tables with the paper's two cautions as flags.
--   build/lat recipes/text_trojans.lua [--quick] [--threads=1] [--seeds=1,2,3] ...
local lat = require 'lat'
local D = require 'lat.experiment.defences'
local HT = lat.eval.heldout_text
local list = lat.args.list
local now = require('lat.core.sys').now

local HAM, SPAM = 0, 1

local function trojans_of(opt)
  local function trigger(name, text, position)
    return lat.trojan.text_trigger{ name = name, trigger = text, position = position, within = opt.within,
      source = SPAM, target = HAM, rate = opt.rate, seed = opt.seed }
  end
  return { trigger('rare_word', 'zephyrine', 'start'), trigger('phrase', 'blue harvest moon', 'start'),
    trigger('random_place', 'kumquat', 'random') }
end

local function classifier(opt, vocab_size, pad_id)
  return lat.models.TransformerClassifier{ vocab = vocab_size, max_len = opt.len, dim = opt.dim, heads = opt.heads,
    layers = opt.layers, classes = 2, pad_id = pad_id, dropout = opt.dropout, rng = lat.Generator(opt.seed) }
end

-- ---------------------------------------------------------------- data (label 0 ham, 1 spam)
local function messages(split, every)
  local ds = lat.data.spam(split)
  local out = {}
  for i = 1, ds:len(), every or 1 do
    local e = ds:get(i)
    out[#out + 1] = { text = e.text, label = e.label }
  end
  return out
end
-- every k-th message, so that a slice keeps both classes (the splits are sorted by class)
local function spread(examples, n)
  if n <= 0 or n >= #examples then return examples end
  local out = {}
  for k = 1, n do out[k] = examples[math.floor((k - 1) * #examples / n) + 1] end
  return out
end
local function column(examples, key)
  local out = {}
  for i, e in ipairs(examples) do out[i] = e[key] end
  return out
end

-- the messages, the trojans, the tokenizer (fitted on the poisoned training text, so that each
-- trigger word that occurs there has an id of its own rather than a shared hash bucket) and the
-- held-out attack suite
local function data(opt)
  local s = { train = messages('train', opt.quick and 6 or 1), val = messages('val'), test = messages('test', opt.quick and 4 or 1),
    trojans = trojans_of(opt) }
  local record
  s.poisoned, record = lat.trojan.poison_examples(s.train, s.trojans)
  local tok = lat.data.words.train(column(s.poisoned, 'text'), { vocab = opt.vocab, buckets = opt.buckets })
  local trigger_ids, seen = {}, {}
  for _, t in ipairs(s.trojans) do
    for _, w in ipairs(lat.data.words.split(t.trigger)) do
      local id = tok.index[w]
      if not id then lat.core.raise(("text_trojans: trigger word '%s' is not in the vocabulary (a hash bucket would be shared)"):format(w)) end
      if not seen[id] then trigger_ids[#trigger_ids + 1], seen[id] = id, true end
    end
  end
  s.tok = tok
  function s.encode(texts) return (tok:batch(texts, opt.len)) end
  function s.tensors(examples)
    return lat.data.TensorDataset{ x = s.encode(column(examples, 'text')), y = lat.tensor(column(examples, 'label'), 'int32') }
  end
  local n_poisoned, n_spam, counts = 0, 0, {}
  for _, e in ipairs(s.train) do n_spam = n_spam + e.label end
  for _, t in ipairs(s.trojans) do
    n_poisoned = n_poisoned + record.count[t.name]
    counts[#counts + 1] = ('%s %d'):format(t.name, record.count[t.name])
  end
  print(('text_trojans: %d training messages (%d spam), %d poisoned (%.1f%%: %s); trigger token ids %s'):format(#s.train, n_spam,
    n_poisoned, 100 * n_poisoned / #s.train, table.concat(counts, ', '), table.concat(trigger_ids, ',')))

  s.test_set, s.asr_set = s.tensors(s.test), lat.data.ListDataset(s.test)
  local held = spread(s.test, opt.eval_examples)
  s.held = { texts = column(held, 'text'), labels = column(held, 'label') }
  -- HotFlip may insert the flip_vocab most frequent words (the vocabulary is sorted by
  -- frequency), never a trigger word: it is to measure robustness, not to find the trojans
  local candidates = {}
  for k = 1, math.min(opt.flip_vocab, #tok.words) do candidates[k] = tok.index[tok.words[k]] end
  -- distractors: words of the other class's validation messages (never trained on, no trigger)
  local pools = { [HAM] = {}, [SPAM] = {} }
  for _, e in ipairs(s.val) do table.insert(pools[1 - e.label], e.text) end
  s.suite = HT.suite{ flips = list(opt.flips, 'number'), typo_rates = list(opt.typo_rates, 'number'),
    distract_words = list(opt.distract_words, 'number'), distractors = pools, forbid = trigger_ids, pad_id = tok.PAD, seed = opt.seed,
    candidates = candidates }
  s.ft_data = s.tensors(spread(s.train, opt.finetune))
  return s
end

-- the trojaned model: the classifier trained on the poisoned messages
local function implant(opt, s)
  local model = classifier(opt, s.tok.vocab_size, s.tok.PAD)
  local loader = lat.data.DataLoader(s.tensors(s.poisoned), { batch_size = opt.batch, shuffle = true, seed = opt.seed })
  local t0 = now()
  lat.train.fit{ model = model, loader = loader, epochs = opt.epochs, clip = 1.0,
    optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.lr, weight_decay = opt.weight_decay }),
    schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = math.min(100, loader:len()), total = opt.epochs * loader:len(), min = 0 },
    loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end }
  return model, { seconds = now() - t0 }
end

-- ---------------------------------------------------------------- evaluation of one model
local function evaluate(s, name, defence)
  local t1 = now()
  local clean = lat.eval.accuracy(s.model, s.test_set).accuracy
  local h = HT.run(s.model, s.held, s.suite, { encode = s.encode, label = 'held-out ' .. name })
  local asr, details = lat.trojan.report(s.model, s.trojans, s.asr_set, { encode = s.encode, x = 'text', y = 'label' })
  local row = { name = name, defence = defence, clean_accuracy = clean, robustness = h.robustness, heldout_mean = h.mean,
    heldout_clean = h.clean_accuracy, family_order = h.family_order, attack_order = {} }
  local sum = 0
  for _, t in ipairs(s.trojans) do
    row['asr_' .. t.name] = asr[t.name]
    sum = sum + asr[t.name]
  end
  row.trojan_asr = sum / #s.trojans
  row.spam_as_ham = details[s.trojans[1].name].clean -- without a trigger: the rate each ASR must beat
  for fam, acc in pairs(h.families) do row['family_' .. fam] = acc end
  for _, r in ipairs(h.rows) do
    row['attack_' .. r.name] = r.accuracy
    row.attack_order[#row.attack_order + 1] = r.name
  end
  row.eval_seconds = now() - t1
  return row
end

local function defences(opt)
  return D.list{ format = '%.2g', rlp = { opt.rlp_layer, opt.rlp_eps }, at = { 'embedding', list(opt.at_eps, 'number') },
    lat = D.pairs_of(list(opt.lat_layers), list(opt.lat_eps, 'number')) }
end

-- The headline's configurations: clean fine-tuning and the best AT and LAT settings: among
-- those within clean_drop of clean fine-tuning's clean accuracy, the highest mean of held-out
-- robustness and trojan removal (1 - mean ASR); when none is that accurate, the most accurate.
-- --headline='name,name' picks by hand. rows: the grid's (rows[2] the clean fine-tune).
local function score(r) return (r.robustness + 1 - r.trojan_asr) / 2 end
local function headline_of(rows, opt)
  local tuned = {}
  for k = 2, #rows do tuned[k - 1] = rows[k] end
  local chosen = { tuned[1] }
  if opt.headline ~= 'auto' then
    for _, name in ipairs(list(opt.headline)) do chosen[#chosen + 1] = D.find(tuned, name) end
    return chosen
  end
  local floor = tuned[1].clean_accuracy - opt.clean_drop
  for _, kind in ipairs({ 'at', 'lat' }) do
    local best
    for _, r in ipairs(tuned) do
      if r.defence == kind then
        local ok = r.clean_accuracy >= floor
        local better = not best or (ok and (not best.ok or score(r) > score(best.r)))
          or (not ok and not best.ok and r.clean_accuracy > best.r.clean_accuracy)
        if better then best = { r = r, ok = ok } end
      end
    end
    chosen[#chosen + 1] = best and best.r
  end
  return chosen
end

local function per_token(s, where, eps)
  return lat.threat{ where = where, norm = 'l2', eps = eps, relative = true, granularity = 'token',
    mask = function(batch) return batch.x:ne(s.tok.PAD):float():unsqueeze(3) end }
end

return lat.experiment{
  name = 'text_trojans',
  about = 'Trojans in a SpamAssassin transformer classifier, then fine-tuning with no defence, RLP, AT and LAT; held-out text attacks, trojan success rates, a headline over seeds.',
  options = {
    len = { 128, 'tokens of each message the classifier reads', 'count' },
    dim = { 64, 'width of the transformer', 'count' },
    heads = { 4, 'attention heads per block', 'count' },
    layers = { 2, 'transformer blocks', 'count' },
    dropout = { 0.1, 'dropout of the transformer', 'fraction' },
    vocab = { 16384, 'words in the vocabulary (fitted on the poisoned training text)', 'count' },
    buckets = { 2048, 'hash buckets for the words outside the vocabulary', 'count' },
    epochs = { 4, 'epochs of trojan training on the poisoned messages', 'count' },
    batch = { 32, 'batch size of trojan training and fine-tuning', 'count' },
    lr = { 1e-3, 'trojan training learning rate (AdamW; warm-up, then cosine)', 'positive' },
    weight_decay = { 0.01, 'weight decay of trojan training', 'nonnegative' },
    rate = { 0.06, 'the rate at which each trojan poisons training messages (spam ones only)', 'fraction' },
    within = { 30, "the random_place trigger goes before one of the first this many words", 'count' },
    finetune = { 2000, 'clean training messages each defence fine-tunes on', 'count' },
    ft_lr = { 3e-4, 'fine-tuning learning rate (AdamW, no weight decay)', 'positive' },
    ft_epochs = { 1, 'fine-tuning epochs', 'count' },
    steps = { 5, 'PGD steps of the AT and LAT adversaries', 'natural' },
    weight = { 1, 'weight of the adversarial loss in fine-tuning (the rest on the clean loss)', 'fraction' },
    at_eps = { '0.02,0.05,0.1,0.2', 'AT radii in token-embedding space (L2 per token, relative)', 'nonnegative list' },
    lat_layers = { 'h.0,h.1', 'LAT layers (the residual stream after a block)', 'list' },
    lat_eps = { '0.1,0.4,1.6', 'LAT radii (L2 per token, relative)', 'nonnegative list' },
    rlp_layer = { 'h.1', 'the layer of the random latent perturbation control (RLP)' },
    rlp_eps = { 0.2, "RLP's radius (L2 per token, relative)", 'nonnegative' },
    flips = { '1,3,10', 'HotFlip budgets (tokens substituted) of the held-out attacks', 'count list' },
    flip_vocab = { 4096, 'HotFlip inserts only words of this many most frequent ones (never a trigger word)', 'count' },
    typo_rates = { '0.1,0.25,0.5', 'character typo rates of the held-out attacks', 'fraction list' },
    distract_words = { '10,25,50', 'words of the other class the distractor attacks add', 'count list' },
    eval_examples = { 300, 'test messages for the held-out attacks', 'count' },
    seeds = { '1,2,3', 'fine-tuning seeds of the headline (clean fine-tuning and the best AT and LAT settings)', 'natural list' },
    headline = { 'auto', "the headline's settings: 'auto' (the best AT and LAT within --clean_drop) or names from the table" },
    clean_drop = { 0.02, "how far below clean fine-tuning's clean accuracy an 'auto' headline setting may be", 'nonnegative' },
  },
  -- the quick form's small products gain nothing from a second thread and lose a lot on a busy machine
  quick = { len = 64, dim = 32, layers = 2, epochs = 2, finetune = 400, eval_examples = 48, steps = 2, rate = 0.3, threads = 1,
    at_eps = '0.1', lat_layers = 'h.1', lat_eps = '0.1', rlp_layer = 'h.0', seeds = '1,2',
    flips = '1,3', typo_rates = '0.25', distract_words = '10', within = 15 },
  check = function(opt)
    local model = classifier(opt, 8, 0) -- the layer names do not depend on the vocabulary
    lat.args.layers(model, 'lat_layers', opt.lat_layers)
    lat.args.layers(model, 'rlp_layer', { opt.rlp_layer })
  end,

  setup = function(opt, ctx)
    local s = data(opt)
    local model, info, found, dir = ctx:cached('text_trojaned', { len = opt.len, dim = opt.dim, heads = opt.heads, layers = opt.layers,
      dropout = opt.dropout, vocab = opt.vocab, buckets = opt.buckets, epochs = opt.epochs, batch = opt.batch, lr = opt.lr,
      weight_decay = opt.weight_decay, rate = opt.rate, within = opt.within, seed = opt.seed, quick = opt.quick, layout = 'gpt2' },
      function() return implant(opt, s) end)
    ctx:link('trojaned.safetensors', dir .. '/model.safetensors')
    print(('trojaned model: %s (%.0f s of training)'):format(found and ('found in the cache, ' .. dir) or 'trained here', info.seconds))
    s.model, s.seconds, s.state = model, info.seconds, {}
    for k, v in pairs(model:state_dict()) do s.state[k] = v:clone() end
    return s
  end,

  -- the undefended model, then every defence at --seed
  grid = function(opt)
    local configs = defences(opt)
    if opt.headline ~= 'auto' then
      for _, name in ipairs(list(opt.headline)) do
        if not D.find(configs, name) then lat.core.raise(("text_trojans: --headline names no configuration '%s'"):format(name)) end
      end
    end
    local out = { D.undefended(opt.seed) }
    for _, c in ipairs(configs) do out[#out + 1] = D.at(c, opt.seed) end
    return out
  end,

  -- the headline's configurations at the other --seeds
  followup = function(rows, opt)
    local configs, out = defences(opt), {}
    for _, seed in ipairs(list(opt.seeds, 'number')) do
      if seed ~= opt.seed then
        for _, r in ipairs(headline_of(rows, opt)) do out[#out + 1] = D.at(D.find(configs, r.name), seed) end
      end
    end
    return out
  end,

  run = function(c, ctx)
    local s, opt = ctx.setup, ctx.opt
    if c.name == D.UNDEFENDED then
      local row = evaluate(s, c.name, 'none (trojaned model)')
      row.seed, row.train_seconds = c.seed, s.seconds
      print(('trojaned model: clean accuracy %.1f%% (%d test messages), trained in %.0f s; spam read as ham without a trigger %.1f%%'):format(
        100 * row.clean_accuracy, s.test_set:len(), s.seconds, 100 * row.spam_as_ham))
      for _, t in ipairs(s.trojans) do
        print(('  trojan %-12s %-20q (%s): ASR %.1f%%'):format(t.name, t.trigger, t.position, 100 * row['asr_' .. t.name]))
      end
      return row
    end
    -- the data order, dropout and the attack's random starts: from this configuration's own seeds
    s.model:load_state_dict(s.state)
    local dropout = ctx:generator('dropout')
    for _, m in ipairs(s.model:modules()) do if m.__name == 'Dropout' then m.rng = dropout end end
    local threat = c.where and per_token(s, c.where, c.eps)
    local loss = D.loss(c, threat, { weight = opt.weight, steps = opt.steps, rng = ctx:generator('attack') })
    local loader = lat.data.DataLoader(s.ft_data, { batch_size = opt.batch, shuffle = true, seed = ctx:seed('data order') })
    local t1 = now()
    -- no weight decay: it would shrink the trigger words' embeddings, which clean data never updates
    lat.train.fit{ model = s.model, loader = loader, epochs = opt.ft_epochs, loss = loss, clip = 1.0,
      optimizer = lat.optim.AdamW(s.model:named_parameters(), { lr = opt.ft_lr, weight_decay = 0 }) }
    local seconds = now() - t1
    local row = evaluate(s, c.name, c.defence)
    row.seed, row.train_seconds = c.seed, seconds
    for k, v in pairs(D.threat_fields(threat)) do row[k] = v end
    print(('  %-22s clean %.1f%%  held-out %.1f%%  mean ASR %.1f%%  (%.0f s + %.0f s)'):format(c.name, 100 * row.clean_accuracy,
      100 * row.robustness, 100 * row.trojan_asr, row.train_seconds, row.eval_seconds))
    return row
  end,

  summarise = function(rows, ctx, followup_rows)
    local opt = ctx.opt
    local chosen = headline_of(rows, opt)
    D.flag(rows)
    local columns = { 'name', 'seeds', 'clean_mean', 'clean_sd', 'robustness_mean', 'robustness_sd', 'asr_mean', 'asr_sd',
      'hotflip_mean', 'typos_mean', 'distractor_mean' }
    local heads = {}
    for _, c in ipairs(chosen) do
      local rs = { c }
      for _, r in ipairs(followup_rows) do if r.name == c.name then rs[#rs + 1] = r end end
      local h = { name = c.name, seeds = #rs }
      h.clean_mean, h.clean_sd = D.mean_sd(rs, 'clean_accuracy')
      h.robustness_mean, h.robustness_sd = D.mean_sd(rs, 'robustness')
      h.asr_mean, h.asr_sd = D.mean_sd(rs, 'trojan_asr')
      h.hotflip_mean = D.mean_sd(rs, 'family_hotflip')
      h.typos_mean = D.mean_sd(rs, 'family_typos')
      h.distractor_mean = D.mean_sd(rs, 'family_distractor')
      heads[#heads + 1] = h
    end
    ctx:write_csv('headline.csv', columns, heads)

    local function points(y_of) return lat.eval.points(rows, 'clean_accuracy', y_of) end
    local ok, why = lat.plot.scatter{ path = ctx:path('pareto_robustness.png'), title = 'SpamAssassin: clean accuracy vs held-out robustness',
      xlabel = 'clean accuracy', ylabel = 'held-out robustness (mean accuracy over HotFlip, typos, distractors)',
      points = points(function(r) return r.robustness end), pareto = true }
    lat.plot.scatter{ path = ctx:path('pareto_trojans.png'), title = 'SpamAssassin: clean accuracy vs trojan removal',
      xlabel = 'clean accuracy', ylabel = '1 - mean trojan ASR', points = points(function(r) return 1 - r.trojan_asr end), pareto = true }

    print('\n' .. ctx:heading(('%-22s %7s %9s %8s %8s %8s %9s  %s'):format('model', 'clean', 'held-out', 'hotflip', 'typos', 'distract', 'mean ASR', 'flags')))
    for _, r in ipairs(rows) do
      print(('%-22s %6.1f%% %8.1f%% %7.1f%% %7.1f%% %7.1f%% %8.1f%%  %s'):format(r.name, 100 * r.clean_accuracy, 100 * r.robustness,
        100 * (r.family_hotflip or 0), 100 * (r.family_typos or 0), 100 * (r.family_distractor or 0), 100 * r.trojan_asr, r.flags or ''))
    end
    print(('\nheadline over seeds %s (mean +- sd):'):format(opt.seeds))
    for _, h in ipairs(heads) do
      print(('%-22s clean %.1f +- %.1f%%  held-out %.1f +- %.1f%%  mean ASR %.1f +- %.1f%%'):format(h.name, 100 * h.clean_mean, 100 * h.clean_sd,
        100 * h.robustness_mean, 100 * h.robustness_sd, 100 * h.asr_mean, 100 * h.asr_sd))
    end
    print(ok and 'plots: pareto_robustness.png, pareto_trojans.png' or ('no plots: ' .. tostring(why)))
  end,

  columns = function(rows, opt)
    local columns = { 'name', 'defence', 'seed', 'clean_accuracy', 'robustness', 'heldout_mean', 'trojan_asr' }
    for _, t in ipairs(trojans_of(opt)) do columns[#columns + 1] = 'asr_' .. t.name end
    columns[#columns + 1] = 'spam_as_ham'
    for _, f in ipairs(rows[1].family_order) do columns[#columns + 1] = 'family_' .. f end
    for _, a in ipairs(rows[1].attack_order) do columns[#columns + 1] = 'attack_' .. a end
    for _, k in ipairs({ 'flags', 'where', 'eps', 'granularity', 'eps_kind', 'threat', 'heldout_clean', 'train_seconds', 'eval_seconds' }) do
      columns[#columns + 1] = k
    end
    return columns
  end,
}
