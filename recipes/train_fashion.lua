-- train_fashion.lua: trains the ResNet that the vision experiments attack, on Fashion-MNIST.
--   build/lat recipes/train_fashion.lua [--epochs=8] [--out=runs/train_fashion] [--quick]
-- Writes to the run folder: config.json, metrics.jsonl (one line per epoch), model.safetensors
-- (with the model's class and options, for lat.models.load), optimizer.safetensors (to resume),
-- and prints a summary table.
local lat = require 'lat'

local opt = lat.args{
  epochs = 8, batch = 128, lr = 0.1, momentum = 0.9, weight_decay = 5e-4, warmup = 200,
  widths = '16,32,64', blocks = '2,2,2', augment = true, seed = 1, threads = 0,
  out = 'runs/train_fashion', quick = false,
}
lat.args.check(opt, { count = { 'epochs', 'batch' }, natural = { 'warmup', 'seed', 'threads' }, positive = { 'lr' },
  fraction = { 'momentum' }, nonnegative = { 'weight_decay' }, ['count list'] = { 'widths', 'blocks' } })
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)

local train = lat.data.fashion_mnist('train')
local test = lat.data.fashion_mnist('test')
if opt.quick then -- a smoke run: a slice of the data, one epoch
  train, test = train:subset(lat.arange(512, 'int32')), test:subset(lat.arange(256, 'int32'))
  opt.epochs, opt.warmup = 1, 2
end

local model = lat.models.ResNet{ widths = lat.args.list(opt.widths, 'count'),
  blocks = lat.args.list(opt.blocks, 'count'), channels = 1, classes = 10,
  rng = lat.Generator(opt.seed) }
local loader = lat.data.DataLoader(train, {
  batch_size = opt.batch, shuffle = true, seed = opt.seed, drop_last = true,
  transform = opt.augment and lat.data.augment.crop_flip{ pad = 2, flip = true, seed = opt.seed } or nil,
})
local steps = opt.epochs * loader:len()
local optimizer = lat.optim.SGD(model:named_parameters(), {
  lr = opt.lr, momentum = opt.momentum, nesterov = true, weight_decay = opt.weight_decay })
local run = lat.log.run_dir(opt.out, opt)
print(('train_fashion: ResNet %s x %s (%d parameters), %d training images, %d epochs, %d threads'):format(
  opt.widths, opt.blocks, model:num_parameters(), train:len(), opt.epochs, lat.get_num_threads()))

local now = require('lat.core.sys').now
local t0 = now()
local history = {}
lat.train.fit{
  model = model, loader = loader, optimizer = optimizer, epochs = opt.epochs, log = run,
  schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = opt.warmup, total = steps, min = 0 },
  loss = function(m, batch)
    local logits = m(batch.x)
    return lat.cross_entropy(logits, batch.y)
  end,
  evaluate = function(m, epoch)
    local r = lat.eval.accuracy(m, test)
    history[#history + 1] = { epoch = epoch, test_accuracy = r.accuracy, test_loss = r.loss }
    return { test_accuracy = r.accuracy, test_loss = r.loss }
  end,
}
local seconds = now() - t0

lat.save(run:path('optimizer.safetensors'), optimizer:state_dict()) -- to resume training
lat.models.save(model, run:path('model.safetensors'), { dataset = 'fashion-mnist', test_accuracy = history[#history].test_accuracy })
print(('%6s  %10s  %9s'):format('epoch', 'test loss', 'test acc'))
for _, h in ipairs(history) do print(('%6d  %10.4f  %8.2f%%'):format(h.epoch, h.test_loss, 100 * h.test_accuracy)) end
print(('trained in %.0f s; model saved to %s'):format(seconds, run:path('model.safetensors')))
run:close()
