-- gpt2_lat_step.lua: the lat half of gpt2_lat_step.sh: one LAT fine-tuning step of GPT-2 small
-- (124M parameters, random weights, batch 4 x 128 tokens): a 6-step L2 PGD attack on the
-- residual stream after block h.5 (zero start, per-example ball of radius 1, the model in
-- evaluation mode), then a training step on the perturbed loss with AdamW. Prints the seconds of
-- the timed step (after one warm-up step) and the adversarial loss.
--   build/lat tests/bench/gpt2_lat_step.lua [--batch=4] [--len=128] [--steps=6] [--layers=12]
local lat = require 'lat'
local opt = lat.args{ batch = 4, len = 128, steps = 6, site = 'h.5', eps = 1.0, layers = 12, dim = 768, heads = 12, seed = 1 }
local now = require('lat.core.sys').now
local V = 50257
local model = lat.models.GPT{ vocab = V, max_len = 1024, dim = opt.dim, heads = opt.heads, layers = opt.layers,
  activation = 'gelu_new', rng = lat.Generator(opt.seed) }
local batch = { x = lat.randint(0, V, { opt.batch, opt.len }, { rng = lat.Generator(2) }),
                y = lat.randint(0, V, { opt.batch, opt.len }, { rng = lat.Generator(3) }) }
local cfg = {
  model = model,
  optimizer = lat.optim.AdamW(model:named_parameters(), { lr = 1e-5 }),
  loss = lat.train.adversarial{ threat = lat.threat{ where = opt.site, norm = 'l2', eps = opt.eps },
                                attack = { steps = opt.steps, init = 'zero' } },
}
model:train()
local seconds, loss
for i = 1, 2 do
  collectgarbage()
  local t0 = now()
  loss = lat.train.step(cfg, batch)
  seconds = now() - t0
  io.stderr:write(('lat step %d: %.2f s, adversarial loss %.4f\n'):format(i, seconds, loss))
end
print(('%.3f %.4f'):format(seconds, loss))
