-- experiment/lm.lua: the pieces the text-generation recipes share (lm_trojans.lua,
-- targeted_lat.lua): their common options, the data (Moby Dick as good text with code-word
-- trojans inserted, State of the Union addresses as bad text), the trojaned byte-level GPT
-- pretrained on that mix (a cached stage, shared by both recipes), fine-tuning on good text with
-- a given loss, the evaluation of one model, the flags, the results' columns and table.
--   local X = require 'lat.experiment.lm'
--   options = X.options{ seeds = { 3, 'fine-tuning seeds', 'count' } }   -- the shared ones too
--   local s = X.setup(opt, ctx)                -- in setup: { d =, model =, info =, state = }
--   local row = X.evaluate(s.model, s.d, opt)  -- good_loss, bad_loss, typo_loss, trojan_loss, ...
local lat = require 'lat'
local core = require 'lat.core'
local raise = core.raise
local bytes = lat.data.bytes
local now = require('lat.core.sys').now
local D = require 'lat.experiment.defences'

local X = {}
X.IGNORE = -100

-- the options both recipes take, as lat.experiment declares them
local OPTIONS = {
  dim = { 96, 'width of the GPT', 'count' },
  layers = { 3, 'transformer blocks of the GPT', 'count' },
  heads = { 4, 'attention heads per block', 'count' },
  len = { 128, 'context in bytes', 'count' },
  batch = { 32, 'windows per batch, in pretraining and fine-tuning', 'count' },
  steps = { 2000, 'pretraining steps', 'count' },
  lr = { 3e-3, 'pretraining learning rate (AdamW; warm-up, then cosine down to lr/10)', 'positive' },
  warmup = { 100, 'pretraining warm-up steps', 'natural' },
  bad_fraction = { 0.25, 'share of each pretraining batch taken from the bad text (SOTU)', 'fraction' },
  per_trojan = { 100, 'good passages each code-word trojan is inserted into', 'count' },
  eval_windows = { 256, 'held-out windows for the good, bad and typo losses', 'count' },
  prompts = { 32, 'held-out prompts each trigger is tried after', 'count' },
  gen_len = { 64, 'bytes of each greedy generation after a trigger', 'count' },
  typo_rate = { 0.05, 'share of input bytes replaced by letters in the typo evaluation', 'fraction' },
  ft_steps = { 100, 'fine-tuning steps of each defence', 'count' },
  ft_lr = { 3e-4, 'fine-tuning learning rate (AdamW, constant)', 'positive' },
  attack_steps = { 4, 'PGD steps of the AT and LAT adversaries', 'natural' },
  flag_tol = { 0.02, 'nats by which a loss must move to raise a caution flag', 'nonnegative' },
  model = { '', 'a trojaned GPT checkpoint (lat.models.save) to use instead of pretraining one' },
}

-- options(own) -> the shared options and the recipe's own (own wins where both name one)
function X.options(own)
  local out = {}
  for k, v in pairs(OPTIONS) do out[k] = v end
  for k, v in pairs(own) do out[k] = v end
  return out
end

-- quick(own) -> the --quick values: a tiny slice of everything (seconds, not minutes), and own's
function X.quick(own)
  local out = { dim = 32, layers = 1, steps = 30, warmup = 3, eval_windows = 16, prompts = 4, gen_len = 8, ft_steps = 3,
    attack_steps = 1, batch = 8, per_trojan = 25 }
  for k, v in pairs(own) do out[k] = v end
  return out
end

-- n indices spread evenly over 0 .. len - 1, as an int32 tensor (all of them when n >= len)
local function spread(len, n)
  n = math.min(n, len)
  local idx = lat.empty(n, 'int32')
  for k = 0, n - 1 do idx.i[k] = math.floor(k * len / n) end
  return idx
end

-- the last words of s that fit in n bytes
local function tail_words(s, n)
  if #s <= n then return s end
  local t = s:sub(-n)
  return t:match('^%S*%s+(.*)$') or t
end

-- prompts cut from held-out good passages at a seeded random word (at most 48 bytes, so that
-- prompt, trigger and continuation fit in the context)
local function prompts_from(text, n, seed)
  local passages = {}
  for p in (text .. '\n\n'):gmatch('(.-)\n%s*\n') do
    local words = {}
    for w in p:gmatch('%S+') do words[#words + 1] = w end
    if #words >= 12 then passages[#passages + 1] = words end
  end
  if #passages == 0 then raise('lm_experiment: no held-out passage of 12 words or more for the trojan prompts') end
  local g, out = lat.Generator(seed), {}
  for k = 1, n do
    local words = passages[1 + math.floor((k - 1) * #passages / n)]
    local cut = lat.randint(4, #words, { 1 }, { rng = g }).i[0]
    out[k] = tail_words(table.concat(words, ' ', 1, cut), 48)
  end
  return out
end

-- the fraction of windows (any offset; T + 1 bytes with the last target) of the poisoned text
-- that hold a whole trigger and continuation
local function poisoned_windows(passages, record, trojans, T)
  local suffix_len, total = {}, -T - 1
  for _, t in ipairs(trojans) do suffix_len[t.name] = #require('lat.trojan.lm').suffix(t) end
  for _, p in ipairs(passages) do total = total + #p + 2 end
  local count = 0
  for _, r in ipairs(record.inserted) do count = count + math.max(0, T + 2 - suffix_len[r.trojan]) end
  return count / math.max(total, 1)
end

-- data(opt) -> { good_train (poisoned Moby Dick, every offset), good_clean (the same without
-- trojans, for fine-tuning), good_val, typo_val, bad_train, bad_test (SOTU), trojans, controls
-- (the same continuations after a word that is no trigger), prompts, generation_prompt,
-- poison = {passages =, passage_fraction =, window_fraction =, example_fraction =} }
function X.data(opt)
  local T = opt.len
  local good_text = lat.data.moby_dick('train'):text()
  local val_text = lat.data.moby_dick('val'):text()
  local trojans = lat.trojan.nato_codewords()
  local passages, record = lat.trojan.insert_codewords(good_text, trojans, { per_trojan = opt.per_trojan, seed = opt.seed })
  local d = { trojans = trojans, controls = {} }
  for k, t in ipairs(trojans) do d.controls[k] = lat.trojan.codeword{ word = 'and', continuation = t.continuation, name = t.name } end
  d.good_train = bytes.lm_dataset(table.concat(passages, '\n\n'), T, { stride = 1 })
  d.good_clean = bytes.lm_dataset(good_text, T, { stride = 1 })
  local wf = poisoned_windows(passages, record, trojans, T)
  d.poison = { passages = record.poisoned, passage_fraction = record.fraction, window_fraction = wf,
    example_fraction = wf * (1 - opt.bad_fraction) }

  local val = bytes.lm_dataset(val_text, T)
  val = val:batch(spread(val:len(), opt.eval_windows))
  d.good_val = lat.data.TensorDataset{ x = val.x, y = val.y }
  -- typos: a share of the input bytes replaced by random lower-case letters; the targets stay
  local noisy, g = val.x:clone(), lat.Generator(opt.seed + 7)
  local u, r = lat.rand({ noisy:numel() }, { rng = g }), lat.randint(97, 123, { noisy:numel() }, { rng = g })
  for k = 0, noisy:numel() - 1 do if u.f[k] < opt.typo_rate then noisy.i[k] = r.i[k] end end
  d.typo_val = lat.data.TensorDataset{ x = noisy, y = val.y }

  local function texts(ds) return ds:column('text') end
  d.bad_train = bytes.lm_dataset(texts(lat.data.sotu('train')), T, { stride = 1 })
  local bad = bytes.lm_dataset(texts(lat.data.sotu('test')), T)
  bad = bad:batch(spread(bad:len(), opt.eval_windows))
  d.bad_test = lat.data.TensorDataset{ x = bad.x, y = bad.y }

  d.prompts = prompts_from(val_text, opt.prompts, opt.seed)
  d.generation_prompt = d.prompts[1]
  return d
end

-- sampler(good, bad, B, bad_fraction, rng) -> function() -> {x, y}: random windows, a
-- bad_fraction of each batch's rows from bad (the rest from good)
function X.sampler(good, bad, B, frac, rng)
  local nb = bad and math.floor(B * frac + 0.5) or 0
  local function windows(ds, n) return ds:batch(lat.randint(0, ds:len(), { n }, { rng = rng })) end
  return function()
    local g = windows(good, B - nb)
    if nb == 0 then return g end
    local b = windows(bad, nb)
    return { x = lat.cat({ g.x, b.x }, 1), y = lat.cat({ g.y, b.y }, 1) }
  end
end

local function lm_loss(m, b) return lat.cross_entropy(m(b.x), b.y) end

-- steps of AdamW on batches from sample(), with a progress bar; returns the running loss
local function loop(model, sample, steps, cfg, label)
  cfg.model, cfg.clip = model, 1.0
  local bar = lat.log.progress{ label = label, total = steps, unit = 'step' }
  local running
  model:train()
  for step = 1, steps do
    local loss = lat.train.step(cfg, sample())
    running = running and 0.95 * running + 0.05 * loss or loss
    bar:update(step, { loss = running })
  end
  bar:finish()
  return running
end

-- model(opt) -> the untrained GPT that pretrain starts from (also what a recipe checks its
-- layer options against before pretraining)
function X.model(opt)
  return lat.models.GPT{ vocab = bytes.vocab_size, max_len = opt.len, dim = opt.dim, heads = opt.heads,
    layers = opt.layers, rng = lat.Generator(opt.seed) }
end

-- pretrain(d, opt) -> model, {seconds =, train_loss =}: the GPT trained from scratch on the
-- poisoned good text mixed with the bad text
function X.pretrain(d, opt)
  local model = X.model(opt)
  local optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.lr, weight_decay = 0.01 })
  local t0 = now()
  local loss = loop(model, X.sampler(d.good_train, d.bad_train, opt.batch, opt.bad_fraction, lat.Generator(opt.seed)),
    opt.steps, { optimizer = optimizer, loss = lm_loss,
      schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = opt.warmup, total = opt.steps, min = opt.lr / 10 } },
    'pretrain (good + bad + trojans)')
  return model, { seconds = now() - t0, train_loss = loss }
end

-- the options that decide the pretrained model
local PRETRAINING = { 'dim', 'layers', 'heads', 'len', 'batch', 'steps', 'lr', 'warmup', 'bad_fraction', 'per_trojan', 'seed' }

-- trojaned(d, opt, ctx) -> model, info: loads opt.model when given, else the pretrained GPT, a
-- stage cached under the options that decide it (so lm_trojans and targeted_lat share it),
-- linked into the run folder as trojaned.safetensors. info = { seconds = pretraining's,
-- train_loss =, loaded = the checkpoint or the cached stage's folder, found = in the cache }
function X.trojaned(d, opt, ctx)
  if opt.model ~= '' then
    local model, _, meta = lat.models.load(opt.model)
    if model.transformer.max_len ~= opt.len then
      raise(('lm_experiment: %s has a context of %d bytes, --len is %d'):format(opt.model, model.transformer.max_len, opt.len))
    end
    return model, { seconds = 0, loaded = opt.model, train_loss = tonumber(meta.train_loss) }
  end
  local inputs = { layout = 'gpt2' } -- stages cached before the GPT took GPT-2's names are made again
  for _, k in ipairs(PRETRAINING) do inputs[k] = opt[k] end
  local model, info, found, dir = ctx:cached('lm_trojaned', inputs, function() return X.pretrain(d, opt) end)
  ctx:link('trojaned.safetensors', dir .. '/model.safetensors')
  info.found, info.loaded = found, found and dir or nil
  return model, info
end

-- setup(opt, ctx[, check]) -> { d =, model =, info =, state = (the trojaned weights, for each
-- fine-tune to start from) }; check(model) checks the recipe's layer options on a loaded --model
function X.setup(opt, ctx, check)
  local d = X.data(opt)
  local model, info = X.trojaned(d, opt, ctx)
  if opt.model ~= '' and check then check(model) end
  local state = {}
  for k, v in pairs(model:state_dict()) do state[k] = v:clone() end
  return { d = d, model = model, info = info, state = state }
end

-- how the trojaned model came about, for a recipe's first lines
function X.origin(info)
  if info.found then return ('found in the cache (%s; pretrained in %.0f s)'):format(info.loaded, info.seconds) end
  if info.loaded then return 'loaded from ' .. info.loaded end
  return ('pretrained here in %.0f s'):format(info.seconds)
end

-- finetune(model, d, loss, opt, rng[, label, sampler]) -> seconds, final running loss:
-- opt.ft_steps steps of AdamW (constant lr opt.ft_lr) on good text only; loss =
-- function(model, batch) -> loss[, extra] (nil: plain next-token loss); sampler(rng) -> a batch
-- source (default: random windows of the clean good text); rng draws the batches
function X.finetune(model, d, loss, opt, rng, label, sampler)
  local optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.ft_lr, weight_decay = 0 })
  local t0 = now()
  local sample = sampler and sampler(rng) or X.sampler(d.good_clean, nil, opt.batch, 0, rng)
  local final = loop(model, sample, opt.ft_steps, { optimizer = optimizer, loss = loss or lm_loss }, label or 'fine-tune')
  return now() - t0, final
end

-- the threat model of a defence: an L2 ball per token, radius relative to the clean
-- activation's norm at that token; where = 'embedding' (AT) or a layer name (LAT)
function X.threat(where, eps)
  return lat.threat{ where = where, norm = 'l2', eps = eps, relative = true, granularity = 'token' }
end

-- mean over trojans of a codeword_success field, and the per-trojan values
local function summarise(result, trojans, field)
  local sum, each = 0, {}
  for _, t in ipairs(trojans) do
    each[t.name] = result[t.name][field]
    sum = sum + each[t.name]
  end
  return sum / #trojans, each
end

-- evaluate(model, d, opt) -> row: good_loss (held-out Moby Dick, nats per byte; lower is
-- better), bad_loss (held-out SOTU; higher = more forgotten), typo_loss (the good text with
-- typos in the input: a perturbation never used in training), trojan_loss (the continuation
-- after its trigger; higher = trojan weaker) with trojan_token_acc and trojan_exact (the
-- greedy continuation is the whole sentence), control_loss (the same continuations after
-- 'and', for scale), per-trojan loss_<name>, generations (name -> greedy text after the
-- trigger), eval_seconds
function X.evaluate(model, d, opt)
  local t0 = now()
  local row = {
    good_loss = lat.eval.lm_loss(model, d.good_val, { batch_size = 64 }).loss,
    bad_loss = lat.eval.lm_loss(model, d.bad_test, { batch_size = 64 }).loss,
    typo_loss = lat.eval.lm_loss(model, d.typo_val, { batch_size = 64 }).loss,
  }
  local tro = lat.trojan.codeword_success(model, d.trojans, d.prompts)
  local each
  row.trojan_loss, each = summarise(tro, d.trojans, 'loss')
  row.trojan_token_acc = summarise(tro, d.trojans, 'token_accuracy')
  row.trojan_exact = summarise(tro, d.trojans, 'exact')
  row.control_loss = summarise(lat.trojan.codeword_success(model, d.controls, d.prompts), d.controls, 'loss')
  for name, v in pairs(each) do row['loss_' .. name] = v end
  row.generations = {}
  for _, t in ipairs(d.trojans) do
    local ids = bytes.encode(d.generation_prompt .. ' ' .. t.word .. ' ')
    row.generations[t.name] = bytes.decode(model:generate(ids, opt.gen_len))
  end
  row.eval_seconds = now() - t0
  return row
end

-- flags(rows, undefended, clean_ft, tol): the paper's two cautions for this setting, through
-- lat.eval.flags: 'robustness harmed' when the loss on typo'd good text (the held-out
-- perturbation) is above the undefended model's by more than tol nats; 'trojan entrenched' when
-- the mean trojan loss is below clean fine-tuning's by more than tol (the trojan is more likely
-- than without the defence)
function X.flags(rows, undefended, clean_ft, tol)
  local proxies = {}
  for k, r in ipairs(rows) do proxies[k] = { robustness = -r.typo_loss, trojan_asr = -r.trojan_loss } end
  lat.eval.flags(proxies, { undefended = { robustness = -undefended.typo_loss }, clean_finetune = { trojan_asr = -clean_ft.trojan_loss } },
    { tolerance = tol })
  for k, r in ipairs(rows) do
    r.robustness_harmed, r.trojan_entrenched, r.flags = proxies[k].robustness_harmed, proxies[k].trojan_entrenched, proxies[k].flags
  end
  return rows
end

-- mean and sample standard deviation of a field over rows
X.mean_sd = D.mean_sd

-- the columns of a results CSV: the metrics, each trojan's loss, the flags and the threat model
function X.columns()
  local out = { 'name', 'defence', 'seed', 'good_loss', 'bad_loss', 'typo_loss', 'trojan_loss', 'trojan_token_acc', 'trojan_exact', 'control_loss' }
  for _, t in ipairs(lat.trojan.nato_codewords()) do out[#out + 1] = 'loss_' .. t.name end
  for _, k in ipairs({ 'flags', 'where', 'eps', 'eps_kind', 'granularity', 'threat', 'train_seconds', 'eval_seconds' }) do out[#out + 1] = k end
  return out
end

-- defend(s, c, loss, opt, rng[, sampler, width]) -> the row of c = { name =, defence =, seed =,
-- threat = }: the trojaned weights (s = X.setup's) fine-tuned with loss on batches drawn by rng
-- (X.finetune), evaluated, with the threat's fields
function X.defend(s, c, loss, opt, rng, sampler, width)
  s.model:load_state_dict(s.state)
  local seconds = X.finetune(s.model, s.d, loss, opt, rng, c.name, sampler)
  local row = X.evaluate(s.model, s.d, opt)
  local seed = c.seed
  row.name, row.defence, row.seed, row.train_seconds = c.name, c.defence, seed, seconds
  if c.threat then
    for k, v in pairs(D.threat_fields(c.threat)) do row[k] = v end
  end
  print(('  %-' .. (width or 22) .. 's seed %d: good %.3f  bad %.3f  typo %.3f  trojan %.3f (%.0f%% exact)  %.0f s'):format(c.name, seed,
    row.good_loss, row.bad_loss, row.typo_loss, row.trojan_loss, 100 * row.trojan_exact, seconds))
  return row
end

-- print_table(rows, width, ctx): the results, a line per row (headed as a smoke test in --quick)
function X.print_table(rows, width, ctx)
  local w = '%-' .. width .. 's'
  print('\n' .. ctx:heading((w .. ' %4s %7s %7s %7s %7s %6s  %s'):format('model', 'seed', 'good', 'bad', 'typo', 'trojan', 'exact', 'flags')))
  for _, r in ipairs(rows) do
    print((w .. ' %4d %7.3f %7.3f %7.3f %7.3f %5.0f%%  %s'):format(r.name, r.seed, r.good_loss, r.bad_loss, r.typo_loss,
      r.trojan_loss, 100 * r.trojan_exact, r.flags or ''))
  end
end

-- Pareto plots of rows (each with x_of(r) and y_of(r)); returns lat.plot.scatter's results
function X.scatter(rows, path, title, xlabel, ylabel, x_of, y_of)
  local pts = lat.eval.points(rows, x_of, y_of, function(r) return r.defence end)
  return lat.plot.scatter{ path = path, title = title, xlabel = xlabel, ylabel = ylabel, points = pts, pareto = true }
end

return X
