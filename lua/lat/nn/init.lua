-- lat.nn: modules with named layers and hooks.
--   local nn = lat.nn
--   local net = nn.Sequential{ {'fc1', nn.Linear(784, 256)}, {'act', nn.ReLU()}, {'fc2', nn.Linear(256, 10)} }
--   local acts, h = net:capture('act')        -- record the hidden layer at each forward
--   local delta = lat.zeros(1, 256):requires_grad_()
--   net:hook('act', function(a) return a + delta end)   -- a latent perturbation
local nn = {}
local Module = require 'lat.nn.module'
nn.Module = Module
nn.class = Module.class
nn.in_eval = Module.in_eval -- in_eval(model, fn, ...): fn run in evaluation mode, every module's mode restored
for k, v in pairs(require 'lat.nn.layers') do nn[k] = v end
for k, v in pairs(require 'lat.nn.attention') do nn[k] = v end
return nn
