-- lat.experiment.lm (the text-generation recipes' shared pieces) and lat.attack.unlikelihood.
local H = require 'harness'
local lat = require 'lat'
local X = require 'lat.experiment.lm'

H.test('unlikelihood: -log(1 - p(label)) averaged over labelled positions only', function()
  local logits = lat.tensor({ { { 0, 0, math.log(2) }, { 1, 0, 0 } }, { { 0, 3, 0 }, { 0, 0, 0 } } }) -- [2, 2, 3]
  local labels = lat.tensor({ { 2, -100 }, { 1, 0 } }, 'int32')
  local function p(row, k)
    local s = 0
    for _, v in ipairs(row) do s = s + math.exp(v) end
    return math.exp(row[k + 1]) / s
  end
  local want = -(math.log(1 - p({ 0, 0, math.log(2) }, 2)) + math.log(1 - p({ 0, 3, 0 }, 1)) + math.log(1 - p({ 0, 0, 0 }, 0))) / 3
  H.near(lat.attack.unlikelihood(logits, labels):item(), want, 1e-5)
  -- the gradient lowers the labelled class's logit and leaves the ignored position alone
  local x = logits:clone():requires_grad_()
  lat.attack.unlikelihood(x, labels):backward()
  H.assert(x.grad.f[2] > 0, 'the labelled logit should have a positive gradient (descent lowers it)')
  for k = 3, 5 do H.near(x.grad.f[k], 0, 0, 'ignored position') end
end)

H.test('sampler: the bad share of each batch comes from the second data set', function()
  local good = lat.data.bytes.lm_dataset(('a'):rep(300), 8, { stride = 1 })
  local bad = lat.data.bytes.lm_dataset(('b'):rep(300), 8, { stride = 1 })
  local b = X.sampler(good, bad, 8, 0.25, lat.Generator(3))()
  H.assert(b.x:size(1) == 8 and b.x:size(2) == 8, 'batch shape')
  for r = 0, 7 do
    local want = r < 6 and 97 or 98
    for t = 0, 7 do H.assert(b.x.i[r * 8 + t] == want, ('row %d holds %d, not %d'):format(r, b.x.i[r * 8 + t], want)) end
  end
  H.assert(X.sampler(good, nil, 4, 0.5, lat.Generator(3))().x:size(1) == 4, 'without bad data every row is good')
end)

H.test('flags: typo loss above the undefended model harms robustness; trojan loss below clean fine-tuning entrenches', function()
  local und = { typo_loss = 2.0, trojan_loss = 1.0 }
  local cft = { typo_loss = 1.9, trojan_loss = 1.5 }
  local rows = { { typo_loss = 2.1, trojan_loss = 1.5 }, { typo_loss = 1.99, trojan_loss = 1.2 }, { typo_loss = 2.01, trojan_loss = 1.49 } }
  X.flags(rows, und, cft, 0.02)
  H.assert(rows[1].flags == 'robustness harmed', rows[1].flags)
  H.assert(rows[2].flags == 'trojan entrenched', rows[2].flags)
  H.assert(rows[3].flags == '', 'within the tolerance: ' .. rows[3].flags)
end)

H.test('mean_sd: sample standard deviation', function()
  local m, sd = X.mean_sd({ { v = 1 }, { v = 2 }, { v = 3 } }, 'v')
  H.near(m, 2, 1e-12)
  H.near(sd, 1, 1e-12)
  local m1, sd1 = X.mean_sd({ { v = 5 } }, 'v')
  H.assert(m1 == 5 and sd1 == 0, 'one row')
end)

H.finish()
