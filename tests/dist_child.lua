-- dist_child.lua: a short training run for test_dist.lua, alone or as each rank under mpirun:
-- an MLP on Gaussian blobs trained with lat.train.fit (AdamW, clipping), then (--lat) fine-tuned
-- with LAT at its first hidden layer. Rank 0 prints one line per step: the phase, the step, the
-- loss and the gradient norm.
--   [mpirun -np 2] lat dist_child.lua --batch=64 [--lat] [--fail_at=3] [--rank_seed]
local lat = require 'lat'
local opt = lat.args{ batch = 64, epochs = 2, lat = false, fail_at = 0, rank_seed = false }

local g = lat.Generator(1)
local n, dim, classes = 512, 8, 4
local x, y = lat.randn({ n, dim }, { rng = g }), lat.empty(n, 'int32')
for i = 0, n - 1 do
  local c = i % classes
  y.i[i] = c
  x.f[i * dim + c] = x.f[i * dim + c] + 2.5
end
local model = lat.models.MLP{ sizes = { dim, 64, 64, classes }, rng = g }
-- --rank_seed: each rank shuffles its own way, so the ranks' global batches differ (an error)
local seed = opt.rank_seed and 7 + lat.dist.rank() or 7
local loader = lat.data.DataLoader(lat.data.TensorDataset{ x = x, y = y }, { batch_size = opt.batch, shuffle = true, seed = seed })

local function report(phase)
  return function(info)
    if opt.fail_at > 0 and info.step == opt.fail_at and lat.dist.rank() == 1 then
      error(('rank 1 fails on purpose at step %d'):format(info.step))
    end
    if lat.dist.is_main() then
      print(('%s %d %.9g %.9g'):format(phase, info.step, info.loss, info.grad_norm or 0))
      io.stdout:flush()
    end
  end
end

local function loss(m, batch)
  local out = m(batch.x)
  return lat.cross_entropy(out, batch.y), { acc = out:argmax(2):eq(batch.y):float():mean() }
end

lat.train.fit{
  model = model, loader = loader, epochs = opt.epochs, loss = loss, clip = 1.0, progress = false,
  optimizer = lat.optim.AdamW(model:named_parameters(), { lr = 0.01 }), on_step = report('train'),
}

if opt.lat then
  lat.train.fit{
    model = model, loader = loader, epochs = 1, clip = 1.0, progress = false,
    loss = lat.train.adversarial{ threat = lat.threat{ where = 'act1', norm = 'l2', eps = 1.0 }, attack = { steps = 3 } },
    optimizer = lat.optim.AdamW(model:named_parameters(), { lr = 1e-3 }), on_step = report('lat'),
  }
end
