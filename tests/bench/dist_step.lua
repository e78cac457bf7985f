-- dist_step.lua: the lat half of dist_step.sh: median milliseconds of one lat.train.step on a
-- global batch, alone or as a rank under mpirun (each rank then takes its rows and the gradients
-- are averaged: one MPI_Allreduce per step). Rank 0 prints the figure.
--   [mpirun -np 2] build/lat tests/bench/dist_step.lua --model=resnet|gpt [--lat] [--repeats=20]
local lat = require 'lat'
local opt = lat.args{ model = 'resnet', lat = false, repeats = 20 }
local now = require('lat.core.sys').now
local g = lat.Generator(1)
local model, batch
if opt.model == 'resnet' then -- the ResNet of recipes/train_fashion.lua, batch 128
  model = lat.models.ResNet{ widths = { 16, 32, 64 }, blocks = { 2, 2, 2 }, rng = g }
  batch = { x = lat.rand({ 128, 1, 28, 28 }, { rng = g }), y = lat.randint(0, 10, { 128 }, { rng = g }) }
elseif opt.model == 'gpt' then -- the GPT of recipes/train_lm.lua, batch 32 x 128 tokens
  model = lat.models.GPT{ vocab = 258, max_len = 128, dim = 128, heads = 4, layers = 4, rng = g }
  batch = { x = lat.randint(0, 258, { 32, 128 }, { rng = g }), y = lat.randint(0, 258, { 32, 128 }, { rng = g }) }
else
  error("--model must be 'resnet' or 'gpt'")
end
local loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end
if opt.lat then -- LAT at the first block's output, 3 PGD steps
  local where = opt.model == 'resnet' and 'layer1' or 'h.0'
  loss = lat.train.adversarial{ threat = lat.threat{ where = where, eps = 1.0 }, attack = { steps = 3 } }
end
local cfg = { model = model, loss = loss, optimizer = lat.optim.AdamW(model:named_parameters(), { lr = 1e-3 }) }
model:train()
local times = {}
for i = 1, opt.repeats + 3 do
  local t0 = now()
  lat.train.step(cfg, batch)
  if i > 3 then times[#times + 1] = (now() - t0) * 1000 end
end
table.sort(times)
if lat.dist.is_main() then print(('%.2f'):format(times[math.floor((#times + 1) / 2)])) end
