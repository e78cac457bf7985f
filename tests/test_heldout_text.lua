-- Held-out attacks on text: HotFlip-like substitution (against brute force on a model where the
-- first-order gain is exact), typos, distractor insertion and run()'s aggregation.
local H = require 'harness'
local lat = require 'lat'
local HT = lat.eval.heldout_text
local nn = lat.nn

H.test('flip_gains is the best first-order gain over allowed tokens, by brute force', function()
  local g = lat.Generator(1)
  local T, D, V = 5, 4, 9
  local grad, weight = lat.randn({ T, D }, { rng = g }), lat.randn({ V, D }, { rng = g })
  local ids = lat.tensor({ 3, 0, 8, 1, 3 }, 'int32')
  local bias = lat.zeros({ V })
  bias.f[2], bias.f[5] = -math.huge, -math.huge
  local gain, id = HT.flip_gains(grad, weight:transpose(1, 2), weight:index_select(1, ids), bias)
  for t = 0, T - 1 do
    local best, best_v = -math.huge, nil
    for v = 0, V - 1 do
      if v ~= 2 and v ~= 5 then
        local s = 0
        for d = 0, D - 1 do s = s + (weight.f[v * D + d] - weight.f[ids.i[t] * D + d]) * grad.f[t * D + d] end
        if s > best then best, best_v = s, v end
      end
    end
    H.near(gain.f[t], best, 1e-4, 'gain at ' .. t)
    H.assert(id.i[t] == best_v, ('position %d: token %d, brute force %d'):format(t, id.i[t], best_v))
  end
end)

-- A linear bag-of-tokens classifier: logits = sum over real tokens of W e(token) + b. Its
-- logit margin is linear in the embeddings, so the first-order gain of a swap is exact and the
-- greedy choice can be checked against trying every swap.
local Bag = nn.class('Bag')
function Bag:__init(V, D, seed)
  local rng = lat.Generator(seed)
  self:add('transformer', nn.Sequential{ { 'wte', nn.Embedding(V, D, { rng = rng, std = 1 }) } })
  self:add('head', nn.Linear(D, 2, { rng = rng }))
end
function Bag:forward(ids)
  local mask = ids:ne(0):float():unsqueeze(3)
  return self.head((self.transformer.wte(ids) * mask):sum(2))
end

local V, D = 30, 6
local bag = Bag(V, D, 2)
local function margin(ids, y)   -- logit of the true class minus the other, per row
  local out = lat.no_grad(function() return bag(ids) end)
  local m = {}
  for b = 0, ids:size(1) - 1 do m[b] = out.f[b * 2 + y.i[b]] - out.f[b * 2 + 1 - y.i[b]] end
  return m
end

-- the labels the model gets right for ids, and the margins under those labels
local function right_labels(ids)
  local y = lat.zeros({ ids:size(1) }, 'int32')
  local m = margin(ids, y)
  for b = 0, ids:size(1) - 1 do y.i[b] = m[b] > 0 and 0 or 1 end
  return y, margin(ids, y)
end

H.test('hotflip: one swap is the best single swap (exact for a linear model), padding and forbidden tokens untouched', function()
  local g = lat.Generator(3)
  local B, T = 6, 7
  local ids = lat.randint(2, V, { B, T }, { rng = g }):int()
  for b = 0, B - 1 do for t = 5 - (b % 3), T - 1 do ids.i[b * T + t] = 0 end end -- padding at the end
  local y, m0 = right_labels(ids)
  local forbid = { 7, 11 }
  local adv, swaps = HT.hotflip(bag, ids, y, { budgets = { 1 }, forbid = forbid, pad_id = 0 })
  local m1 = margin(adv[1], y)
  H.assert(#swaps == B, 'one swap per example')
  for b = 0, B - 1 do
    -- the lowest margin over all single swaps at real positions to allowed tokens
    local best = math.huge
    for t = 0, T - 1 do
      if ids.i[b * T + t] ~= 0 then
        for v = 1, V - 1 do
          if v ~= 7 and v ~= 11 then
            local trial = ids:clone()
            trial.i[b * T + t] = v
            best = math.min(best, margin(trial, y)[b])
          end
        end
      end
    end
    H.near(m1[b], best, 1e-4, 'row ' .. b .. ': margin after the chosen swap vs the best swap')
    H.assert(m1[b] < m0[b], 'the swap lowers the margin')
    local diff = 0
    for t = 0, T - 1 do
      local a, o = adv[1].i[b * T + t], ids.i[b * T + t]
      if a ~= o then
        diff = diff + 1
        H.assert(o ~= 0, 'padding was replaced')
        H.assert(a ~= 7 and a ~= 11 and a ~= 0, 'a forbidden token was inserted')
      end
    end
    H.assert(diff == 1, 'exactly one position changed in row ' .. b)
  end
end)

H.test('hotflip with a candidate list inserts only candidates, the best single swap among them', function()
  local g = lat.Generator(6)
  local B, T = 5, 6
  local ids = lat.randint(2, V, { B, T }, { rng = g }):int()
  local y, m0 = right_labels(ids)
  local cands = { 3, 4, 9, 17, 25 }
  local adv = HT.hotflip(bag, ids, y, { budgets = { 1 }, candidates = cands, forbid = { 9 } })
  local m1 = margin(adv[1], y)
  for b = 0, B - 1 do
    local best = math.huge
    for t = 0, T - 1 do
      for _, v in ipairs(cands) do
        if v ~= 9 then
          local trial = ids:clone()
          trial.i[b * T + t] = v
          best = math.min(best, margin(trial, y)[b])
        end
      end
    end
    H.near(m1[b], math.min(best, m0[b]), 1e-4, 'row ' .. b .. ': the best swap among the candidates (or none)')
    for t = 0, T - 1 do
      local a = adv[1].i[b * T + t]
      H.assert(a == ids.i[b * T + t] or a == 3 or a == 4 or a == 17 or a == 25, 'inserted a token that is no allowed candidate')
    end
  end
end)

H.test('hotflip budgets: at most k positions changed, each once; an example stops once misclassified', function()
  local g = lat.Generator(4)
  local B, T = 20, 8
  local ids = lat.randint(2, V, { B, T }, { rng = g }):int()
  local y = right_labels(ids)
  local adv, swaps = HT.hotflip(bag, ids, y, { budgets = { 1, 2, 5 } })
  local last_wrong = -1
  for _, k in ipairs({ 1, 2, 5 }) do
    local wrong = 0
    local m = margin(adv[k], y)
    for b = 0, B - 1 do
      local changed = 0
      for t = 0, T - 1 do if adv[k].i[b * T + t] ~= ids.i[b * T + t] then changed = changed + 1 end end
      H.assert(changed <= k, ('row %d: %d positions changed with budget %d'):format(b, changed, k))
      if m[b] < 0 then wrong = wrong + 1 end
    end
    H.assert(wrong >= last_wrong, 'a larger budget never fixes an example')
    last_wrong = wrong
  end
  H.assert(last_wrong > 0, 'five swaps in eight tokens break some examples')
  local seen = {}
  for _, s in ipairs(swaps) do
    local key = s.row * T + s.pos
    H.assert(not seen[key], 'a position was changed twice')
    seen[key] = true
    -- no swap after the round in which the example was already misclassified
    local before = ids:clone()
    for _, s2 in ipairs(swaps) do
      if s2.row == s.row and s2.round < s.round then before.i[s2.row * T + s2.pos] = s2.new end
    end
    H.assert(margin(before, y)[s.row] > 0, 'swapped in an example already misclassified')
  end
  H.raises(function() HT.hotflip(bag, ids, y, { budgets = { 0 } }) end, 'budgets must be whole numbers')
  H.raises(function() HT.hotflip(bag, ids:float(), y) end, 'ids must be int32')
end)

H.test('typos: deterministic, edit one word in about rate of them, leave everything but letters', function()
  local words = {}
  for k = 1, 2000 do words[k] = ({ 'money', 'offer', 'meeting', 'tomorrow', 'we', 'click' })[k % 6 + 1] end
  local text = table.concat(words, ' ') .. ', 42 times!'
  H.assert(HT.typos(text, 0, 1, 0) == text, 'rate 0 is the identity')
  local a, b = HT.typos(text, 0.3, 1, 5), HT.typos(text, 0.3, 1, 5)
  H.assert(a == b, 'same key and index, same typos')
  H.assert(HT.typos(text, 0.3, 1, 6) ~= a and HT.typos(text, 0.3, 2, 5) ~= a, 'another index or seed differs')
  H.assert(a:gsub('%a', '') == text:gsub('%a', ''), 'only letters change')
  local changed, n = 0, 0
  local out = {}
  for w in a:gmatch('%a+') do out[#out + 1] = w end
  H.assert(#out == 2001, 'no word split or merged: ' .. #out)
  for k, w in ipairs(words) do
    n = n + 1
    if out[k] ~= w then
      changed = changed + 1
      H.assert(math.abs(#out[k] - #w) <= 1, 'one edit: ' .. w .. ' -> ' .. out[k])
    end
  end
  -- swapping two equal neighbours ('ee' in meeting, 'ff' in offer) changes nothing, hence a little under 0.3
  H.assert(changed / n > 0.24 and changed / n < 0.33, ('changed %.3f of the words at rate 0.3'):format(changed / n))
  local all, k, edited = HT.typos(text, 1, 1, 0), 0, 0
  for w in all:gmatch('%a+') do
    k = k + 1
    if words[k] and w ~= words[k] then edited = edited + 1 end
  end
  H.assert(all:match(' 42 [%a]+!$') and edited / #words > 0.85, ('rate 1 edits %.3f of the words, and no digits or marks'):format(edited / #words))
  H.raises(function() HT.typos(text, 2, 1, 0) end, 'rate must be in')
end)

H.test('distractors: n words of the pool, inserted after the subject line, the same for the same index', function()
  local pool = { 'Subject: lunch\n\nsee you at noon then', 'Subject: re: notes\n\nthe notes are attached here' }
  local key = require('lat.trojan.base').key(1, 'd')
  local w = HT.distractor_words(pool, 8, key, 3)
  H.assert(w == HT.distractor_words(pool, 8, key, 3), 'deterministic')
  local count = 0
  for _ in w:gmatch('%S+') do count = count + 1 end
  H.assert(count == 8, '8 words, running on into the next text: ' .. w)
  H.assert(not w:find('Subject', 1, true), 'subject lines are not used')
  H.assert(w:find('see you at noon then', 1, true) or w:find('the notes are attached here', 1, true), 'words in order: ' .. w)
  H.assert(HT.distract('Subject: win\n\nclaim now', 'hello there') == 'Subject: win\nhello there\n\nclaim now', 'after the subject')
  H.assert(HT.distract('claim now', 'hi') == 'hi\nclaim now', 'at the start without a subject')
  H.raises(function() HT.distractor_words({}, 3, key, 0) end, 'pool of texts is empty')
end)

-- messages whose class is whether 'spam' occurs among their first words, encoded as bags
local vocab = { pad = 0, spam = 2, ham = 3, the = 4, offer = 5 }
local function encode(texts)
  local T = 6
  local ids = lat.zeros({ #texts, T }, 'int32')
  for b, s in ipairs(texts) do
    local t = 0
    for w in s:lower():gmatch('%a+') do
      if t < T then ids.i[(b - 1) * T + t] = vocab[w] or 4; t = t + 1 end
    end
  end
  return ids
end
local Rule = nn.class('Rule')
function Rule:__init() self:add('transformer', nn.Sequential{ { 'wte', nn.Embedding(6, 2, { rng = lat.Generator(1) }) } }) end
function Rule:forward(ids)
  local B, T = ids:size(1), ids:size(2)
  local out = lat.zeros(B, 2)
  for b = 0, B - 1 do
    local s = 0
    for t = 0, T - 1 do if ids.i[b * T + t] == 2 then s = 1 end end
    out.f[b * 2 + s] = 1
  end
  return out
end

H.test('run: clean accuracy, a row per attack and budget, family means, errors', function()
  local texts, labels = {}, {}
  for k = 1, 50 do
    texts[k] = k % 2 == 1 and 'Subject: spam offer\n\nthe offer' or 'Subject: ham\n\nthe ham'
    labels[k] = k % 2
  end
  local identity = { name = 'identity', family = 'none', transform = function(t) return t end }
  local fill = { name = 'fill', family = 'pushout', transform = function(t) return HT.distract(t, 'the the the the') end }
  local r = HT.run(Rule(), { texts = texts, labels = labels }, { identity, fill, HT.spec.typos(1, 3) }, { encode = encode, batch_size = 16 })
  H.near(r.clean_accuracy, 1, 0, 'the rule is right on clean messages')
  H.near(r.accuracy.identity, 1, 0, 'identity attack')
  -- four words pushed in after 'subject', 'spam': still read ('spam' is the second word)
  H.near(r.accuracy.fill, 1, 0, 'inserting after the subject keeps the subject words')
  H.near(r.accuracy['typos_1'], 0.5, 0, 'typos on every word hide "spam": only ham is right')
  H.near(r.robustness, (1 + 1 + 0.5) / 3, 1e-12, 'mean of the family means')
  H.assert(#r.rows == 3 and r.family_order[3] == 'typos' and r.n == 50, 'rows and families')
  H.raises(function() HT.run(Rule(), { texts = texts, labels = { 1 } }, {}, { encode = encode }) end, 'two lists of the same')
  H.raises(function() HT.run(Rule(), { texts = texts, labels = labels }, {}) end, 'opts.encode')
end)

H.test('run with hotflip on a transformer classifier: budgets lower accuracy, never raise it', function()
  local g = lat.Generator(5)
  local B, T = 64, 12
  local model = lat.models.TransformerClassifier{ vocab = 40, max_len = T, dim = 16, heads = 2, layers = 1, classes = 2, pad_id = 0, rng = g }
  -- class 1 iff token 2 appears; trained briefly
  local ids = lat.randint(3, 40, { B, T }, { rng = g }):int()
  local y = lat.zeros({ B }, 'int32')
  for b = 0, B - 1 do
    if b % 2 == 1 then ids.i[b * T + (b % T)] = 2; y.i[b] = 1 end
  end
  local opt = lat.optim.AdamW(model:named_parameters(), { lr = 3e-3 })
  for _ = 1, 150 do
    opt:zero_grad()
    lat.cross_entropy(model(ids), y):backward()
    opt:step()
  end
  local texts, labels = {}, {}
  for b = 0, B - 1 do texts[b + 1], labels[b + 1] = b, y.i[b] end
  local enc = function(rows)
    local out = lat.empty({ #rows, T }, 'int32')
    for k, b in ipairs(rows) do for t = 0, T - 1 do out.i[(k - 1) * T + t] = ids.i[b * T + t] end end
    return out
  end
  local r = HT.run(model, { texts = texts, labels = labels }, { HT.spec.hotflip({ 1, 3 }) }, { encode = enc, batch_size = 32 })
  H.assert(r.clean_accuracy > 0.9, 'the model learnt the rule: ' .. r.clean_accuracy)
  H.assert(r.accuracy.hotflip_1 < r.clean_accuracy, ('one swap lowers accuracy (%.3f vs %.3f)'):format(r.accuracy.hotflip_1, r.clean_accuracy))
  H.assert(r.accuracy.hotflip_3 <= r.accuracy.hotflip_1, 'three swaps do at least as well as one')
end)

H.finish()
