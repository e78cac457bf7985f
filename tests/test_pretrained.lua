-- A model trained in PyTorch, LAT in lat, back to PyTorch: tests/pretrained_ref.py trains a small
-- torchvision-layout ResNet on Fashion-MNIST; recipes/pretrained_lat.lua --quick loads it,
-- fine-tunes it with each defence (LAT among them) and writes the checkpoints; PyTorch loads the
-- LAT one with strict=True and gives the logits lat gives.
local H = require 'harness'
local lat = require 'lat'

local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local DIR = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/pretrained'
os.execute(('rm -rf %s && mkdir -p %s'):format(DIR, DIR))
local REF = (debug.getinfo(1, 'S').source:match('^@(.*/)') or './') .. 'pretrained_ref.py'
local function py(args)
  local out = H.run(("LAT_DATA='%s' %s %s %s"):format(require('lat.data.files').root(), PYTHON, REF, args))
  assert(out:find('%[exit 0%]\n$'), 'pretrained_ref.py failed: ' .. out)
end

H.test('trained in PyTorch, LAT-fine-tuned in lat, loaded back by PyTorch with strict=True', function()
  py('train ' .. DIR)
  local start = DIR .. '/torch_resnet.safetensors'
  local out = H.run(("'%s' ../recipes/pretrained_lat.lua --quick --model=%s --out=%s/run"):format(arg[-1], start, DIR))
  H.assert(out:find('%[exit 0%]'), 'pretrained_lat failed:\n' .. out)
  local ckpt = DIR .. '/run/LAT_layer2_0.1_seed=1.safetensors'
  H.assert(H.exists(ckpt), 'no LAT checkpoint in the run folder:\n' .. out)
  local rows = lat.log.read_csv(DIR .. '/run/results.csv')
  H.assert(#rows == 5, ('5 rows (as loaded, clean, RLP, AT, LAT), got %d'):format(#rows))
  H.assert(rows[1].clean_accuracy > 0.5, ('the PyTorch-trained model at %.3f in lat: its weights did not arrive'):format(rows[1].clean_accuracy))

  local before, after = lat.load(start), lat.load(ckpt)
  H.assert((before['layer1.0.conv1.weight'] - after['layer1.0.conv1.weight']):abs():amax():item() > 0, 'LAT changed the weights')
  H.assert(after['bn1.num_batches_tracked']:item() > before['bn1.num_batches_tracked']:item(), 'num_batches_tracked counted on')
  py(('check %s %s'):format(DIR, ckpt))
  local model = lat.models.load(ckpt, { arch = 'resnet' })
  local x = lat.data.fashion_mnist('test'):batch(lat.arange(0, 64, 'int32')).x
  local mine, theirs = model(x), lat.load(DIR .. '/torch_logits.safetensors').logits
  local rel = (mine - theirs):abs():amax():item() / theirs:abs():amax():item()
  H.assert(rel < 1e-4, ('PyTorch and lat disagree on the fine-tuned model by %.3g relative'):format(rel))
end)

H.finish()
