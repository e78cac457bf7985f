-- lm_attack.lua: the lat half of the latent-attack speed benchmark (lm_attack.sh): one PGD step
-- on the language model of recipes/train_lm.lua = a forward pass with a perturbation added to
-- the residual stream before a block (a hook), and the gradient with respect to that
-- perturbation alone. Prints the median milliseconds per step.
--   build/lat tests/bench/lm_attack.lua [--repeats=20] [--batch=32] [--len=128] [--block=2]
local lat = require 'lat'
local opt = lat.args{ repeats = 20, batch = 32, len = 128, dim = 128, heads = 4, layers = 4, block = 2, seed = 1 }
local now = require('lat.core.sys').now
local model = lat.models.GPT{ vocab = 258, max_len = opt.len, dim = opt.dim, heads = opt.heads, layers = opt.layers,
  rng = lat.Generator(opt.seed) }
model:eval()
local ids = lat.randint(0, 258, { opt.batch, opt.len }, { rng = lat.Generator(2) })
local y = lat.randint(0, 258, { opt.batch, opt.len }, { rng = lat.Generator(3) })
local delta = lat.zeros(opt.batch, opt.len, opt.dim):requires_grad_()
model:hook('h.' .. (opt.block - 1), function(r) return r + delta end, { pre = true })
local times = {}
for i = 1, opt.repeats + 3 do
  local t0 = now()
  local g = lat.grad(lat.cross_entropy(model(ids), y), delta)
  delta = (delta:detach() + g:mul(1e-3)):requires_grad_() -- a step, so each iteration differs
  if i > 3 then times[#times + 1] = (now() - t0) * 1000 end
end
table.sort(times)
print(('%.3f'):format(times[math.floor((#times + 1) / 2)]))
