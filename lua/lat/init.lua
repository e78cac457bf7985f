-- lat: tensors with autograd on a C core, for latent adversarial training experiments.
--   local lat = require 'lat'
--   local x = lat.randn(4, 3):requires_grad_()
--   local loss = x:tanh():sum()
--   loss:backward()          -- x.grad now holds 1 - tanh(x)^2
-- This file only assembles the public table from the packages' own tables: each namespace
-- lat.a is the folder (or file) lua/lat/a, and the root names come from the tensor package.
local core = require 'lat.core'
local tensor = require 'lat.tensor'
local lat_io = require 'lat.io'
local threat = require 'lat.attack.threat'

local lat = {}
-- the tensor type's functions: lat.zeros, lat.cat, lat.no_grad, ..., and lat.Tensor, its methods
for k, v in pairs(tensor) do lat[k] = v end
lat.save, lat.load, lat.set_read_limit, lat.read_limit = lat_io.save, lat_io.load, lat_io.set_read_limit, lat_io.read_limit
lat.threat, lat.Threat = threat.new, threat.Threat
lat.repr = require('lat.tensor.repr').value
lat.gradcheck = require 'lat.tensor.gradcheck'
-- lat.check_finite(false): training, attacks and evaluation stop raising at NaN or Inf
-- (tensor/finite.lua)
lat.check_finite = require('lat.tensor.finite').set
lat.version = core.ffi.string(core.C.lat_version())

lat.core = core -- lat.core.raise(msg): an error at the caller's line, for recipes and user code
lat.args = require 'lat.args'
lat.io = lat_io
lat.nn = require 'lat.nn'
lat.models = require 'lat.models'
lat.optim = require 'lat.optim'
lat.log = require 'lat.log'
lat.train = require 'lat.train'
lat.dist = require 'lat.dist'
lat.data = require 'lat.data'
lat.eval = require 'lat.eval'
lat.attack = require 'lat.attack'
lat.plot = require 'lat.plot'
lat.trojan = require 'lat.trojan'
lat.experiment = require 'lat.experiment'

return lat
