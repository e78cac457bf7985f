-- lat: tensors with autograd on a C core, for latent adversarial training experiments.
--   local lat = require 'lat'
--   local x = lat.randn(4, 3):requires_grad_()
--   local loss = x:tanh():sum()
--   loss:backward()          -- x.grad now holds 1 - tanh(x)^2
local core = require 'lat.core'
local lat = require 'lat.tensor'
require 'lat.ops'
require 'lat.io'
local repr = require 'lat.repr'
local ffi, C = core.ffi, core.C

local T, getters, setters = lat._methods, lat._getters, lat._setters

local function index(t, k)
  local m = T[k]
  if m ~= nil then return m end
  local g = getters[k]
  if g then return g(t) end
  return nil
end

local function newindex(t, k, v)
  local s = setters[k]
  if not s then core.raise(("tensor: cannot set field '%s'"):format(tostring(k))) end
  s(t, v)
end

ffi.metatype('lat_ref', {
  __gc = function(r) C.lat_release(r.ptr) end,
  __index = index,
  __newindex = newindex,
  __add = T.add, __sub = T.sub, __mul = T.mul, __div = T.div,
  __unm = T.neg,
  __pow = function(a, b) return T.pow(a, b) end,
  __len = function(t) return t.ptr.ndim > 0 and tonumber(t.ptr.shape_[0]) or 0 end,
  __tostring = repr.tensor,
})

lat.version = ffi.string(C.lat_version())
lat.core = core -- lat.core.raise(msg): an error at the caller's line, for recipes and user code
lat.repr = repr.value
lat.args = require 'lat.args'
lat.gradcheck = require 'lat.gradcheck'
lat.nn = require 'lat.nn'
lat.models = require 'lat.models'
lat.optim = require 'lat.optim'
lat.log = require 'lat.log'
lat.train = require 'lat.train'
lat.dist = require 'lat.dist'

lat.data = require 'lat.data'
lat.eval = require 'lat.eval'
require 'lat.threat'
lat.attack = require 'lat.attack'
lat.train.adversarial = require 'lat.defence'

lat.plot = require 'lat.plot'

lat.trojan = require 'lat.trojan'

-- lat.check_finite(false): training, attacks and evaluation stop raising at NaN or Inf (see finite.lua)
lat.check_finite = require('lat.finite').set

function lat.set_num_threads(n) C.lat_set_num_threads(n) end
function lat.get_num_threads() return C.lat_get_num_threads() end

-- memory: what the caching allocator holds, in bytes
function lat.memory()
  return {
    live = tonumber(C.lat_live_bytes()),
    cached = tonumber(C.lat_cached_bytes()),
    peak = tonumber(C.lat_peak_bytes()),
    fresh_allocations = tonumber(C.lat_fresh_allocations()),
  }
end
-- collect unreachable tensors now and give cached memory back to the system
function lat.collect(empty_cache)
  collectgarbage()
  collectgarbage()
  if empty_cache then C.lat_empty_cache() end
end

-- drop the private helpers from the public namespace
for k in pairs(lat) do
  if type(k) == 'string' and k:sub(1, 1) == '_' and k ~= '_methods' then lat[k] = nil end
end
lat.Tensor = T

C.lat_get_num_threads() -- settle the thread count (LAT_NUM_THREADS or all cores)
return lat
