-- Evaluation mode and back: lat.nn.in_eval, and every place in the library that evaluates a
-- model (eval, attack, universal and held-out attacks, summary, generate), gives each module its
-- own mode back, on success and on error.
local H = require 'harness'
local lat = require 'lat'
local nn = lat.nn

-- each module's mode, in modules() order: 't' training, 'e' evaluation
local function modes(m)
  local s = {}
  for i, mod in ipairs(m:modules()) do s[i] = mod.training and 't' or 'e' end
  return table.concat(s)
end

-- an image classifier in training mode with its first layer left in evaluation mode on purpose
local function mixed_mlp()
  local m = lat.models.MLP{ sizes = { 4, 8, 3 }, rng = lat.Generator(1) }
  m:train()
  m.fc1:eval()
  return m
end

local function images(n)
  local g = lat.Generator(2)
  return { x = lat.rand({ n, 1, 2, 2 }, { rng = g }), y = lat.randint(0, 3, { n }, { rng = g }):int() }
end

H.test('in_eval: evaluation mode inside, each mode restored, results and errors passed on', function()
  local m = mixed_mlp()
  local before = modes(m)
  H.assert(before:find('t') and before:find('e'), 'the model has mixed modes: ' .. before)
  local a, b, c, n = nn.in_eval(m, function(x, y)
    H.assert(not modes(m):find('t'), 'every module in evaluation mode inside: ' .. modes(m))
    return x, nil, y, select('#', x, y)
  end, 1, 2)
  H.assert(a == 1 and b == nil and c == 2 and n == 2, 'arguments and results pass through, nils included')
  H.assert(modes(m) == before, 'mixed modes kept: ' .. modes(m) .. ' after, ' .. before .. ' before')
  H.assert(select(2, m:in_eval(function() return 'method', 'form' end)) == 'form', 'model:in_eval is the same')
  local err = H.raises(function() nn.in_eval(m, function() error('deliberate failure', 0) end) end, 'deliberate failure')
  H.assert(err == 'deliberate failure', 'the message is unchanged: ' .. err)
  H.assert(modes(m) == before, 'modes restored after an error: ' .. modes(m))
  local where = H.raises(function() nn.in_eval(m, function() error('at this line') end) end, 'at this line')
  H.assert(where:find('test_eval_mode.lua:%d+: at this line'), 'the position of the error is kept: ' .. where)
  local value = {}
  local ok, got = pcall(nn.in_eval, m, function() error(value) end)
  H.assert(not ok and got == value, 'an error value that is not a string goes on as it is')
  -- a model that is not a lat.nn module: its training field and train/eval methods
  local plain = { training = true }
  function plain:eval() self.training = false; return self end
  function plain:train(mode) self.training = mode ~= false; return self end
  H.assert(nn.in_eval(plain, function() return plain.training end) == false and plain.training, 'a plain model')
end)

H.test('eval, attacks, universal and held-out attacks keep mixed modes, also when they fail', function()
  local m, batch = mixed_mlp(), images(8)
  local before = modes(m)
  local ds = lat.data.TensorDataset(batch)
  local tm = lat.threat{ where = 'act1', eps = 0.5 }
  local HO = lat.eval.heldout
  -- each call starts from the mixed modes, so that each is checked on its own
  local function keeps(what, call, ...)
    m:train()
    m.fc1:eval()
    if select('#', ...) > 0 then H.raises(call, ...) else call() end
    H.assert(modes(m) == before, what .. ': modes ' .. modes(m) .. ', were ' .. before)
  end
  keeps('eval.accuracy', function() lat.eval.accuracy(m, ds) end)
  keeps('eval.each_batch raising', function() lat.eval.each_batch(m, ds, function() error('in the loop', 0) end) end, 'in the loop')
  keeps('attack.pgd', function() lat.attack.pgd(m, batch, tm, { steps = 2 }) end)
  keeps('attack.pgd raising', function()
    lat.attack.pgd(m, batch, tm, { steps = 2, forward = function() error('forward fails', 0) end })
  end, 'forward fails')
  keeps('universal.fit_uap', function() HO.universal.fit_uap(m, ds, { steps = 2, batch_size = 4 }) end)
  keeps('heldout.run', function() HO.run(m, ds, { HO.spec.pgd{ eps = 0.1, steps = 2 }, HO.spec.corruption{ kind = 'blur', severity = 1 } }) end)
  keeps('heldout.target_rate', function() HO.target_rate(m, ds, 0) end)
  keeps('trojan.success_rate', function() lat.trojan.success_rate(m, lat.trojan.patch{ target = 0, size = 1 }, ds) end)
  keeps('summary', function() m:summary(batch.x) end)
  keeps('summary raising', function() m:summary(lat.zeros(2, 5)) end, 'fc1')
end)

H.test('held-out text attacks and GPT:generate keep mixed modes; a failed generation too', function()
  local clf = lat.models.TransformerClassifier{ vocab = 20, max_len = 8, dim = 8, heads = 2, layers = 1, classes = 2,
    rng = lat.Generator(3) }
  clf:train()
  clf.transformer.h:eval()
  local before = modes(clf)
  local HT = lat.eval.heldout_text
  local encode = function(texts)
    local ids = lat.zeros({ #texts, 8 }, 'int32')
    for b, s in ipairs(texts) do for k = 1, math.min(#s, 8) do ids:set(s:byte(k) % 20, b, k) end end
    return ids
  end
  HT.run(clf, { texts = { 'one text', 'another' }, labels = { 0, 1 } }, { HT.spec.typos(0.5) }, { encode = encode, progress = false })
  H.assert(modes(clf) == before, 'heldout_text.run: modes ' .. modes(clf) .. ', were ' .. before)

  local gpt = lat.models.GPT{ vocab = 11, max_len = 6, dim = 8, heads = 2, layers = 2, rng = lat.Generator(4) }
  gpt:train()
  gpt.transformer.h[0]:eval()
  before = modes(gpt)
  local out = gpt:generate({ 1, 2 }, 3)
  H.assert(#out == 3, 'three tokens')
  H.assert(modes(gpt) == before, 'generate: modes ' .. modes(gpt) .. ', were ' .. before)
  local h = gpt:hook('lm_head', function() error('the head fails', 0) end)
  H.raises(function() gpt:generate({ 1, 2 }, 3) end, 'the head fails')
  h.remove()
  H.assert(modes(gpt) == before, 'a failed generation leaves the modes as they were: ' .. modes(gpt) .. ', were ' .. before)
end)

H.finish()
