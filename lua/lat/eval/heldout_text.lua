-- eval/heldout_text.lua: lat.eval.heldout_text, "novel" attacks on text classifiers that no defence
-- trains against: a gradient-guided substitution of up to k tokens (HotFlip-like), character
-- typos in the raw text, and insertion of distractor text of the other class; run over a list of
-- messages to give accuracy per attack and per family, as lat.eval.heldout does for images.
--   local HT = lat.eval.heldout_text
--   local suite = HT.suite{ flips = {1, 3, 10}, typo_rates = {0.1, 0.3}, distract_words = {10, 40},
--     distractors = { [0] = ham_texts, [1] = spam_texts }, forbid = trigger_ids }
--   local r = HT.run(model, { texts = texts, labels = labels }, suite, { encode = encode })
--   r.robustness, r.families.hotflip, r.accuracy.typos_0.3
local core = require 'lat.core'
local lat = require 'lat.tensor'
local base = require 'lat.trojan.base'
local sys = require 'lat.core.sys'
local in_eval = require('lat.nn.module').in_eval
local raise = core.raise

local HT = {}

local function predict(model, ids) return lat.no_grad(function() return model(ids):argmax(-1) end) end

-- ---------------------------------------------------------------- HotFlip-like substitution

-- flip_gains(grad [T, D], weight_t [D, V] (the candidate tokens' embeddings as columns),
-- current [T, D] (the embeddings of the tokens now in place), bias [V] (0, or -inf for a banned
-- candidate)) -> gain [T], column [T] int32: for each position t, the largest first-order loss
-- increase (e_v - e_t) . grad_t over the candidates v, and the candidate's column
function HT.flip_gains(grad, weight_t, current, bias)
  local scores = lat.matmul(grad, weight_t)               -- [T, V]: e_v . grad_t
  local own = (grad * current):sum(2)                     -- [T]: e_t . grad_t
  local best, column = (scores + bias):max(2)
  return best - own, column
end

-- hotflip(model, ids int32 [B, T], y int32 [B], {budgets = {1, 3, 10}, pad_id = 0, embedding =
-- 'transformer.wte', candidates = {token ids that may be inserted} (default: every token but padding),
-- forbid = {token ids never inserted}, keep = {token ids never replaced}}) ->
-- { [k] = ids after at most k substitutions, for each budget k }, swaps (a list of {row =, pos =,
-- old =, new =}, 0-based row and position). Greedy: each round takes the gradient of the loss
-- at the token embeddings and makes, in every example the model still classifies correctly, the
-- one substitution with the largest first-order gain, at a real (non-padding) position not yet
-- changed. An example stops once misclassified (the attack has then succeeded within budget).
function HT.hotflip(model, ids, y, opts)
  opts = opts or {}
  local budgets = opts.budgets or { 1, 3, 10 }
  local kmax = 0
  for _, k in ipairs(budgets) do
    if type(k) ~= 'number' or k < 1 or k ~= math.floor(k) then raise('heldout_text.hotflip: budgets must be whole numbers >= 1') end
    kmax = math.max(kmax, k)
  end
  if not lat.is_tensor(ids) or ids.dtype ~= 'int32' or ids:dim() ~= 2 then raise('heldout_text.hotflip: ids must be int32 [B, T]') end
  local pad = opts.pad_id or 0
  local emb = model:module(opts.embedding or 'transformer.wte')
  local weight = emb.weight
  -- the candidate tokens: column j of the score matrix is token cand.i[j]
  local cand = opts.candidates and lat.tensor(opts.candidates, 'int32') or lat.arange(weight:size(1), 'int32')
  local V = cand:numel()
  local weight_t = weight:detach():index_select(1, cand):transpose(1, 2) -- [D, V]
  local banned = { [pad] = true }
  for _, v in ipairs(opts.forbid or {}) do banned[v] = true end
  local bias = lat.zeros({ V })
  for j = 0, V - 1 do if banned[cand.i[j]] then bias.f[j] = -math.huge end end
  local keep = {}
  for _, v in ipairs(opts.keep or {}) do keep[v] = true end
  local B, T = ids:size(1), ids:size(2)
  local cur = ids:clone()
  local changed, done = {}, {}
  local out, swaps = {}, {}
  return in_eval(model, function()
    for round = 1, kmax do
      local delta = lat.zeros({ B, T, weight:size(2) }):requires_grad_()
      local h = model:hook(opts.embedding or 'transformer.wte', function(a) return a + delta end)
      local ok, grad = pcall(function()
        local logits = model(cur)
        local pred = logits:argmax(-1)
        for b = 0, B - 1 do if pred.i[b] ~= y.i[b] then done[b] = true end end
        return lat.grad(lat.cross_entropy(logits, y, { reduction = 'sum' }), { delta })[1]
      end)
      h.remove()
      if not ok then error(grad, 0) end
      lat.no_grad(function()
        for b = 0, B - 1 do
          if not done[b] then
            local row = cur:select(1, b + 1)
            local gain, id = HT.flip_gains(grad:select(1, b + 1), weight_t, weight:detach():index_select(1, row), bias)
            local best_t, best_g = nil, 0
            changed[b] = changed[b] or {}
            for t = 0, T - 1 do
              local old = row.i[t]
              if old ~= pad and not keep[old] and not changed[b][t] and gain.f[t] > best_g then best_t, best_g = t, gain.f[t] end
            end
            if best_t then
              local new = cand.i[id.i[best_t]]
              swaps[#swaps + 1] = { row = b, pos = best_t, old = cur.i[b * T + best_t], new = new, round = round }
              cur.i[b * T + best_t] = new
              changed[b][best_t] = true
            end
          end
        end
      end)
      for _, k in ipairs(budgets) do if k == round then out[k] = cur:clone() end end
    end
    return out, swaps
  end)
end

-- ---------------------------------------------------------------- character typos

-- typos(text, rate, key, i) -> text in which each word of two or more letters is, with
-- probability rate, given one edit: two neighbouring letters swapped, a letter dropped, or a
-- random lower-case letter inserted. The draws come from the stream (key, i) (trojan.base), so
-- text i gets the same typos every time. key: a number (a seed) or a key from trojan.base.key.
function HT.typos(text, rate, key, i)
  if type(text) ~= 'string' then raise('heldout_text.typos: expected a string') end
  if type(rate) ~= 'number' or rate < 0 or rate > 1 then raise('heldout_text.typos: rate must be in [0, 1]') end
  if type(key) == 'number' then key = base.key(key, 'typos') end
  local n = (i or 0) * 2 ^ 24                              -- text i's own stretch of the stream
  local function draw()
    n = n + 1
    return base.uniform(key, n)
  end
  return (text:gsub('%a%a+', function(w)
    if draw() >= rate then return w end
    local kind, L = math.floor(draw() * 3), #w
    if kind == 0 then
      local p = 1 + math.floor(draw() * (L - 1))           -- swap p and p + 1
      return w:sub(1, p - 1) .. w:sub(p + 1, p + 1) .. w:sub(p, p) .. w:sub(p + 2)
    elseif kind == 1 then
      local p = 1 + math.floor(draw() * L)                 -- drop p
      return w:sub(1, p - 1) .. w:sub(p + 1)
    end
    local p = math.floor(draw() * (L + 1))                 -- insert after p letters
    return w:sub(1, p) .. string.char(97 + math.floor(draw() * 26)) .. w:sub(p + 1)
  end))
end

-- ---------------------------------------------------------------- distractor text

-- the body of a message (after its 'Subject: ...' line), or the whole text
local function body_of(text)
  local b = text:match('^Subject:[^\n]*\n(.*)$')
  return b or text
end

-- distractor_words(pool, n, key, i) -> n words taken in order from the bodies of the pool's
-- texts, starting with text number (key, i) of the pool and running on into the next ones
function HT.distractor_words(pool, n, key, i)
  if type(pool) ~= 'table' or #pool == 0 then raise('heldout_text.distractor_words: the pool of texts is empty') end
  local words, start = {}, base.below(key, i or 0, #pool)
  for k = 0, #pool - 1 do
    for w in body_of(pool[(start + k) % #pool + 1]):gmatch('%S+') do
      words[#words + 1] = w
      if #words >= n then return table.concat(words, ' ') end
    end
  end
  return table.concat(words, ' ')
end

-- distract(text, insert) -> the text with insert placed right after its subject line (at the
-- start when it has none), where a classifier that reads the first tokens sees it
function HT.distract(text, insert)
  local subject, rest = text:match('^(Subject:[^\n]*\n)(.*)$')
  if subject then return subject .. insert .. '\n' .. rest end
  return insert .. '\n' .. text
end

-- ---------------------------------------------------------------- specs and the suite

-- A spec is { name =, family =, transform = function(text, label, i) -> text } (a model-free
-- attack on the raw text; i is the message's 0-based position) or { name =, family = 'hotflip',
-- budgets = {...}, hotflip = opts } (one greedy run gives a row for each budget). A new held-out
-- attack on text is a table of the first kind, written anywhere, in the list given to run.
HT.spec = {}
function HT.spec.typos(rate, seed)
  local key = base.key(seed or 0, 'typos')
  return { name = ('typos_%g'):format(rate), family = 'typos', budget = rate,
    transform = function(text, _, i) return HT.typos(text, rate, key, i) end }
end
-- distractors: {[label] = list of texts whose words are inserted into messages of that label}
function HT.spec.distractor(n, distractors, seed)
  local key = base.key(seed or 0, 'distractor')
  return { name = ('distractor_%d'):format(n), family = 'distractor', budget = n,
    transform = function(text, label, i)
      local pool = distractors[label] or raise(('heldout_text.distractor: no distractor texts for label %s'):format(tostring(label)))
      return HT.distract(text, HT.distractor_words(pool, n, key, i))
    end }
end
function HT.spec.hotflip(budgets, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.budgets = budgets
  return { name = 'hotflip', family = 'hotflip', budgets = budgets, hotflip = o }
end

-- suite{ flips = {1, 3, 10}, typo_rates = {0.1, 0.25, 0.5}, distract_words = {10, 25, 50},
-- distractors = {[label] = texts} (required for distractor attacks; the other class's texts),
-- forbid = token ids HotFlip may not insert (the trojan triggers), candidates = the token ids it
-- may (default all), pad_id = 0, seed = 0} -> specs
function HT.suite(opts)
  opts = opts or {}
  local list = {}
  local flips = opts.flips or { 1, 3, 10 }
  if #flips > 0 then
    list[#list + 1] = HT.spec.hotflip(flips, { forbid = opts.forbid, pad_id = opts.pad_id, keep = opts.keep, candidates = opts.candidates })
  end
  for _, r in ipairs(opts.typo_rates or { 0.1, 0.25, 0.5 }) do list[#list + 1] = HT.spec.typos(r, opts.seed) end
  if opts.distractors then
    for _, n in ipairs(opts.distract_words or { 10, 25, 50 }) do list[#list + 1] = HT.spec.distractor(n, opts.distractors, opts.seed) end
  end
  return list
end

-- ---------------------------------------------------------------- running over messages

local function count_correct(pred, y, from, n, tally)
  for r = 0, n - 1 do if pred.i[r] == y.i[from + r] then tally.c = tally.c + 1 end end
end

-- run(model, {texts =, labels =}, attacks, {encode = function(texts) -> ids int32 [B, T]
-- (required), batch_size = 100}) -> { clean_accuracy =, rows = { {name, family, budget,
-- accuracy, n, seconds} }, accuracy = {name -> accuracy}, families = {family -> mean accuracy},
-- family_order, robustness = mean of the family means, mean = mean over rows, n }; label = a
-- progress bar's label (off with progress = false)
function HT.run(model, data, attacks, opts)
  opts = opts or {}
  local encode = opts.encode or raise('heldout_text.run: opts.encode (texts -> token ids) is required')
  local texts, labels = data.texts, data.labels
  if type(texts) ~= 'table' or type(labels) ~= 'table' or #texts ~= #labels or #texts == 0 then
    raise('heldout_text.run: data must be {texts =, labels =}, two lists of the same non-zero length')
  end
  local N, bs = #texts, opts.batch_size or 100
  local y = lat.tensor(labels, 'int32')
  local function batches(fn)
    for from = 0, N - 1, bs do
      local n = math.min(bs, N - from)
      fn(from, n, { unpack(texts, from + 1, from + n) }, y:narrow(1, from + 1, n))
    end
  end
  local clean = { c = 0 }
  in_eval(model, function()
    batches(function(from, n, chunk) count_correct(predict(model, encode(chunk)), y, from, n, clean) end)
  end)
  local result = { clean_accuracy = clean.c / N, rows = {}, accuracy = {}, families = {}, n = N }
  local function add(row)
    result.rows[#result.rows + 1] = row
    result.accuracy[row.name] = row.accuracy
  end
  local bar = require('lat.log.progress'){ label = opts.label or 'held-out attacks', total = #attacks, unit = 'attack',
    mode = opts.progress == false and 'off' or nil }
  for a, spec in ipairs(attacks) do
    local t0 = sys.now()
    if spec.transform then
      local tally = { c = 0 }
      in_eval(model, function()
        batches(function(from, n, chunk)
          local attacked = {}
          for r = 1, n do attacked[r] = spec.transform(chunk[r], labels[from + r], from + r - 1) end
          count_correct(predict(model, encode(attacked)), y, from, n, tally)
        end)
      end)
      add{ name = spec.name, family = spec.family, budget = spec.budget, accuracy = tally.c / N, n = N, seconds = sys.now() - t0 }
    else
      local tallies = {}
      for _, k in ipairs(spec.budgets) do tallies[k] = { c = 0 } end
      in_eval(model, function()
        batches(function(from, n, chunk, yb)
          local adv = HT.hotflip(model, encode(chunk), yb, spec.hotflip)
          for _, k in ipairs(spec.budgets) do count_correct(predict(model, adv[k]), y, from, n, tallies[k]) end
        end)
      end)
      local seconds = (sys.now() - t0) / #spec.budgets
      for _, k in ipairs(spec.budgets) do
        add{ name = ('%s_%d'):format(spec.name, k), family = spec.family, budget = k, accuracy = tallies[k].c / N, n = N, seconds = seconds }
      end
    end
    bar:update(a, { last = result.rows[#result.rows].name })
  end
  bar:finish()
  return require('lat.eval.heldout').summarise(result)
end

return HT
