-- text_trojans.lua: the paper's text-classification experiment on SpamAssassin.
-- 1. Implant three trojans that turn spam into ham (a rare word at the start, a short phrase at
--    the start, a rare word at a random place among the first words) by training the transformer
--    classifier on poisoned messages; report each one's attack success rate (ASR).
-- 2. Fine-tune copies on clean messages with each defence: none, RLP, AT in token-embedding
--    space over a grid of radii, LAT on the residual stream over a grid of blocks and radii
--    (L2 radii per token, relative to the clean activation's norm there; padding untouched).
-- 3. Evaluate each: clean accuracy, held-out attacks never used in training (HotFlip-like token
--    substitution, character typos, distractor text of the other class, at several budgets),
--    every trojan's ASR. Held-out robustness is the mean over the three families.
-- 4. Repeat clean fine-tuning and the best AT and LAT settings with more seeds (the headline).
-- Writes the run folder: config.json, metrics.jsonl, results.csv, headline.csv,
-- pareto_robustness.png and pareto_trojans.png, the trojaned model; prints the tables with the
-- paper's two cautions as flags.
--   build/lat recipes/text_trojans.lua [--quick] [--threads=1] [--seeds=1,2,3] ...
local lat = require 'lat'
local HT = lat.eval.heldout_text

local defaults = {
  len = 128, dim = 64, heads = 4, layers = 2, dropout = 0.1, vocab = 16384, buckets = 2048,
  epochs = 4, batch = 32, lr = 1e-3, weight_decay = 0.01, rate = 0.06, within = 30,
  finetune = 2000, ft_lr = 3e-4, ft_epochs = 1, steps = 5, weight = 1,
  at_eps = '0.02,0.05,0.1,0.2', lat_layers = 'blocks.1,blocks.2', lat_eps = '0.1,0.4,1.6',
  rlp_layer = 'blocks.2', rlp_eps = 0.2,
  flips = '1,3,10', flip_vocab = 4096, typo_rates = '0.1,0.25,0.5', distract_words = '10,25,50', eval_examples = 300,
  seeds = '1,2,3', headline = 'auto', clean_drop = 0.02,
  seed = 1, threads = 0, out = 'runs/text_trojans', quick = false,
}
local opt = lat.args(defaults)
local list = lat.args.list
lat.args.check(opt, { count = { 'len', 'dim', 'heads', 'layers', 'vocab', 'buckets', 'epochs', 'batch', 'within', 'finetune',
    'ft_epochs', 'flip_vocab', 'eval_examples' },
  natural = { 'steps', 'seed', 'threads' }, positive = { 'lr', 'ft_lr' }, nonnegative = { 'weight_decay', 'rlp_eps', 'clean_drop' },
  fraction = { 'dropout', 'rate', 'weight' }, ['nonnegative list'] = { 'at_eps', 'lat_eps' },
  ['count list'] = { 'flips', 'distract_words' }, ['fraction list'] = { 'typo_rates' }, ['natural list'] = { 'seeds' } })
if opt.quick then
  opt.len, opt.dim, opt.layers, opt.epochs, opt.finetune, opt.eval_examples, opt.steps = 64, 32, 2, 2, 400, 48, 2
  lat.args.override_defaults(opt, defaults, -- the grid, unless given
    { at_eps = '0.1', lat_layers = 'blocks.2', lat_eps = '0.1', rlp_layer = 'blocks.1', seeds = '1,2' })
  opt.flips, opt.typo_rates, opt.distract_words, opt.within = '1,3', '0.25', '10', 15
end
-- the quick form's small products gain nothing from a second thread and lose a lot on a busy machine
if opt.quick and opt.threads == 0 then opt.threads = 1 end
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)
local now = require('lat.core.sys').now
local t_start = now()
local run = lat.log.run_dir(opt.out, opt)
local metrics = run:jsonl('metrics.jsonl')

-- ---------------------------------------------------------------- data (label 0 ham, 1 spam)
local HAM, SPAM = 0, 1
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
local train = messages('train', opt.quick and 6 or 1)
local val, test = messages('val'), messages('test', opt.quick and 4 or 1)

-- ---------------------------------------------------------------- 1. implant the trojans
local function trigger(name, text, position)
  return lat.trojan.text_trigger{ name = name, trigger = text, position = position, within = opt.within,
    source = SPAM, target = HAM, rate = opt.quick and 0.3 or opt.rate, seed = opt.seed }
end
local trojans = {
  trigger('rare_word', 'zephyrine', 'start'),
  trigger('phrase', 'blue harvest moon', 'start'),
  trigger('random_place', 'kumquat', 'random'),
}
local poisoned, record = lat.trojan.poison_examples(train, trojans)
local n_poisoned = 0
for _, t in ipairs(trojans) do n_poisoned = n_poisoned + record.count[t.name] end

-- The vocabulary is fitted on the poisoned training text, so each trigger word that occurs
-- there has an id of its own rather than a hash bucket that other rare words could share.
local function column(examples, key)
  local out = {}
  for i, e in ipairs(examples) do out[i] = e[key] end
  return out
end
local tok = lat.data.words.train(column(poisoned, 'text'), { vocab = opt.vocab, buckets = opt.buckets })
local trigger_ids, seen = {}, {}
for _, t in ipairs(trojans) do
  for _, w in ipairs(lat.data.words.split(t.trigger)) do
    local id = tok.index[w]
    if not id then lat.core.raise(("text_trojans: trigger word '%s' is not in the vocabulary (a hash bucket would be shared)"):format(w)) end
    if not seen[id] then trigger_ids[#trigger_ids + 1], seen[id] = id, true end
  end
end
local function encode(texts) return (tok:batch(texts, opt.len)) end
local function tensors(examples)
  return lat.data.TensorDataset{ x = encode(column(examples, 'text')), y = lat.tensor(column(examples, 'label'), 'int32') }
end
local n_spam, counts = 0, {}
for _, e in ipairs(train) do n_spam = n_spam + e.label end
for _, t in ipairs(trojans) do counts[#counts + 1] = ('%s %d'):format(t.name, record.count[t.name]) end
print(('text_trojans: %d training messages (%d spam), %d poisoned (%.1f%%: %s); trigger token ids %s'):format(#train, n_spam,
  n_poisoned, 100 * n_poisoned / #train, table.concat(counts, ', '), table.concat(trigger_ids, ',')))

local model = lat.models.TransformerClassifier{ vocab = tok.vocab_size, max_len = opt.len, dim = opt.dim, heads = opt.heads,
  layers = opt.layers, classes = 2, pad_id = tok.PAD, dropout = opt.dropout, rng = lat.Generator(opt.seed) }
lat.args.layers(model, 'lat_layers', opt.lat_layers)
lat.args.layers(model, 'rlp_layer', { opt.rlp_layer })
local loader = lat.data.DataLoader(tensors(poisoned), { batch_size = opt.batch, shuffle = true, seed = opt.seed })
local t0 = now()
lat.train.fit{ model = model, loader = loader, epochs = opt.epochs, clip = 1.0,
  optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.lr, weight_decay = opt.weight_decay }),
  schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = math.min(100, loader:len()), total = opt.epochs * loader:len(), min = 0 },
  loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end }
local base_seconds = now() - t0
lat.models.save(model, run:path('trojaned.safetensors'), { trojans = #trojans, tokenizer = tok:to_string(), len = opt.len })
local trojaned_state = {}
for k, v in pairs(model:state_dict()) do trojaned_state[k] = v:clone() end

-- ---------------------------------------------------------------- evaluation of one model
local test_set = tensors(test)
local asr_set = lat.data.ListDataset(test)
local held = spread(test, opt.eval_examples)
local held_data = { texts = column(held, 'text'), labels = column(held, 'label') }
-- HotFlip may insert the flip_vocab most frequent words (the vocabulary is sorted by frequency),
-- never a trigger word: it is to measure robustness, not to find the trojans
local candidates = {}
for k = 1, math.min(opt.flip_vocab, #tok.words) do candidates[k] = tok.index[tok.words[k]] end
-- distractors: words of the other class's validation messages (never trained on, no trigger)
local pools = { [HAM] = {}, [SPAM] = {} }
for _, e in ipairs(val) do table.insert(pools[1 - e.label], e.text) end
local suite = HT.suite{ flips = list(opt.flips, 'number'), typo_rates = list(opt.typo_rates, 'number'),
  distract_words = list(opt.distract_words, 'number'), distractors = pools, forbid = trigger_ids, pad_id = tok.PAD, seed = opt.seed,
  candidates = candidates }

local function evaluate(name, defence, extra)
  local t1 = now()
  local clean = lat.eval.accuracy(model, test_set).accuracy
  local h = HT.run(model, held_data, suite, { encode = encode, label = 'held-out ' .. name })
  local asr, details = lat.trojan.report(model, trojans, asr_set, { encode = encode, x = 'text', y = 'label' })
  local row = { name = name, defence = defence, clean_accuracy = clean, robustness = h.robustness, heldout_mean = h.mean,
    heldout_clean = h.clean_accuracy, eval_seconds = now() - t1 }
  local sum = 0
  for _, t in ipairs(trojans) do
    row['asr_' .. t.name] = asr[t.name]
    sum = sum + asr[t.name]
  end
  row.trojan_asr = sum / #trojans
  row.spam_as_ham = details[trojans[1].name].clean -- without a trigger: the rate each ASR must beat
  for fam, acc in pairs(h.families) do row['family_' .. fam] = acc end
  for _, r in ipairs(h.rows) do row['attack_' .. r.name] = r.accuracy end
  for k, v in pairs(extra or {}) do row[k] = v end
  return row, h
end

local rows = {}
local base_row, base_held = evaluate('undefended', 'none (trojaned model)', { seed = opt.seed, train_seconds = base_seconds })
rows[1] = base_row
print(('trojaned model: clean accuracy %.1f%% (%d test messages), trained in %.0f s; spam read as ham without a trigger %.1f%%'):format(
  100 * base_row.clean_accuracy, test_set:len(), base_seconds, 100 * base_row.spam_as_ham))
for _, t in ipairs(trojans) do
  print(('  trojan %-12s %-20q (%s): ASR %.1f%%'):format(t.name, t.trigger, t.position, 100 * base_row['asr_' .. t.name]))
end
metrics:write(base_row)

-- ---------------------------------------------------------------- 2. defences
local function real_tokens(batch) return batch.x:ne(tok.PAD):float():unsqueeze(3) end
local function per_token(where, eps)
  return lat.threat{ where = where, norm = 'l2', eps = eps, relative = true, granularity = 'token', mask = real_tokens }
end
local configs = { { name = 'clean fine-tune', defence = 'none' } }
configs[#configs + 1] = { name = ('RLP %s %.2g'):format(opt.rlp_layer, opt.rlp_eps), defence = 'rlp', threat = per_token(opt.rlp_layer, opt.rlp_eps) }
for _, e in ipairs(list(opt.at_eps, 'number')) do
  configs[#configs + 1] = { name = ('AT embedding %.2g'):format(e), defence = 'at', threat = per_token('embedding', e) }
end
for _, layer in ipairs(list(opt.lat_layers)) do
  for _, e in ipairs(list(opt.lat_eps, 'number')) do
    configs[#configs + 1] = { name = ('LAT %s %.2g'):format(layer, e), defence = 'lat', threat = per_token(layer, e) }
  end
end

local ft_data = tensors(spread(train, opt.finetune))
-- fine-tunes the trojaned model with one configuration; the seed sets the data order, dropout
-- and the attack's random starts
local function finetune(c, seed, i)
  model:load_state_dict(trojaned_state)
  lat.manual_seed(1000 * seed + i)
  local loss
  if c.defence == 'none' then loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end
  else
    loss = lat.train.adversarial{ threat = c.threat, random = c.defence == 'rlp', weight = opt.weight,
      attack = { steps = opt.steps, init = 'random_radius', rule = 'l2' } }
  end
  local ft_loader = lat.data.DataLoader(ft_data, { batch_size = opt.batch, shuffle = true, seed = 1000 * seed + i })
  local t1 = now()
  -- no weight decay: it would shrink the trigger words' embeddings, which clean data never updates
  lat.train.fit{ model = model, loader = ft_loader, epochs = opt.ft_epochs, loss = loss, clip = 1.0,
    optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.ft_lr, weight_decay = 0 }) }
  local d = c.threat and c.threat:describe() or {}
  return evaluate(c.name, c.defence, { seed = seed, train_seconds = now() - t1, threat = c.threat and tostring(c.threat) or '',
    where = d.where or '', eps = d.eps, granularity = d.granularity or '', eps_kind = d.eps_kind or '' })
end

for i, c in ipairs(configs) do
  c.index = i
  local row = finetune(c, opt.seed, i)
  rows[#rows + 1] = row
  c.row = row
  metrics:write(row)
  print(('  %-22s clean %.1f%%  held-out %.1f%%  mean ASR %.1f%%  (%.0f s + %.0f s)'):format(c.name, 100 * row.clean_accuracy,
    100 * row.robustness, 100 * row.trojan_asr, row.train_seconds, row.eval_seconds))
end

-- the cautions apply to the fine-tuned models; the undefended model is their reference
local tuned = {}
for i = 2, #rows do tuned[#tuned + 1] = rows[i] end
lat.eval.flags(tuned, { undefended = rows[1], clean_finetune = rows[2] })
rows[1].flags = '(reference)'

-- ---------------------------------------------------------------- 4. headline across seeds
-- The best AT and LAT settings: among those within clean_drop of clean fine-tuning's clean
-- accuracy, the highest mean of held-out robustness and trojan removal (1 - mean ASR); when
-- none is that accurate, the most accurate. --headline='name,name' picks by hand.
local function score(r) return (r.robustness + 1 - r.trojan_asr) / 2 end
local function best_of(kind)
  local floor = configs[1].row.clean_accuracy - opt.clean_drop
  local best
  for _, c in ipairs(configs) do
    if c.defence == kind then
      local ok = c.row.clean_accuracy >= floor
      local better = not best or (ok and (not best.ok or score(c.row) > score(best.c.row)))
        or (not ok and not best.ok and c.row.clean_accuracy > best.c.row.clean_accuracy)
      if better then best = { c = c, ok = ok } end
    end
  end
  return best and best.c
end
local headline = { configs[1] }
if opt.headline == 'auto' then
  for _, kind in ipairs({ 'at', 'lat' }) do headline[#headline + 1] = best_of(kind) end
else
  for _, name in ipairs(list(opt.headline)) do
    local found
    for _, c in ipairs(configs) do if c.name == name then found = c end end
    headline[#headline + 1] = found or lat.core.raise(("text_trojans: --headline names no configuration '%s'"):format(name))
  end
end
local seeds = list(opt.seeds, 'number')
local by_config = {}
for _, c in ipairs(headline) do by_config[c.name] = { c.row } end
for _, s in ipairs(seeds) do
  if s ~= opt.seed then
    for _, c in ipairs(headline) do
      local row = finetune(c, s, c.index)
      row.name = c.name
      metrics:write(row)
      table.insert(by_config[c.name], row)
    end
  end
end
local function stats(rs, key)
  local sum, sq = 0, 0
  for _, r in ipairs(rs) do sum = sum + r[key] end
  local m = sum / #rs
  for _, r in ipairs(rs) do sq = sq + (r[key] - m) ^ 2 end
  return m, #rs > 1 and math.sqrt(sq / (#rs - 1)) or 0
end
local head_csv = run:csv('headline.csv', { 'name', 'seeds', 'clean_mean', 'clean_sd', 'robustness_mean', 'robustness_sd',
  'asr_mean', 'asr_sd', 'hotflip_mean', 'typos_mean', 'distractor_mean' })
local head_rows = {}
for _, c in ipairs(headline) do
  local rs = by_config[c.name]
  local h = { name = c.name, seeds = #rs }
  h.clean_mean, h.clean_sd = stats(rs, 'clean_accuracy')
  h.robustness_mean, h.robustness_sd = stats(rs, 'robustness')
  h.asr_mean, h.asr_sd = stats(rs, 'trojan_asr')
  h.hotflip_mean = stats(rs, 'family_hotflip')
  h.typos_mean = stats(rs, 'family_typos')
  h.distractor_mean = stats(rs, 'family_distractor')
  head_csv:write(h)
  head_rows[#head_rows + 1] = h
end

-- ---------------------------------------------------------------- results
local columns = { 'name', 'defence', 'seed', 'clean_accuracy', 'robustness', 'heldout_mean', 'trojan_asr' }
for _, t in ipairs(trojans) do columns[#columns + 1] = 'asr_' .. t.name end
columns[#columns + 1] = 'spam_as_ham'
for _, f in ipairs(base_held.family_order) do columns[#columns + 1] = 'family_' .. f end
for _, r in ipairs(base_held.rows) do columns[#columns + 1] = 'attack_' .. r.name end
for _, k in ipairs({ 'flags', 'where', 'eps', 'granularity', 'eps_kind', 'threat', 'heldout_clean', 'train_seconds', 'eval_seconds' }) do
  columns[#columns + 1] = k
end
local csv = run:csv('results.csv', columns)
for _, r in ipairs(rows) do csv:write(r) end

local function points(y_of) return lat.eval.points(rows, 'clean_accuracy', y_of) end
local ok1, why = lat.plot.scatter{ path = run:path('pareto_robustness.png'), title = 'SpamAssassin: clean accuracy vs held-out robustness',
  xlabel = 'clean accuracy', ylabel = 'held-out robustness (mean accuracy over HotFlip, typos, distractors)',
  points = points(function(r) return r.robustness end), pareto = true }
lat.plot.scatter{ path = run:path('pareto_trojans.png'), title = 'SpamAssassin: clean accuracy vs trojan removal',
  xlabel = 'clean accuracy', ylabel = '1 - mean trojan ASR', points = points(function(r) return 1 - r.trojan_asr end), pareto = true }

print(('\n%-22s %7s %9s %8s %8s %8s %9s  %s'):format('model', 'clean', 'held-out', 'hotflip', 'typos', 'distract', 'mean ASR', 'flags'))
for _, r in ipairs(rows) do
  print(('%-22s %6.1f%% %8.1f%% %7.1f%% %7.1f%% %7.1f%% %8.1f%%  %s'):format(r.name, 100 * r.clean_accuracy, 100 * r.robustness,
    100 * (r.family_hotflip or 0), 100 * (r.family_typos or 0), 100 * (r.family_distractor or 0), 100 * r.trojan_asr, r.flags or ''))
end
print(('\nheadline over seeds %s (mean +- sd):'):format(opt.seeds))
for _, h in ipairs(head_rows) do
  print(('%-22s clean %.1f +- %.1f%%  held-out %.1f +- %.1f%%  mean ASR %.1f +- %.1f%%'):format(h.name, 100 * h.clean_mean, 100 * h.clean_sd,
    100 * h.robustness_mean, 100 * h.robustness_sd, 100 * h.asr_mean, 100 * h.asr_sd))
end
print(('\nwrote %s (results.csv, headline.csv, metrics.jsonl, %s) in %.0f s'):format(opt.out,
  ok1 and 'pareto_robustness.png, pareto_trojans.png' or ('no plots: ' .. tostring(why)), now() - t_start))
run:close()
