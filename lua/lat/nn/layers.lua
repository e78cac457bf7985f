-- layers.lua: the standard layers of lat.nn, each a thin Module over one or two ops.
-- Initialisation follows PyTorch's defaults, drawn from opts.rng or lat's default generator.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local Module = require 'lat.nn.module'
local class, raise = Module.class, core.raise

local L = {}

-- 'stride=2' settings for extra_repr, in the order given
local function settings(...)
  local out = {}
  for i = 1, select('#', ...), 2 do
    local k, v = select(i, ...)
    if type(v) == 'table' then v = '(' .. table.concat(v, ', ') .. ')' end
    out[#out + 1] = k .. '=' .. tostring(v)
  end
  return table.concat(out, ', ')
end

local function rng(opts) return opts and opts.rng or lat.default_generator end

-- uniform in [-bound, bound], as PyTorch's kaiming_uniform(a=sqrt(5)) for weights and biases
local function uniform(shape, bound, g) return lat.rand(shape, { rng = g }):mul_(2 * bound):add_(-bound) end

local function check_int(v, what)
  if type(v) ~= 'number' or v < 1 or v ~= math.floor(v) then raise(('%s must be a positive integer, got %s'):format(what, tostring(v))) end
end

-- ---------------------------------------------------------------- Linear

L.Linear = class('Linear')
function L.Linear:__init(n_in, n_out, opts)
  check_int(n_in, 'Linear: in_features'); check_int(n_out, 'Linear: out_features')
  opts = opts or {}
  local bound = 1 / math.sqrt(n_in)
  self.in_features, self.out_features = n_in, n_out
  self:param('weight', uniform({ n_out, n_in }, bound, rng(opts)))
  if opts.bias ~= false then self:param('bias', uniform({ n_out }, bound, rng(opts))) end
end
function L.Linear:forward(x) return lat.linear(x, self.weight, rawget(self, 'bias')) end
function L.Linear:extra_repr()
  return ('%d, %d, '):format(self.in_features, self.out_features) .. settings('bias', rawget(self, 'bias') ~= nil)
end

-- Conv1D(n_in, n_out): Hugging Face GPT-2's linear layer, y = x W + b with W stored [in, out]
-- (the transpose of Linear's), so that GPT-2 checkpoints load as they are; initialised as GPT-2
-- does (normal, std 0.02, zero bias)
L.Conv1D = class('Conv1D')
function L.Conv1D:__init(n_in, n_out, opts)
  check_int(n_in, 'Conv1D: in_features'); check_int(n_out, 'Conv1D: out_features')
  self.in_features, self.out_features = n_in, n_out
  self:param('weight', lat.randn({ n_in, n_out }, { rng = rng(opts) }):mul_(0.02))
  self:param('bias', lat.zeros(n_out))
end
function L.Conv1D:forward(x) return x:matmul(self.weight) + self.bias end

-- ---------------------------------------------------------------- Conv2d

L.Conv2d = class('Conv2d')
function L.Conv2d:__init(c_in, c_out, k, opts)
  check_int(c_in, 'Conv2d: in_channels'); check_int(c_out, 'Conv2d: out_channels')
  opts = opts or {}
  local kh, kw = type(k) == 'table' and k[1] or k, type(k) == 'table' and k[2] or k
  self.stride, self.padding = opts.stride or 1, opts.padding or 0
  local bound = 1 / math.sqrt(c_in * kh * kw)
  self:param('weight', uniform({ c_out, c_in, kh, kw }, bound, rng(opts)))
  if opts.bias ~= false then self:param('bias', uniform({ c_out }, bound, rng(opts))) end
end
function L.Conv2d:forward(x)
  return lat.conv2d(x, self.weight, rawget(self, 'bias'), { stride = self.stride, padding = self.padding })
end
function L.Conv2d:extra_repr()
  local w = self.weight.shape
  return ('%d, %d, '):format(w[2], w[1]) .. settings('kernel_size', { w[3], w[4] }, 'stride', self.stride,
    'padding', self.padding, 'bias', rawget(self, 'bias') ~= nil)
end

-- ---------------------------------------------------------------- normalisation

L.BatchNorm2d = class('BatchNorm2d')
function L.BatchNorm2d:__init(c, opts)
  opts = opts or {}
  self.momentum, self.eps = opts.momentum or 0.1, opts.eps or 1e-5
  self:param('weight', lat.ones(c))
  self:param('bias', lat.zeros(c))
  self:buffer('running_mean', lat.zeros(c))
  self:buffer('running_var', lat.ones(c))
  -- PyTorch's count of training batches (int64 there, int32 here): kept so that a state_dict
  -- goes both ways with strict loading; lat's momentum update does not read it
  self:buffer('num_batches_tracked', lat.zeros({}, { dtype = 'int32' }))
end
function L.BatchNorm2d:forward(x)
  if self.training then
    local n = self.num_batches_tracked
    lat.no_grad(function() n:fill_(n:item() + 1) end)
  end
  return lat.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
    { training = self.training, momentum = self.momentum, eps = self.eps })
end
-- a replayed output holds in evaluation mode only: in training mode it normalises by the batch's
-- statistics and updates the running ones
function L.BatchNorm2d:replay_safe(recorded_training, training) return not (recorded_training or training) end
L.BatchNorm1d = L.BatchNorm2d
function L.BatchNorm2d:extra_repr()
  return self.weight.shape[1] .. ', ' .. settings('eps', self.eps, 'momentum', self.momentum)
end

L.LayerNorm = class('LayerNorm')
function L.LayerNorm:__init(d, opts)
  self.eps = opts and opts.eps or 1e-5
  self:param('weight', lat.ones(d))
  self:param('bias', lat.zeros(d))
end
function L.LayerNorm:forward(x) return lat.layer_norm(x, self.weight, self.bias, self.eps) end
function L.LayerNorm:extra_repr() return self.weight.shape[1] .. ', ' .. settings('eps', self.eps) end

-- ---------------------------------------------------------------- activations and shape

local function stateless(name, fn)
  local cls = class(name)
  cls.forward = function(_, x) return fn(x) end
  return cls
end
L.ReLU = stateless('ReLU', function(x) return x:relu() end)
-- GELU{approximate = 'tanh'} is GPT-2's tanh form, as PyTorch's nn.GELU(approximate='tanh');
-- the default 'none' is the exact erf form
L.GELU = class('GELU')
function L.GELU:__init(opts)
  local approximate = opts and opts.approximate or 'none'
  if approximate ~= 'none' and approximate ~= 'tanh' then
    raise(("GELU: approximate must be 'none' or 'tanh', got %s"):format(tostring(approximate)))
  end
  self.approximate = approximate
end
function L.GELU:forward(x)
  if self.approximate == 'tanh' then return x:gelu_tanh() end
  return x:gelu()
end
function L.GELU:extra_repr() return settings('approximate', self.approximate) end
L.Tanh = stateless('Tanh', function(x) return x:tanh() end)
L.Sigmoid = stateless('Sigmoid', function(x) return x:sigmoid() end)
L.Identity = stateless('Identity', function(x) return x end)
L.GlobalAvgPool2d = stateless('GlobalAvgPool2d', function(x) return lat.global_avg_pool2d(x) end)

L.Flatten = class('Flatten')
function L.Flatten:__init(first) self.first = first or 2 end
function L.Flatten:forward(x) return x:flatten(self.first) end
function L.Flatten:extra_repr() return settings('first', self.first) end

L.MaxPool2d = class('MaxPool2d')
function L.MaxPool2d:__init(k, opts) self.k, self.opts = k, opts end
function L.MaxPool2d:forward(x) return lat.max_pool2d(x, self.k, self.opts) end
function L.MaxPool2d:extra_repr() return settings('kernel_size', self.k) end

L.AvgPool2d = class('AvgPool2d')
function L.AvgPool2d:__init(k, opts) self.k, self.opts = k, opts end
function L.AvgPool2d:forward(x) return lat.avg_pool2d(x, self.k, self.opts) end
function L.AvgPool2d:extra_repr() return settings('kernel_size', self.k) end

L.Dropout = class('Dropout')
function L.Dropout:__init(p, opts)
  if type(p) ~= 'number' or p < 0 or p >= 1 then raise('Dropout: p must be in [0, 1)') end
  self.p, self.rng = p, rng(opts)
end
function L.Dropout:forward(x) return lat.dropout(x, self.p, self.training, self.rng) end
function L.Dropout:extra_repr() return settings('p', self.p) end
-- a replayed output holds in evaluation mode; in training mode each call draws a new mask
function L.Dropout:replay_safe(recorded_training, training) return self.p == 0 or not (recorded_training or training) end

-- ---------------------------------------------------------------- Embedding

L.Embedding = class('Embedding')
function L.Embedding:__init(n, d, opts)
  check_int(n, 'Embedding: vocabulary size'); check_int(d, 'Embedding: dimension')
  self.num_embeddings, self.dim = n, d
  self:param('weight', lat.randn({ n, d }, { rng = rng(opts) }):mul_(opts and opts.std or 1))
end
function L.Embedding:forward(ids) return lat.embedding(self.weight, ids) end
function L.Embedding:extra_repr() return self.num_embeddings .. ', ' .. self.dim end

-- ---------------------------------------------------------------- Sequential

-- Sequential{ a, b, c } names its children 0, 1, 2 (as PyTorch does, so that state_dict keys
-- match); Sequential{ {'conv', a}, {'relu', b} } gives them names.
L.Sequential = class('Sequential')
function L.Sequential:__init(list, ...)
  if list ~= nil and (type(list) ~= 'table' or list._child_names or select('#', ...) > 0) then
    raise('Sequential: expected one table of modules, Sequential{ a, b } (braces, not parentheses)')
  end
  for i, e in ipairs(list or {}) do
    if type(e) == 'table' and e._child_names then self:add(i - 1, e)
    elseif type(e) == 'table' and type(e[1]) == 'string' then self:add(e[1], e[2])
    else raise(('Sequential: entry %d is not a module or a {name, module} pair'):format(i)) end
  end
end
-- extra arguments (an attention mask, say) reach every child
function L.Sequential:forward(x, ...)
  for _, n in ipairs(self._child_names) do x = self[n](x, ...) end
  return x
end
function L.Sequential:__len() return #self._child_names end

return L
