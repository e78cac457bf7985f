-- attack_universal.lua: a new kind of latent attack, written in Lua only (no recompiling):
-- one *universal* perturbation at a hidden layer, shared by every example, found on some images
-- and tested on others. It is built from the same pieces as lat.attack (a hook that adds a
-- tensor at a named layer, lat.grad for the gradient with respect to that tensor alone, the
-- threat model's projection) and compared with per-example PGD of the same radius.
--   build/lat recipes/attack_universal.lua [--layer=layer2] [--eps=0.5] [--steps=40] [--threads=N] [--quick]
-- Uses the ResNet of recipes/train_fashion.lua (runs/train_fashion/model.safetensors).
local lat = require 'lat'

local opt = lat.args{
  model = 'runs/train_fashion/model.safetensors', layer = 'layer2', eps = 0.5, steps = 40, lr = 0.05,
  fit = 2000, test = 2000, batch = 250, seed = 1, threads = 0, out = 'runs/attack_universal', quick = false,
}
lat.args.check(opt, { count = { 'steps', 'fit', 'test', 'batch' }, natural = { 'seed', 'threads' }, positive = { 'lr' },
  nonnegative = { 'eps' } })
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
if opt.quick then opt.fit, opt.test, opt.steps, opt.batch = 64, 64, 5, 32 end
lat.manual_seed(opt.seed)

local model
if opt.quick then
  model = lat.models.ResNet{ widths = { 4, 8, 8 }, blocks = { 1, 1, 1 }, rng = lat.Generator(opt.seed) }
else
  model = lat.models.load(opt.model)
end
model:eval()
lat.args.layers(model, 'layer', { opt.layer })
local data = lat.data.fashion_mnist('test')
local fit_set = data:subset(lat.arange(1, opt.fit + 1, 'int32'))
local test_set = data:subset(lat.arange(opt.fit + 1, opt.fit + opt.test + 1, 'int32'))

-- The radius: eps times the mean L2 norm of one example's clean activation at the layer, so
-- that it means the same at any layer (printed, and recorded in the results).
local acts = model:capture(opt.layer)
lat.no_grad(function() return model(fit_set:batch(lat.arange(opt.batch, 'int32')).x) end)
local clean = acts[opt.layer]
local dims = {}
for d = 2, clean:dim() do dims[#dims + 1] = d end
local radius = clean:norm(2, dims):mean():item() * opt.eps
local shape = clean.shape
shape[1] = 1
local threat = lat.threat{ where = opt.layer, norm = 'l2', eps = radius }

-- the universal perturbation: Adam on one delta over batches of the fitting images
local delta = lat.zeros(shape):requires_grad_()
local hook = model:hook(opt.layer, function(a) return a + delta end) -- broadcast over the batch
local loader = lat.data.DataLoader(fit_set, { batch_size = opt.batch, shuffle = true, seed = opt.seed })
local m, v = lat.zeros(shape), lat.zeros(shape)
local curve = {}
local step = 0
while step < opt.steps do
  for batch in loader:iter() do
    step = step + 1
    local loss = lat.cross_entropy(model(batch.x), batch.y)
    local g = lat.grad(loss, delta)
    lat.no_grad(function() -- Adam ascent on the task loss, then back into the ball
      m = m * 0.9 + g * 0.1
      v = v * 0.999 + g * g * 0.001
      local move = (m / (1 - 0.9 ^ step)) / ((v / (1 - 0.999 ^ step)):sqrt() + 1e-8)
      delta = threat:project(delta + move * (opt.lr * radius), delta):requires_grad_()
    end)
    curve[#curve + 1] = loss:item()
    if step >= opt.steps then break end
  end
end
hook.remove()

-- held-out images: clean, universal, per-example PGD with the same radius
local universal = delta:detach()
local function accuracy_with(perturb)
  local correct, n = 0, 0
  local eval_loader = lat.data.DataLoader(test_set, { batch_size = opt.batch })
  for batch in eval_loader:iter() do
    local d = perturb(batch)
    local logits = lat.no_grad(function()
      if not d then return model(batch.x) end
      return lat.attack.with_perturbation(model, threat, { [opt.layer] = d }, function() return model(batch.x) end)
    end)
    local pred, y = logits:argmax(-1):tolist(), batch.y:tolist()
    for i = 1, #y do if pred[i] == y[i] then correct = correct + 1 end end
    n = n + #y
  end
  return correct / n
end
local results = {
  clean = accuracy_with(function() return nil end),
  universal = accuracy_with(function() return universal end),
  per_example_pgd = accuracy_with(function(batch)
    return lat.attack.pgd(model, batch, threat, { steps = 10 }).deltas[opt.layer]
  end),
}

local run = lat.log.run_dir(opt.out, opt)
run:jsonl('results.jsonl'):write{ layer = opt.layer, eps_relative = opt.eps, radius = radius,
  clean_accuracy = results.clean, universal_accuracy = results.universal, pgd_accuracy = results.per_example_pgd,
  fit_loss_first = curve[1], fit_loss_last = curve[#curve] }
lat.save(run:path('universal_delta.safetensors'), { delta = universal })
print(('universal latent perturbation at %s: L2 radius %.3f (%.2f x the mean activation norm)'):format(opt.layer, radius, opt.eps))
print(('fitting loss %.4f -> %.4f over %d steps on %d images'):format(curve[1], curve[#curve], #curve, opt.fit))
print(('%-28s %9s'):format('held-out images (' .. opt.test .. ')', 'accuracy'))
print(('%-28s %8.2f%%'):format('clean', 100 * results.clean))
print(('%-28s %8.2f%%'):format('universal perturbation', 100 * results.universal))
print(('%-28s %8.2f%%'):format('per-example PGD (10 steps)', 100 * results.per_example_pgd))
run:close()
if not (curve[#curve] > curve[1]) then error('attack_universal: the fitting loss did not rise') end
