-- train_child.lua: trains the stand-in model with lat.train.fit and prints each step's loss in
-- hex (%a), for the determinism and logging tests in test_train.lua.
--   lat train_child.lua --seed=1 --epochs=3 [--log=dir]
package.path = (arg[0]:match('^(.*/)') or './') .. '?.lua;' .. package.path
local lat = require 'lat'
local S = require 'standin'
local opt = lat.args{ seed = 1, epochs = 3, log = '' }

lat.manual_seed(opt.seed)
local g = lat.Generator(opt.seed)
local model = S.mlp({ 2, 128, 128, 3 }, g, 0.1)
local x, y = S.blobs(1024, 3, g)
local vx, vy = S.blobs(256, 3, g)
local loader = S.loader(x, y, 64, g)
local steps = opt.epochs * loader:len()
lat.train.fit{
  model = model, loader = loader, loss = S.loss, epochs = opt.epochs, clip = 1.0,
  optimizer = lat.optim.AdamW(model:named_parameters(), { lr = 0.01 }),
  schedule = lat.optim.schedule.warmup_cosine{ base = 0.01, warmup = 5, total = steps, min = 1e-4 },
  evaluate = function(m) return lat.no_grad(function() return { val_loss = S.loss(m, { x = vx, y = vy }) } end) end,
  on_step = function(info) print(('%d %a %a'):format(info.step, info.loss, info.grad_norm)) end,
  log = opt.log ~= '' and lat.log.run_dir(opt.log, opt) or nil,
}
