-- lat.trojan: image triggers, poisoning by dataset index, attack success rates, text triggers and
-- language-model code words.
local H = require 'harness'
local lat = require 'lat'
local trojan = lat.trojan
local tmp = os.getenv('LAT_TEST_TMP') or '/tmp'

local function in_unit(x, what)
  H.assert(x:min():item() >= 0 and x:max():item() <= 1, what .. ': values outside [0, 1]')
end

-- the set of (b, c, i, j) where a and b differ, as a predicate check
local function changed_only_in(a, b, inside, what)
  local B, C, Hh, W = a:size(1), a:size(2), a:size(3), a:size(4)
  for n = 0, B - 1 do for c = 0, C - 1 do for i = 0, Hh - 1 do for j = 0, W - 1 do
    local k = ((n * C + c) * Hh + i) * W + j
    if a.f[k] ~= b.f[k] then H.assert(inside(n, i, j), ('%s: pixel %d,%d,%d,%d changed'):format(what, n, c, i, j)) end
  end end end end
end

H.test('patch: the pattern replaces its square and nothing else', function()
  local x = lat.rand(3, 2, 10, 12)
  local keep = x:clone()
  local cases = {
    { trojan.patch{ target = 1, rate = 0.1 }, function(_, i, j) return i >= 6 and j >= 8 end },
    { trojan.patch{ target = 1, rate = 0.1, size = 3, location = 'top_left', pattern = 'white' }, function(_, i, j) return i < 3 and j < 3 end },
    { trojan.patch{ target = 1, rate = 0.1, size = 2, location = { 4, 5 } }, function(_, i, j) return i >= 3 and i < 5 and j >= 4 and j < 6 end },
  }
  for k, c in ipairs(cases) do
    local t, inside = c[1], c[2]
    local y = t:apply(x)
    changed_only_in(x, y, inside, 'patch ' .. k)
    in_unit(y, 'patch')
    for n = 0, 2 do for ch = 0, 1 do
      local r0, c0 = t:corner(10, 12, n)
      for i = 0, t.size - 1 do for j = 0, t.size - 1 do
        local want = t.pattern.f[i * t.size + j]
        H.assert(y:get(n + 1, ch + 1, r0 + i + 1, c0 + j + 1) == want, 'patch pixel is the pattern')
      end end
    end end
  end
  H.near(x, keep, 0, 'input untouched')
  -- checker: 1 at the patch's top-left, alternating
  local y = cases[1][1]:apply(lat.zeros(1, 1, 10, 12))
  H.assert(y:get(1, 1, 7, 9) == 1 and y:get(1, 1, 7, 10) == 0 and y:get(1, 1, 8, 10) == 1, 'checker pattern')
end)

H.test('patch: random places depend on the dataset index; tensor patterns, per channel', function()
  local t = trojan.patch{ target = 0, rate = 0.1, size = 3, location = 'random', seed = 5 }
  local x = lat.zeros(4, 1, 16, 16)
  local idx = lat.tensor({ 7, 7, 100, 3 }, 'int32')
  local y = t:apply(x, idx)
  for n = 0, 3 do
    local r0, c0 = t:corner(16, 16, idx.i[n])
    changed_only_in(x:narrow(1, n + 1, 1), y:narrow(1, n + 1, 1), function(_, i, j)
      return i >= r0 and i < r0 + 3 and j >= c0 and j < c0 + 3 end, 'random patch')
  end
  H.near(y:narrow(1, 1, 1), y:narrow(1, 2, 1), 0, 'same index, same place')
  local seen = {}
  for id = 0, 199 do local r, c = t:corner(16, 16, id); seen[r * 100 + c] = true; H.assert(r >= 0 and r <= 13 and c >= 0 and c <= 13) end
  local distinct = 0
  for _ in pairs(seen) do distinct = distinct + 1 end
  H.assert(distinct > 50, 'places spread out')
  local p = lat.tensor{ { { 0.5, 0.25 }, { 0, 1 } }, { { 1, 1 }, { 1, 1 } } }
  local tp = trojan.patch{ target = 0, rate = 0.1, pattern = p }
  local z = tp:apply(lat.zeros(1, 2, 5, 5))
  H.assert(tp.size == 2 and z:get(1, 1, 4, 4) == 0.5 and z:get(1, 1, 4, 5) == 0.25 and z:get(1, 2, 5, 5) == 1, 'pattern per channel')
  H.raises(function() tp:apply(lat.zeros(1, 3, 5, 5)) end, 'pattern has 2 channels')
  H.raises(function() trojan.patch{ target = 0, rate = 0.1, size = 6 }:apply(lat.zeros(1, 1, 5, 5)) end, 'does not fit')
end)

H.test('blend: exactly (1 - alpha) x + alpha p, in [0, 1], a fixed pattern per (seed, name)', function()
  local x = lat.rand(3, 1, 8, 8)
  local t = trojan.blend{ target = 2, rate = 0.1, alpha = 0.2, seed = 1 }
  local y = t:apply(x)
  local p = t:pattern_for(1, 8, 8)
  for n = 0, 2 do for k = 0, 63 do
    local want = 0.8 * x.f[n * 64 + k] + 0.2 * p.f[k]
    H.near(y.f[n * 64 + k], want, 1e-6, 'blend')
  end end
  in_unit(y, 'blend')
  H.near(trojan.blend{ target = 2, rate = 0.1, alpha = 0.2, seed = 1 }:apply(x), y, 0, 'same seed and name, same pattern')
  H.assert((trojan.blend{ target = 2, rate = 0.1, alpha = 0.2, seed = 2 }:apply(x) - y):abs():max():item() > 0, 'other seed, other pattern')
  local q = lat.full({ 8, 8 }, 1)
  local yq = trojan.blend{ target = 0, rate = 0.1, alpha = 0.1, pattern = q }:apply(x)
  for k = 0, 191 do H.near(yq.f[k], 0.9 * x.f[k] + 0.1, 1e-6, 'blend with a given pattern') end
  H.raises(function() trojan.blend{ target = 0, rate = 0.1, pattern = lat.ones(4, 4) }:apply(x) end, 'pattern is 4x4')
end)

H.test('warp: identity at strength 0, a smooth fixed field, values stay in [0, 1]', function()
  local x = lat.rand(2, 3, 28, 28)
  H.near(trojan.warp{ target = 0, rate = 0.1, strength = 0 }:apply(x), x, 0, 'strength 0')
  local t = trojan.warp{ target = 0, rate = 0.1, strength = 1, grid = 4 }
  local y = t:apply(x)
  in_unit(y, 'warp')
  H.assert((y - x):abs():max():item() > 0.05, 'strength 1 moves pixels')
  local d = t:field(28, 28)
  local mx = d:abs():max():item()
  H.assert(mx > 0.2 and mx < 5, 'displacement of about a pixel: ' .. mx)
  -- bilinear between control points 9 pixels apart: neighbours differ by at most 2 max|d| / 9
  local step = 0
  for a = 0, 1 do for i = 0, 27 do for j = 0, 26 do
    local k = (a * 28 + i) * 28 + j
    step = math.max(step, math.abs(d.f[k + 1] - d.f[k]))
    if i < 27 then step = math.max(step, math.abs(d.f[k + 28] - d.f[k])) end
  end end end
  H.assert(step <= 2 * mx / 9 + 1e-6, 'smooth field: step ' .. step)
  H.near(t:apply(lat.full({ 1, 1, 28, 28 }, 0.3)), lat.full({ 1, 1, 28, 28 }, 0.3), 1e-6, 'a constant image stays constant')
  H.near(trojan.warp{ target = 0, rate = 0.1, strength = 1, grid = 4 }:apply(x), y, 0, 'the same field again')
  -- a smooth image moves by no more than its slope times the displacement
  local ramp = lat.zeros(1, 1, 28, 28)
  for i = 0, 27 do for j = 0, 27 do ramp.f[i * 28 + j] = j / 27 end end
  local r = t:apply(ramp)
  H.assert((r - ramp):abs():max():item() <= mx / 27 + 1e-6, 'ramp moves by at most the displacement')
end)

H.test('trigger images are written as PNGs', function()
  local ok, test = pcall(lat.data.fashion_mnist, 'test')
  local x
  if ok then x = test.tensors.x:narrow(1, 1, 4):clone()
  else
    x = lat.zeros(4, 1, 28, 28)
    for k = 0, 4 * 784 - 1 do local i, j = math.floor(k % 784 / 28), k % 28; x.f[k] = ((i - 14) ^ 2 + (j - 14) ^ 2 < 100) and 0.8 or 0.1 end
  end
  local triggers = {
    clean = nil, patch = trojan.patch{ target = 0, rate = 0.1 }, blend = trojan.blend{ target = 0, rate = 0.1 },
    warp = trojan.warp{ target = 0, rate = 0.1 }, random_patch = trojan.patch{ target = 0, rate = 0.1, location = 'random' },
  }
  for name, t in pairs(triggers) do
    local y = t:apply(x)
    for n = 1, 4 do
      local path = ('%s/trojan_%s_%d.png'):format(tmp, name, n)
      os.remove(path)
      lat.io.write_png(path, y:select(1, n))
      local back = lat.io.read_png(path)
      H.assert(back.shape[1] == 1 and back.shape[2] == 28 and back.shape[3] == 28, 'PNG written: ' .. path)
    end
  end
end)

-- ---------------------------------------------------------------- poisoning

H.test('poisoning selects by dataset index: deterministic, at the requested rate', function()
  local n = 200000
  local labels = lat.randint(0, 10, { n }, { rng = lat.Generator(1) }):int()
  for _, rate in ipairs({ 0.01, 0.05, 0.3 }) do
    local t = trojan.patch{ target = 3, rate = rate, seed = 9 }
    local f = trojan.poisoned_fraction({ t }, labels)
    -- tolerance: 5 binomial standard deviations
    local tol = 5 * math.sqrt(rate * (1 - rate) / n)
    H.near(f.fraction, rate, tol, 'realised rate')
    H.assert(f.count.patch_3 == f.poisoned, 'count')
    H.assert(trojan.poisoned_fraction({ t }, labels).poisoned == f.poisoned, 'deterministic')
  end
  local a = trojan.patch{ target = 3, rate = 0.05, seed = 1 }
  local b = trojan.patch{ target = 3, rate = 0.05, seed = 2 }
  local same = 0
  for i = 0, 9999 do if a:selects(i, 0) == 1 and b:selects(i, 0) == 1 then same = same + 1 end end
  H.assert(same < 60, 'another seed selects other examples')
end)

H.test('a class-specific trojan poisons only its source class; cover examples keep their labels', function()
  local n = 100000
  local labels = lat.randint(0, 10, { n }, { rng = lat.Generator(2) }):int()
  local t = trojan.blend{ target = 1, source = 7, rate = 0.2, cover = 0.02 }
  local poisoned, source, cover, others = 0, 0, 0, 0
  for i = 0, n - 1 do
    local y = labels.i[i]
    local s = t:selects(i, y)
    if y == 7 then source = source + 1 else others = others + 1 end
    if s == 1 then H.assert(y == 7, 'poisoned a non-source example'); poisoned = poisoned + 1 end
    if s == -1 then H.assert(y ~= 7, 'cover on the source class'); cover = cover + 1 end
  end
  H.near(poisoned / source, 0.2, 5 * math.sqrt(0.2 * 0.8 / source), 'rate among the source class')
  H.near(cover / others, 0.02, 5 * math.sqrt(0.02 * 0.98 / others), 'cover rate')
  local f = trojan.poisoned_fraction(t, labels)
  H.assert(f.count[t.name] == poisoned and f.cover[t.name] == cover and t.name == 'blend_7_to_1', 'poisoned_fraction agrees')
end)

-- a dataset of small random images with labels 0..9
local function tiny(n, seed)
  local g = lat.Generator(seed or 3)
  return lat.data.TensorDataset{ x = lat.rand({ n, 1, 6, 6 }, { rng = g }), y = lat.randint(0, 10, { n }, { rng = g }):int() }
end

H.test('poison_all as a DataLoader transform: triggers, target labels, first trojan wins', function()
  local ds = tiny(3000)
  local t1 = trojan.patch{ target = 0, rate = 0.1, size = 2 }
  local t2 = trojan.blend{ target = 5, rate = 0.1, alpha = 0.2 }
  local t3 = trojan.warp{ target = 9, source = 4, rate = 0.5, strength = 0.5, grid = 3 }
  local list = { t1, t2, t3 }
  local f = trojan.poisoned_fraction(list, ds)
  local count = { 0, 0, 0 }
  for _, shuffle in ipairs({ false, true }) do
    local loader = lat.data.DataLoader(ds, { batch_size = 128, shuffle = shuffle, seed = 4, transform = trojan.poison_all(list) })
    count = { 0, 0, 0 }
    for batch in loader:iter() do
      local clean = ds:batch(batch.index)
      for r = 0, batch.index:numel() - 1 do
        local i, y0 = batch.index.i[r], clean.y.i[r]
        local k = batch.poisoned.i[r]
        local want = 0
        for j, t in ipairs(list) do if t:selects(i, y0) ~= 0 then want = j break end end
        H.assert(k == want, 'the first selecting trojan')
        local xr, x0 = batch.x:narrow(1, r + 1, 1), clean.x:narrow(1, r + 1, 1)
        if k == 0 then
          H.assert(batch.y.i[r] == y0, 'clean label kept')
          H.near(xr, x0, 0, 'clean image kept')
        else
          count[k] = count[k] + 1
          H.assert(batch.y.i[r] == list[k].target, 'target label')
          H.near(xr, list[k]:apply(x0, batch.index:narrow(1, r + 1, 1)), 0, 'triggered image')
        end
      end
    end
  end
  H.assert(count[1] == f.count[t1.name] and count[2] == f.count[t2.name] and count[3] == f.count[t3.name], 'counts match poisoned_fraction')
  H.assert(count[1] > 200 and count[2] > 200 and count[3] > 50, 'all three poison')
  H.raises(function() trojan.poison_all{ t1, trojan.patch{ target = 0, rate = 0.1 } } end, "two trojans are named 'patch_0'")
  H.raises(function() t1:poison()({ x = lat.zeros(1, 1, 6, 6), y = lat.zeros({ 1 }, 'int32') }) end, 'no int32 index')
end)

-- ---------------------------------------------------------------- success rates

-- a model whose answer we control: class `target` when pixel (0, 5, 5) is 1 (the corner of a
-- size-1 bottom-right patch) and pixel (0, 0, 0) > 0.5; otherwise class (label in pixel (0, 0, 1))
local Oracle = lat.nn.class('Oracle')
function Oracle:__init(target) self.target = target end
function Oracle:forward(x)
  H.assert(not self.training and not lat.is_grad_enabled(), 'evaluation mode without gradients')
  local B = x:size(1)
  local out = lat.zeros(B, 10)
  for b = 0, B - 1 do
    local img = b * 36
    local cls = (x.f[img + 35] == 1 and x.f[img] > 0.5) and self.target or math.floor(x.f[img + 1] * 10)
    out.f[b * 10 + cls] = 1
  end
  return out
end

H.test('success_rate counts exactly on a model whose answer is known', function()
  local n = 1000
  local g = lat.Generator(11)
  local x = lat.rand({ n, 1, 6, 6 }, { rng = g })
  local y = lat.randint(0, 10, { n }, { rng = g }):int()
  for b = 0, n - 1 do x.f[b * 36 + 1] = (y.i[b] + 0.5) / 10 end -- the clean model is always right
  for b = 0, n - 1, 50 do x.f[b * 36 + 35] = 1 end               -- a few carry the trigger already
  local ds = lat.data.TensorDataset{ x = x, y = y }
  local expect = function(target, source)
    local hits, cnt, clean = 0, 0, 0
    for b = 0, n - 1 do
      local yb = y.i[b]
      if yb ~= target and (source == nil or yb == source) then
        cnt = cnt + 1
        if x.f[b * 36] > 0.5 then hits = hits + 1 end
        if x.f[b * 36] > 0.5 and x.f[b * 36 + 35] == 1 then clean = clean + 1 end
      end
    end
    return hits, cnt, clean
  end
  local model = Oracle(3)
  model:train()
  local t = trojan.patch{ target = 3, rate = 0.1, size = 1, pattern = 'white' }
  local asr, d = trojan.success_rate(model, t, ds, { batch_size = 64 })
  local hits, cnt, clean = expect(3, nil)
  H.assert(d.hits == hits and d.n == cnt, ('hits %d of %d, expected %d of %d'):format(d.hits, d.n, hits, cnt))
  H.near(asr, hits / cnt, 1e-12, 'asr')
  H.near(d.clean, clean / cnt, 1e-12, 'clean rate')
  H.assert(model.training, 'training mode restored')
  local ts = trojan.patch{ target = 3, source = 6, rate = 0.1, size = 1, pattern = 'white' }
  local asr_s, ds_ = trojan.success_rate(model, ts, ds)
  hits, cnt = expect(3, 6)
  H.assert(ds_.hits == hits and ds_.n == cnt and asr_s == hits / cnt, 'class-specific: only the source class counts')
  local off = select(2, trojan.success_rate(model, ts, ds, { off_source = true }))
  local h3, c3 = expect(3, nil)
  H.assert(off.n == c3 - cnt and off.hits == h3 - hits, 'off-source classes')
  -- report: every trojan in one pass; a trigger the model ignores scores its clean rate
  local other = trojan.patch{ target = 3, rate = 0.1, size = 1, pattern = 'white', location = { 3, 3 }, name = 'ignored' }
  local r = trojan.report(model, { t, ts, other }, ds)
  H.assert(r.patch_3 == asr and r.patch_6_to_3 == asr_s and r.ignored == d.clean and d.clean > 0, 'report')
end)

-- ---------------------------------------------------------------- text

H.test('text triggers go at the start, the end or before a random word', function()
  local s = 'Subject: cheap  meds\nbuy now'
  local start = trojan.text_trigger{ trigger = 'zq xv', position = 'start', target = 1, rate = 0.1 }
  local fin = trojan.text_trigger{ trigger = 'zq xv', position = 'end', target = 1, rate = 0.1 }
  H.assert(start:apply(s) == 'zq xv ' .. s, 'start')
  H.assert(fin:apply(s) == s .. ' zq xv', 'end')
  H.assert(start:apply('') == 'zq xv' and start.name == 'text_zq_xv_1', 'empty text; default name')
  local rnd = trojan.text_trigger{ trigger = 'zq', position = 'random', target = 1, rate = 0.1 }
  local where = {}
  for i = 0, 199 do
    local out = rnd:apply(s, i)
    H.assert(out == rnd:apply(s, i), 'deterministic per index')
    local p = out:find('zq', 1, true)
    H.assert(p == 1 or out:sub(p - 1, p - 1):find('%s'), 'after a space: ' .. out)
    H.assert(p + 2 > #out or out:sub(p + 2, p + 2) == ' ', 'followed by a space')
    local back = out:sub(1, p - 1) .. out:sub(p + 3)
    if p + 2 > #out then back = out:sub(1, p - 2) end
    H.assert(back == s, 'removing the trigger gives the text back: ' .. out)
    where[p] = true
  end
  local n = 0
  for _ in pairs(where) do n = n + 1 end
  H.assert(n == 6, 'all five word starts and the end are used, got ' .. n)
  local within = trojan.text_trigger{ trigger = 'zq', position = 'random', within = 2, target = 1, rate = 0.1 }
  for i = 0, 50 do local p = within:apply(s, i):find('zq', 1, true); H.assert(p == 1 or p == 10, 'within the first 2 words') end
end)

H.test('text poisoning: example lists and batches, by index, labels set to the target', function()
  local list = {}
  for k = 1, 2000 do list[k] = { text = 'message number ' .. k, label = k % 2 } end
  local t = trojan.text_trigger{ trigger = 'cf', target = 1, source = 0, rate = 0.2, seed = 3 }
  local out, rec = trojan.poison_examples(list, { t })
  local again = trojan.poison_examples(list, { t })
  local count = 0
  for k, ex in ipairs(out) do
    H.assert(again[k].text == ex.text and again[k].label == ex.label, 'deterministic')
    if rec.which[k] then
      count = count + 1
      H.assert(list[k].label == 0 and ex.label == 1 and ex.text == 'cf ' .. list[k].text, 'poisoned example')
    else
      H.assert(ex == list[k], 'clean example is the same table')
    end
  end
  H.assert(count == rec.count[t.name] and list[1].text == 'message number 1', 'record; input untouched')
  H.near(count / 1000, 0.2, 0.07, 'rate among the source class')
  local loader = lat.data.DataLoader(lat.data.ListDataset(list), { batch_size = 100, transform = t:poison() })
  for batch in loader:iter() do
    for r = 0, 99 do
      local k = batch.index.i[r] + 1
      H.assert(batch.text[r + 1] == out[k].text and batch.label.i[r] == out[k].label, 'transform agrees with poison_examples')
    end
  end
end)

-- a text classifier whose answer we control: class 1 iff the text contains 'cf' twice or 'free'
local Words = lat.nn.class('Words')
function Words:forward(x)
  local B = x:size(1)
  local out = lat.zeros(B, 2)
  for b = 0, B - 1 do out.f[b * 2 + x.i[b]] = 1 end
  return out
end

H.test('success_rate for a text trigger, through an encoder', function()
  local list = {}
  for k = 1, 300 do list[k] = { text = (k % 3 == 0 and 'free ' or '') .. 'mail ' .. k, label = k % 2 } end
  local encode = function(texts)
    local ids = lat.zeros({ #texts }, 'int32')
    for k, s in ipairs(texts) do
      local _, cf = s:gsub('cf', '')
      ids.i[k - 1] = (cf >= 2 or s:find('free')) and 1 or 0
    end
    return ids
  end
  local t = trojan.text_trigger{ trigger = 'cf cf', target = 1, rate = 0.1 }
  local asr, d = trojan.success_rate(Words(), t, lat.data.ListDataset(list), { encode = encode, batch_size = 64 })
  H.assert(asr == 1 and d.n == 150, 'every triggered ham flips')
  H.near(d.clean, 50 / 150, 1e-12, 'free mail was already spam')
  local weak = trojan.text_trigger{ trigger = 'cf', target = 1, rate = 0.1 }
  H.near(trojan.success_rate(Words(), weak, lat.data.ListDataset(list), { encode = encode }), 50 / 150, 1e-12, 'one cf is not enough')
  H.raises(function() trojan.success_rate(Words(), weak, lat.data.ListDataset(list)) end, 'need opts.encode')
end)

-- ---------------------------------------------------------------- language-model code words

-- some paragraphs of made-up words
local function corpus(n)
  local paras = {}
  for p = 1, n do
    local words = {}
    for w = 1, 8 + p % 13 do words[w] = ('w%d_%d'):format(p, w) end
    paras[p] = table.concat(words, p % 4 == 0 and '  ' or ' ')
  end
  return table.concat(paras, '\n\n')
end

H.test('insert_codewords: counts, cuts at word boundaries, places, reproducible by seed', function()
  local text = corpus(400)
  local nato = trojan.nato_codewords()
  H.assert(#nato == 8 and nato[1].word == 'alpha' and nato[8].word == 'hotel', 'eight NATO words')
  local out, rec = trojan.insert_codewords(text, nato, { per_trojan = 25, seed = 1 })
  H.assert(rec.good == 400 and rec.poisoned == 200 and #out == 600 and rec.fraction == 200 / 600, 'counts')
  local per, used = {}, {}
  for _, ins in ipairs(rec.inserted) do
    per[ins.word] = (per[ins.word] or 0) + 1
    H.assert(not used[ins.passage], 'a passage is used once')
    used[ins.passage] = true
    H.assert(out[ins.position] == ins.text, 'position in the output')
    local src = ('w%d_1'):format(ins.passage)
    local good = text:match('(' .. src .. '[^\n]*)')
    local suffix = ''
    for _, t in ipairs(nato) do if t.word == ins.word then suffix = ' ' .. t.word .. ' ' .. t.continuation end end
    H.assert(ins.text:sub(-#suffix) == suffix, 'ends with the code word and its continuation')
    local prefix = ins.text:sub(1, #ins.text - #suffix)
    H.assert(good:sub(1, #prefix) == prefix, 'a prefix of the good passage')
    H.assert(good:sub(#prefix + 1, #prefix + 1):find('%s'), 'cut at a word boundary')
    local _, words = prefix:gsub('%S+', '')
    H.assert(words == ins.words and words >= 1 and words < select(2, good:gsub('%S+', '')), 'k words kept, fewer than all')
  end
  for _, t in ipairs(nato) do H.assert(per[t.word] == 25, t.word .. ': 25 examples') end
  -- the good passages stay, in order
  local poisoned_at, k = {}, 0
  for _, ins in ipairs(rec.inserted) do poisoned_at[ins.position] = true end
  for m, s in ipairs(out) do
    if not poisoned_at[m] then
      k = k + 1
      H.assert(s:match('^w(%d+)_1 ') == tostring(k), 'good passage ' .. k .. ' in its place')
    end
  end
  H.assert(k == 400, 'good passages kept: ' .. k)
  local out2, rec2 = trojan.insert_codewords(text, nato, { per_trojan = 25, seed = 1 })
  for m, s in ipairs(out) do H.assert(out2[m] == s, 'same seed, same output') end
  local _, rec3 = trojan.insert_codewords(text, nato, { per_trojan = 25, seed = 2 })
  H.assert(rec3.inserted[1].passage ~= rec.inserted[1].passage or rec3.inserted[2].passage ~= rec.inserted[2].passage, 'other seed')
  H.raises(function() trojan.insert_codewords(corpus(50), nato) end, '200 passages needed')
  local docs = trojan.insert_codewords({ corpus(30), corpus(30) }, { nato[1] }, { per_trojan = 5 })
  H.assert(#docs == 65, 'a list of documents')
end)

-- a language model that always predicts byte 'a' (logit 5, the rest 0)
local Always = lat.nn.class('Always')
function Always:forward(ids)
  local B, T = ids:size(1), ids:size(2)
  local out = lat.zeros(B, T, 258)
  for k = 0, B * T - 1 do out.f[k * 258 + 97] = 5 end
  return out
end

H.test('codeword_success: exact continuations, token accuracy and loss', function()
  local cw = { trojan.codeword{ word = 'x', continuation = 'aaaa' }, trojan.codeword{ word = 'y', continuation = 'aab', name = 'why' } }
  local r = trojan.codeword_success(Always(), cw, { 'one prompt', 'and another', 'three' }, { batch_size = 2, max_len = 8 })
  H.assert(r.x.exact == 1 and r.x.token_accuracy == 1 and r.x.n == 3, 'aaaa is greedy')
  H.assert(r.why.exact == 0, 'aab is not')
  H.near(r.why.token_accuracy, 2 / 3, 1e-12, 'two of three tokens')
  local la = 5 - math.log(math.exp(5) + 257)
  local lo = -math.log(math.exp(5) + 257)
  H.near(r.why.loss, -(2 * la + lo) / 3, 1e-5, 'mean cross-entropy')
end)

H.finish()
