-- demo.lua: the smallest whole experiment. Trains a two-layer network to separate two
-- interleaved spirals it generates, with gradient descent and momentum written out in Lua, and prints
-- the loss falling and the accuracy rising, and writes them to runs/demo/metrics.jsonl.
--   build/lat recipes/demo.lua [--steps=N] [--seed=S] [--threads=N] [--quick] [--out=DIR]
local lat = require 'lat'
local opt = lat.args{ steps = 1500, hidden = 64, lr = 0.05, momentum = 0.9, points = 512, seed = 1,
  threads = 0, out = 'runs/demo', quick = false }
lat.args.check(opt, { count = { 'steps', 'hidden', 'points' }, natural = { 'seed', 'threads' }, positive = { 'lr' },
  fraction = { 'momentum' } })
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
if opt.quick then
  opt.steps = 800
  print('SMOKE TEST (--quick): 800 steps instead of 1500')
end
local run = lat.log.run_dir(opt.out, opt)
local metrics = run:jsonl('metrics.jsonl')

-- two spirals, labels 0 and 1: the points and labels as Lua tables, then as float tensors
local g = lat.Generator(opt.seed)
local n = opt.points
local noise = lat.randn({ n, 2 }, { rng = g }):tolist()
local points, labels = {}, {}
for i = 1, n do
  local cls = (i - 1) % 2
  local t = ((i - 1) / n) * 3 * math.pi + 0.5
  local sign = cls == 0 and 1 or -1
  points[i] = { sign * t * math.cos(t) / 10 + 0.05 * noise[i][1], sign * t * math.sin(t) / 10 + 0.05 * noise[i][2] }
  labels[i] = { cls }
end
local x, y = lat.tensor(points), lat.tensor(labels)

local function param(scale, ...) return lat.randn({ ... }, { rng = g }):mul_(0.5):mul_(scale):requires_grad_() end
local w1, b1 = param(1, opt.hidden, 2), lat.zeros(opt.hidden):requires_grad_()
local w2, b2 = param(0.3, opt.hidden, opt.hidden), lat.zeros(opt.hidden):requires_grad_()
local w3, b3 = param(1, 1, opt.hidden), lat.zeros(1):requires_grad_()
local params = { w1, b1, w2, b2, w3, b3 }
local velocity = {}
for i, p in ipairs(params) do velocity[i] = lat.zeros(p.shape) end

local function forward(inputs)
  local h = lat.linear(inputs, w1, b1):tanh()
  h = lat.linear(h, w2, b2):tanh()
  return lat.linear(h, w3, b3)
end

-- logistic loss from logits: mean(log(1 + exp(-s * f))) with s = +-1, written stably
local sgn = y * 2 - 1
local function loss_of(logits)
  local m = logits * sgn
  return ((m:neg():relu()) + ((m:abs():neg()):exp() + 1):log()):mean()
end

print(('demo: %d points in two spirals, MLP 2-%d-%d-1, %d steps of gradient descent with momentum'):format(n, opt.hidden, opt.hidden, opt.steps))
print(('%6s  %8s  %8s'):format('step', 'loss', 'accuracy'))
local first, last, first_acc, last_acc
for step = 1, opt.steps do
  local logits = forward(x)
  local loss = loss_of(logits)
  for _, p in ipairs(params) do p.grad = nil end
  loss:backward()
  lat.no_grad(function() -- the update is not part of the graph; in-place ops on p need this
    for i, p in ipairs(params) do
      velocity[i]:mul_(opt.momentum):add_(p.grad)
      p:add_(velocity[i], -opt.lr)
    end
  end)
  if step == 1 or step % math.max(1, math.floor(opt.steps / 10)) == 0 or step == opt.steps then
    local correct = lat.no_grad(function() return logits:gt(0):float():sub(y):abs():sum():item() end)
    local acc = 1 - correct / n
    print(('%6d  %8.4f  %7.1f%%'):format(step, loss:item(), 100 * acc))
    metrics:write{ step = step, loss = loss:item(), accuracy = acc }
    first, first_acc = first or loss:item(), first_acc or acc
    last, last_acc = loss:item(), acc
  end
end
print(('loss %.4f -> %.4f, accuracy %.1f%% -> %.1f%%'):format(first, last, 100 * first_acc, 100 * last_acc))
run:close()
if not (last < first) then error('demo: the loss did not fall') end
