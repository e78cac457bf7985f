-- A model trained in PyTorch, LAT in lat, back to PyTorch: tests/pretrained_ref.py trains a small
-- torchvision-layout ResNet on Fashion-MNIST; recipes/pretrained_lat.lua --quick loads it,
-- fine-tunes it with each defence (LAT among them) and writes the checkpoints; PyTorch loads the
-- LAT one with strict=True and gives the logits lat gives. The same for a Hugging Face GPT-2
-- folder (tests/gpt2_ref.py's tiny random GPT-2) with --arch=gpt2.
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

H.test('a Hugging Face GPT-2 folder: fine-tuned with each defence, written back, read by PyTorch with strict=True', function()
  local start = DIR .. '/gpt2'
  os.execute('mkdir -p ' .. start)
  local here = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
  local out = H.run(('%s %sgpt2_ref.py %s tiny'):format(PYTHON, here, start))
  assert(out:find('%[exit 0%]\n$'), 'gpt2_ref.py failed: ' .. out)
  out = H.run(("'%s' ../recipes/pretrained_lat.lua --quick --arch=gpt2 --finetune=512 --batch=16 --ft_lr=0.1 --model=%s --out=%s/run_gpt2"):format(arg[-1], start, DIR))
  H.assert(out:find('%[exit 0%]'), 'pretrained_lat --arch=gpt2 failed:\n' .. out)
  local rows = lat.log.read_csv(DIR .. '/run_gpt2/results.csv')
  H.assert(#rows == 5, ('5 rows (as loaded, clean, RLP, AT, LAT), got %d:\n%s'):format(#rows, out))
  for _, r in ipairs(rows) do
    H.assert(r.clean_loss > 0 and r.clean_loss < 20 and r.attacked_loss >= r.clean_loss - 1e-3,
      ('%s: loss %s, under attack %s'):format(r.name, tostring(r.clean_loss), tostring(r.attacked_loss)))
  end
  H.assert(rows[2].clean_loss < rows[1].clean_loss - 0.1,
    ('clean fine-tuning on Moby Dick lowers the random model\'s validation loss: %.3f -> %.3f'):format(rows[1].clean_loss, rows[2].clean_loss))
  local folder = DIR .. '/run_gpt2/LAT_transformer.h.1_0.1_seed=1'
  H.assert(H.exists(folder .. '/model.safetensors') and H.exists(folder .. '/config.json'), 'no LAT GPT-2 folder:\n' .. out)
  local model = lat.models.gpt2.load(folder)
  local ids = lat.load(start .. '/ids.safetensors').ids
  lat.save(DIR .. '/gpt2_ids.safetensors', { ids = ids })
  out = H.run(([[%s -c "
import sys, json, torch
sys.path.insert(0, '%s')
from gpt2_ref import GPT2LMHeadModel, read_safetensors, write_safetensors
m = GPT2LMHeadModel(json.load(open('%s/config.json'))).eval()
m.load(read_safetensors('%s/model.safetensors')[0])
ids = torch.from_numpy(read_safetensors('%s')[0]['ids']).long()
with torch.no_grad():
    write_safetensors('%s', {'logits': m(ids).numpy()})
"]]):format(PYTHON, here, folder, folder, DIR .. '/gpt2_ids.safetensors', DIR .. '/gpt2_torch_logits.safetensors'))
  H.assert(out:find('%[exit 0%]'), 'PyTorch could not load the fine-tuned GPT-2:\n' .. out)
  local mine, theirs = model(ids), lat.load(DIR .. '/gpt2_torch_logits.safetensors').logits
  local rel = (mine - theirs):abs():amax():item() / theirs:abs():amax():item()
  H.assert(rel < 1e-4, ('PyTorch and lat disagree on the fine-tuned GPT-2 by %.3g relative'):format(rel))
  local before = lat.load(start .. '/model.safetensors')['transformer.h.1.mlp.c_fc.weight']
  H.assert((before - model:state_dict()['transformer.h.1.mlp.c_fc.weight']):abs():amax():item() > 0, 'LAT changed the weights')
end)

H.finish()
