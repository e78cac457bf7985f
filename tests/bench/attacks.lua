-- attacks.lua: the lat half of attacks.sh: whole attacks and adversarial training steps, timed.
-- Prints 'name<TAB>median ms<TAB>median ms with replay = false' per workload (the second is the
-- same attack running every forward in full, for the suffix-only saving; '-' where it does not
-- apply). Names and workloads are those of attacks.py.
--   build/lat tests/bench/attacks.lua [--repeats=5] [--only=substring] [--memory]
-- With --memory it prints instead 'name<TAB>MiB': the process's peak resident memory while the
-- workloads ran (VmHWM) less its resident memory before them (models and batches made), for
-- attacks.sh to run one workload a process.
-- Workloads: a 10-step L2 PGD (zero start, normalised-gradient steps, projection onto the
-- ball, a final forward under the found perturbation) at the activations of
--   resnet   lat.models.ResNet{16, 32, 64; 2, 2, 2}, 1 x 28 x 28, batch 128, evaluation mode:
--            'relu' (after the stem: early), 'layer2' (middle), 'layer3' (late), 'input'
--   gpt      lat.models.GPT{vocab 258, 128 tokens, dim 128, 4 heads, 4 layers}, batch 32:
--            'transformer.h.0' (early), 'transformer.h.1' (middle), 'transformer.h.3' (late)
--   smallcnn lat.models.SmallCNN{}, batch 128: 'block1'
-- and one training step (5-step attack, forward and backward under the perturbation, SGD) of
-- the ResNet in training mode: LAT at 'layer2', AT at the input.
local lat = require 'lat'
local opt = lat.args{ repeats = 5, only = '', memory = false }
local now = require('lat.core.sys').now

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

local function timeit(fn)
  fn() -- warm-up: the caching allocator fills, the kernels' buffers exist
  local ts = {}
  for i = 1, opt.repeats do
    local t0 = now()
    fn()
    ts[i] = (now() - t0) * 1000
  end
  return median(ts)
end

local function resnet() return lat.models.ResNet{ widths = { 16, 32, 64 }, blocks = { 2, 2, 2 }, rng = lat.Generator(1) } end
local rng = lat.Generator(2)
local image_batch = { x = lat.rand({ 128, 1, 28, 28 }, { rng = rng }), y = lat.randint(0, 10, { 128 }, { rng = rng }) }
local text_batch = { x = lat.randint(0, 258, { 32, 128 }, { rng = rng }), y = lat.randint(0, 258, { 32, 128 }, { rng = rng }) }

local function pgd(model, batch, where, eps)
  local tm = lat.threat{ where = where, norm = 'l2', eps = eps }
  return function(replay) lat.attack.pgd(model, batch, tm, { steps = 10, replay = replay }) end
end

local gpt = lat.models.GPT{ vocab = 258, max_len = 128, dim = 128, heads = 4, layers = 4, rng = lat.Generator(1) }
local cnn = lat.models.SmallCNN{ rng = lat.Generator(1) }
local net = resnet()
for _, m in ipairs({ gpt, cnn, net }) do m:eval() end

local workloads = {
  { 'resnet pgd relu (early)', pgd(net, image_batch, 'relu', 2.0) },
  { 'resnet pgd layer2 (middle)', pgd(net, image_batch, 'layer2', 2.0) },
  { 'resnet pgd layer3 (late)', pgd(net, image_batch, 'layer3', 2.0) },
  { 'resnet pgd input', pgd(net, image_batch, 'input', 0.5), input = true },
  { 'gpt pgd h.0 (early)', pgd(gpt, text_batch, 'transformer.h.0', 4.0) },
  { 'gpt pgd h.1 (middle)', pgd(gpt, text_batch, 'transformer.h.1', 4.0) },
  { 'gpt pgd h.3 (late)', pgd(gpt, text_batch, 'transformer.h.3', 4.0) },
  { 'smallcnn pgd block1', pgd(cnn, image_batch, 'block1', 2.0) },
  { 'resnet LAT step layer2', 'lat' },
  { 'resnet AT step input', 'at', input = true },
}

-- kB of a line of /proc/self/status (VmRSS, VmHWM)
local function status_kb(field)
  for line in io.lines('/proc/self/status') do
    local v = line:match('^' .. field .. ':%s*(%d+)')
    if v then return tonumber(v) end
  end
end
local rss_before = status_kb('VmRSS')

for _, w in ipairs(workloads) do
  local name, run = w[1], w[2]
  if name:find(opt.only, 1, true) then
    local function timed(replay)
      if type(run) ~= 'string' then return timeit(function() run(replay) end) end
      -- a training step changes the weights: each setting starts from the same fresh model
      local m = resnet()
      local where, eps = run == 'lat' and 'layer2' or 'input', run == 'lat' and 2.0 or 0.5
      local step = lat.train.adversarial{ threat = lat.threat{ where = where, norm = 'l2', eps = eps },
        attack = { steps = 5, replay = replay } }
      local sgd = lat.optim.SGD(m:parameters(), { lr = 0.01 })
      m:train()
      return timeit(function()
        sgd:zero_grad()
        step(m, image_batch):backward()
        sgd:step()
      end)
    end
    if opt.memory then
      timed(nil)
      print(('%s\t%.1f'):format(name, (status_kb('VmHWM') - rss_before) / 1024))
      goto next
    end
    local fast = timed(nil)
    -- at the input every layer follows the site: replay has nothing to skip
    local full = w.input and '-' or ('%.2f'):format(timed(false))
    print(('%s\t%.2f\t%s'):format(name, fast, full))
    io.stdout:flush()
  end
  ::next::
end
