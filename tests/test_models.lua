-- Model checkpoints (lat.models.save / load), lat.eval, and the crop-and-flip augmentation.
local H = require 'harness'
local lat = require 'lat'
local tmp = os.getenv('LAT_TEST_TMP') or '/tmp'

H.test('a saved model loads back with the same class, options and outputs', function()
  local cases = {
    { lat.models.ResNet{ widths = { 4, 8, 8 }, blocks = { 1, 1, 1 } }, lat.randn(2, 1, 28, 28) },
    { lat.models.GPT{ vocab = 40, max_len = 8, dim = 8, heads = 2, layers = 2 }, lat.randint(0, 40, { 2, 8 }) },
    { lat.models.TransformerClassifier{ vocab = 40, max_len = 8, dim = 8, heads = 2, layers = 1, pad_id = 0 }, lat.randint(0, 40, { 3, 8 }) },
  }
  for i, c in ipairs(cases) do
    local m, x = c[1], c[2]
    m:train(); m(x) -- move the batch-norm statistics away from their initial values
    m:eval()
    local path = ('%s/model_%d.safetensors.zst'):format(tmp, i)
    lat.models.save(m, path, { note = 'test' })
    local back, _, meta = lat.models.load(path)
    H.assert(back.__name == m.__name and meta.note == 'test', 'class and metadata')
    H.near(back(x), m(x), 0, m.__name .. ' outputs')
  end
end)

H.test('loading a checkpoint without a model class is a clear error', function()
  local path = tmp .. '/plain.safetensors'
  lat.save(path, { w = lat.ones(2) })
  H.raises(function() lat.models.load(path) end, path, 'no lat.models class recorded')
end)

H.test('eval.accuracy counts correct predictions and restores the mode', function()
  local m = lat.nn.Linear(2, 2)
  lat.no_grad(function()
    m.weight:copy_(lat.tensor{ { 1, 0 }, { 0, 1 } })
    m.bias:copy_(lat.zeros(2))
  end)
  local x = lat.tensor{ { 2, 1 }, { 0, 3 }, { 5, 4 }, { 1, 2 } }
  local y = lat.tensor({ 0, 1, 1, 1 }, 'int32') -- the third is wrong
  local ds = lat.data.TensorDataset{ x = x, y = y }
  m:train()
  local r = lat.eval.accuracy(m, ds, { batch_size = 3 })
  H.near(r.accuracy, 0.75, 1e-12)
  H.assert(r.n == 4 and m.training, 'count and mode')
  local want = lat.cross_entropy(m(x), y):item()
  H.near(r.loss, want, 1e-6, 'mean loss')
end)

H.test('crop_flip is reproducible per (seed, epoch, step) and moves pixels without inventing any', function()
  local x = lat.rand(8, 1, 28, 28)
  local t = lat.data.augment.crop_flip{ pad = 2, seed = 3 }
  local a = t({ x = x, y = 1 }, { epoch = 1, step = 1 })
  local b = t({ x = x, y = 1 }, { epoch = 1, step = 1 })
  local c = t({ x = x, y = 1 }, { epoch = 1, step = 2 })
  H.near(a.x, b.x, 0, 'same key, same crops')
  H.assert((a.x - c.x):abs():sum():item() > 0, 'another step, other crops')
  H.assert(a.y == 1, 'other fields kept')
  -- every output pixel is zero (padding) or a pixel of the same image
  for img = 0, 7 do
    local seen = {}
    for k = 0, 783 do seen[x.f[img * 784 + k]] = true end
    for k = 0, 783 do
      local v = a.x.f[img * 784 + k]
      H.assert(v == 0 or seen[v], 'pixel from elsewhere')
    end
  end
end)

H.finish()
