-- standin.lua: a tiny model and loader following the lat.nn and lat.data interfaces, built from
-- raw tensors, for the optimiser and training tests (lat.nn itself is written elsewhere).
local lat = require 'lat'

local S = {}

-- an MLP with ReLU and dropout (in training mode only): sizes = {in, hidden..., out}
function S.mlp(sizes, rng, dropout)
  local layers, named = {}, {}
  for i = 1, #sizes - 1 do
    local w = lat.randn({ sizes[i + 1], sizes[i] }, { rng = rng }):mul_(1 / math.sqrt(sizes[i])):requires_grad_()
    local b = lat.zeros(sizes[i + 1]):requires_grad_()
    layers[i] = { w = w, b = b }
    named[#named + 1] = { 'fc' .. i .. '.weight', w }
    named[#named + 1] = { 'fc' .. i .. '.bias', b }
  end
  local model = { training = true, layers = layers }
  function model:named_parameters() return named end
  function model:parameters()
    local ps = {}
    for i, e in ipairs(named) do ps[i] = e[2] end
    return ps
  end
  function model:state_dict()
    local sd = {}
    for _, e in ipairs(named) do sd[e[1]] = e[2] end
    return sd
  end
  function model:train() self.training = true; return self end
  function model:eval() self.training = false; return self end
  return setmetatable(model, { __call = function(self, x)
    local h = x
    for i, l in ipairs(layers) do
      h = lat.linear(h, l.w, l.b)
      if i < #layers then h = lat.dropout(h:relu(), dropout or 0, self.training, rng) end
    end
    return h
  end })
end

-- k Gaussian blobs in 2-D: x [n, 2] float32, y [n] int32 labels
function S.blobs(n, k, rng)
  local x, y = lat.randn({ n, 2 }, { rng = rng }):mul_(0.5), lat.empty(n, 'int32')
  for i = 0, n - 1 do
    local c = i % k
    local a = 2 * math.pi * c / k
    x.f[2 * i] = x.f[2 * i] + 3 * math.cos(a)
    x.f[2 * i + 1] = x.f[2 * i + 1] + 3 * math.sin(a)
    y.i[i] = c
  end
  return x, y
end

-- batches of {x=, y=} in a fresh random order each pass
function S.loader(x, y, batch, rng)
  local n = x:size(1)
  local L = {}
  function L:len() return math.ceil(n / batch) end
  function L:iter()
    local perm, i = lat.randperm(n, { rng = rng }), 0
    return function()
      if i >= n then return nil end
      local len = math.min(batch, n - i)
      local idx = perm:narrow(1, i + 1, len)
      i = i + len
      return { x = x:index_select(1, idx), y = y:index_select(1, idx) }
    end
  end
  return L
end

-- cross-entropy loss and accuracy of a batch
function S.loss(model, batch)
  local logits = model(batch.x)
  local acc = logits:argmax(2):eq(batch.y):float():mean():item()
  return lat.cross_entropy(logits, batch.y), { acc = acc }
end

return S
