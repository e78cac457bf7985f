-- torchvision's resnet18 in lat: its state_dict, written by PyTorch (tests/torchvision_ref.py,
-- random weights and batch-norm statistics, int64 num_batches_tracked), loads by name into
-- lat.models.load(path, {arch = 'resnet18'}) with nothing missing or unexpected and gives the same
-- logits in eval mode; lat's save of it loads back into torchvision with strict=True and gives
-- them again; a wrong architecture, a renaming map and non-strict loading report every problem.
local H = require 'harness'
local lat = require 'lat'

local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local DIR = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/torchvision'
os.execute(('rm -rf %s && mkdir -p %s'):format(DIR, DIR))
local REF = (debug.getinfo(1, 'S').source:match('^@(.*/)') or './') .. 'torchvision_ref.py'
local function ref()
  local out = H.run(('%s %s %s'):format(PYTHON, REF, DIR))
  assert(out:find('%[exit 0%]\n$'), 'torchvision_ref.py failed: ' .. out)
end
ref()
local PATH = DIR .. '/resnet18.safetensors'
local x = lat.load(DIR .. '/input.safetensors').x
local want = lat.load(DIR .. '/logits.safetensors').logits
local function rel(a, b) return (a - b):abs():amax():item() / b:abs():amax():item() end

H.test("torchvision's resnet18 loads by name and gives its logits", function()
  local model, report = lat.models.load(PATH, { arch = 'resnet18' })
  H.assert(#report.missing == 0 and #report.unexpected == 0 and #report.mismatched == 0, 'a clean report')
  local n = 0
  for _ in pairs(lat.load(PATH)) do n = n + 1 end
  local own = 0
  for _ in pairs(model:state_dict()) do own = own + 1 end
  H.assert(n == 122 and own == 122, ('122 tensors each side, got %d in the file and %d in lat'):format(n, own))
  H.assert(model.layer1[0].bn1.num_batches_tracked:item() == 3, 'num_batches_tracked read from int64')
  local got = model(x)
  H.assert(rel(got, want) < 1e-4, ('logits differ by %.3g relative'):format(rel(got, want)))
end)

H.test('lat saves it back for torchvision (strict=True) with the same logits', function()
  local model = lat.models.load(PATH, { arch = 'resnet18' })
  lat.save(DIR .. '/lat_resnet18.safetensors', model:state_dict())
  ref()
  local back = lat.load(DIR .. '/roundtrip.safetensors').logits
  H.assert(rel(back, model(x)) < 1e-5, ('torch on lat\'s file differs by %.3g'):format(rel(back, model(x))))
end)

H.test('every problem is reported, strict raises with all of them, the model untouched', function()
  local ok, err = pcall(lat.models.load, PATH, { arch = 'resnet34' })
  H.assert(not ok, 'resnet34 from resnet18 weights must fail')
  err = tostring(err)
  H.assert(err:find('resnet18.safetensors', 1, true) and err:find("missing 'layer1.2.conv1.weight'", 1, true)
    and err:find("missing 'layer4.2.bn2.num_batches_tracked'", 1, true), 'names the file and each missing key: ' .. err:sub(1, 300))
  local small = lat.models.ResNet{ widths = { 64, 128, 256, 512 }, blocks = { 2, 2, 2, 2 }, channels = 3, classes = 1000 }
  local before = small.conv1.weight:clone()
  local _, report = pcall(small.load_state_dict, small, lat.load(PATH))
  H.assert(not _, 'a 3x3 stem cannot take a 7x7 conv1')
  H.near(small.conv1.weight, before, 0, 'strict failure leaves the model as it was')
  local _, rep = small:load_state_dict(lat.load(PATH), false)
  H.assert(#rep.mismatched == 1 and rep.mismatched[1]:find("'conv1.weight'", 1, true), 'one mismatch: conv1.weight')
  H.assert(#rep.missing == 0 and #rep.unexpected == 0, 'nothing else')
  H.near(small.fc.weight, lat.load(PATH)['fc.weight'], 0, 'what matches is loaded')
end)

H.test('a map renames keys of architectures lat does not name', function()
  local file = lat.load(PATH)
  local prefixed = {}
  for k, v in pairs(file) do prefixed['backbone.' .. k] = v end
  lat.save(DIR .. '/prefixed.safetensors', prefixed)
  local model = lat.models.load(DIR .. '/prefixed.safetensors', { arch = 'resnet18', map = function(name) return name:gsub('^backbone%.', '') end })
  H.assert(rel(model(x), want) < 1e-4, 'same logits through a function map')
  local tbl = {}
  for k in pairs(file) do tbl['backbone.' .. k] = k end
  tbl['backbone.fc.bias'] = false
  local _, rep = lat.models.load(DIR .. '/prefixed.safetensors', { arch = 'resnet18', map = tbl, strict = false })
  H.assert(#rep.missing == 1 and rep.missing[1] == 'fc.bias', 'a table map; false drops a key')
  H.raises(function() lat.models.load(PATH, { arch = 'resnet50' }) end, "unknown arch 'resnet50'")
end)

H.finish()
