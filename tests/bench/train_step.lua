-- train_step.lua: the lat half of train_step.sh: median milliseconds of one training step
-- (forward, cross-entropy, backward, SGD update) of the GPT of recipes/train_lm.lua (batch
-- 32 x 128 tokens) or the ResNet of recipes/train_fashion.lua (batch 128).
--   build/lat tests/bench/train_step.lua --model=gpt|resnet [--repeats=10]
local lat = require 'lat'
local opt = lat.args{ model = 'gpt', repeats = 10 }
local now = require('lat.core.sys').now
local m, x, y
if opt.model == 'gpt' then
  m = lat.models.GPT{ vocab = 258, max_len = 128, dim = 128, heads = 4, layers = 4 }
  x, y = lat.randint(0, 258, { 32, 128 }), lat.randint(0, 258, { 32, 128 })
elseif opt.model == 'resnet' then
  m = lat.models.ResNet{ widths = { 16, 32, 64 }, blocks = { 2, 2, 2 } }
  x, y = lat.rand(128, 1, 28, 28), lat.randint(0, 10, { 128 })
else
  error("--model must be 'gpt' or 'resnet'")
end
local sgd = lat.optim.SGD(m:parameters(), { lr = 0.01 })
local times = {}
for i = 1, opt.repeats + 3 do
  local t0 = now()
  sgd:zero_grad()
  lat.cross_entropy(m(x), y):backward()
  sgd:step()
  if i > 3 then times[#times + 1] = (now() - t0) * 1000 end
end
table.sort(times)
print(('%.2f'):format(times[math.floor((#times + 1) / 2)]))
