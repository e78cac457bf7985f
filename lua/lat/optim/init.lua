-- optim/init.lua: optimisers (SGD, AdamW) that update parameters in place with one fused C call per
-- tensor, gradient-norm clipping, and optimiser state as name -> tensor for checkpoints.
--   local opt = lat.optim.AdamW(model:named_parameters(), { lr = 1e-3 })
--   opt:zero_grad(); loss:backward(); opt:step()
local core = require 'lat.core'
local lat = require 'lat.tensor'
local ffi, C, check, raise = core.ffi, core.C, core.check, core.raise

local M = { schedule = require 'lat.optim.schedule' }

-- params: a tensor, an array of tensors, an array of {name, tensor} pairs (as
-- model:named_parameters() returns) or a model. Returns the tensors (each once) and their names
-- (positions '1', '2', ... for bare tensors), which key the state dict.
local function read_params(params, what)
  if lat.is_tensor(params) then params = { params } end
  if type(params) == 'table' and type(params.named_parameters) == 'function' then
    params = params:named_parameters()
  end
  if type(params) ~= 'table' then
    raise(('%s: params must be a table of tensors or {name, tensor} pairs, got %s'):format(what, type(params)))
  end
  local ps, names, seen, used = {}, {}, {}, {}
  for i, e in ipairs(params) do
    local name, p
    if lat.is_tensor(e) then name, p = tostring(i), e
    elseif type(e) == 'table' and lat.is_tensor(e[2]) then name, p = tostring(e[1]), e[2]
    else raise(('%s: parameter %d is neither a tensor nor a {name, tensor} pair'):format(what, i)) end
    if p.dtype ~= 'float32' then raise(("%s: parameter '%s' is %s, not float32"):format(what, name, p.dtype)) end
    local addr = tonumber(ffi.cast('uintptr_t', p.ptr))
    if not seen[addr] then
      if used[name] then raise(("%s: two parameters are named '%s'"):format(what, name)) end
      seen[addr], used[name] = true, true
      ps[#ps + 1], names[#names + 1] = p, name
    end
  end
  return ps, names
end

-- opts[key] as a number >= 0 (default if absent; required if default is nil)
local function num(opts, key, default, what)
  local v = opts[key]
  if v == nil then v = default end
  if type(v) ~= 'number' or v < 0 or v ~= v then
    raise(('%s: %s must be a number >= 0, got %s'):format(what, key, tostring(v)))
  end
  return v
end

local function check_keys(opts, known, what)
  for k in pairs(opts) do
    if not known[k] then raise(("%s: unknown option '%s'"):format(what, tostring(k))) end
  end
end

-- ---------------------------------------------------------------- shared methods

local Optimizer = {}
Optimizer.__index = Optimizer

local function new(class, params, what)
  local ps, names = read_params(params, what)
  local self = setmetatable({ params = ps, names = names, state = {}, steps = 0, name = what }, class)
  for i = 1, #ps do self.state[i] = {} end
  return self
end

function Optimizer:set_lr(lr)
  if type(lr) ~= 'number' or lr < 0 or lr ~= lr then raise('set_lr: lr must be a number >= 0') end
  self.lr = lr
end

-- drops every gradient (p.grad = nil), or zeroes them in place with set_to_none = false
function Optimizer:zero_grad(set_to_none)
  for _, p in ipairs(self.params) do
    if set_to_none == false then p:zero_grad() else p.grad = nil end
  end
end

-- name -> tensor: 'step' (int32, number of step() calls), '<param>.<slot>' for each slot
-- (float32 buffers; int32 counts). The tensors are the optimiser's own, as in PyTorch: write
-- or clone them before the next step.
function Optimizer:state_dict()
  local sd = { step = lat.tensor(self.steps, 'int32') }
  for i, name in ipairs(self.names) do
    for slot, v in pairs(self.state[i]) do
      sd[name .. '.' .. slot] = type(v) == 'number' and lat.tensor(v, 'int32') or v
    end
  end
  return sd
end

-- restores what state_dict returned (copied); raises on entries naming no parameter or slot
function Optimizer:load_state_dict(sd)
  local index, fresh, steps = {}, {}, 0
  for i, n in ipairs(self.names) do index[n], fresh[i] = i, {} end
  for key, t in pairs(sd) do
    if not lat.is_tensor(t) then raise(("load_state_dict: '%s' is not a tensor"):format(key)) end
    if key == 'step' then steps = t:item()
    else
      local name, slot = tostring(key):match('^(.*)%.([%a_][%w_]*)$')
      local i = name and index[name]
      if not i then raise(("load_state_dict: '%s' names no parameter of this %s"):format(key, self.name)) end
      local kind = self.slots[slot]
      if not kind then raise(("load_state_dict: %s keeps no '%s' (in '%s')"):format(self.name, slot, key)) end
      if kind == 'count' then fresh[i][slot] = t:item()
      else
        local p = self.params[i]
        if t.dtype ~= 'float32' or table.concat(t.shape, ',') ~= table.concat(p.shape, ',') then
          raise(("load_state_dict: '%s' is %s [%s], parameter '%s' is float32 [%s]"):format(key, t.dtype,
            table.concat(t.shape, ', '), name, table.concat(p.shape, ', ')))
        end
        fresh[i][slot] = t:clone()
      end
    end
  end
  self.state, self.steps = fresh, steps
  return self
end

-- ---------------------------------------------------------------- SGD

local SGD = setmetatable({ slots = { momentum_buffer = 'tensor' } }, Optimizer)
SGD.__index = SGD

-- SGD(params, {lr=, momentum=0, dampening=0, nesterov=false, weight_decay=0}): torch.optim.SGD,
-- weight decay coupled (added to the gradient as L2)
function M.SGD(params, opts)
  opts = opts or {}
  check_keys(opts, { lr = 1, momentum = 1, dampening = 1, nesterov = 1, weight_decay = 1 }, 'SGD')
  local self = new(SGD, params, 'SGD')
  self.lr = num(opts, 'lr', nil, 'SGD')
  self.momentum = num(opts, 'momentum', 0, 'SGD')
  self.dampening = num(opts, 'dampening', 0, 'SGD')
  self.weight_decay = num(opts, 'weight_decay', 0, 'SGD')
  self.nesterov = opts.nesterov and true or false
  if self.nesterov and (self.momentum == 0 or self.dampening ~= 0) then
    raise('SGD: nesterov needs momentum > 0 and dampening 0')
  end
  return self
end

-- one update of every parameter that has a gradient, with gradients disabled (an in-place change
-- to a parameter is refused otherwise); closure (optional) runs first and its result is returned
function SGD:step(closure)
  local loss = closure and closure() or nil
  lat.no_grad(self.update, self)
  self.steps = self.steps + 1
  return loss
end

function SGD:update()
  local mom, nest = self.momentum, self.nesterov and 1 or 0
  for i, p in ipairs(self.params) do
    local g = p.ptr.grad_
    if g ~= nil then
      local st, first = self.state[i], 0
      local buf = st.momentum_buffer
      if mom ~= 0 and buf == nil then
        buf, first = lat.empty(p.shape), 1
        st.momentum_buffer = buf
      end
      check(C.lat_sgd_step_(p.ptr, g, buf and buf.ptr or nil, self.lr, mom, self.dampening, nest,
        self.weight_decay, first))
    end
  end
end

-- ---------------------------------------------------------------- AdamW

local AdamW = setmetatable({ slots = { exp_avg = 'tensor', exp_avg_sq = 'tensor', step = 'count' } }, Optimizer)
AdamW.__index = AdamW

-- AdamW(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=1e-2}): torch.optim.AdamW,
-- weight decay decoupled, bias correction included; a parameter's step counts its own updates
function M.AdamW(params, opts)
  opts = opts or {}
  check_keys(opts, { lr = 1, betas = 1, eps = 1, weight_decay = 1 }, 'AdamW')
  local self = new(AdamW, params, 'AdamW')
  self.lr = num(opts, 'lr', 1e-3, 'AdamW')
  self.eps = num(opts, 'eps', 1e-8, 'AdamW')
  self.weight_decay = num(opts, 'weight_decay', 1e-2, 'AdamW')
  local b = opts.betas or { 0.9, 0.999 }
  if type(b) ~= 'table' or type(b[1]) ~= 'number' or type(b[2]) ~= 'number'
    or b[1] < 0 or b[1] >= 1 or b[2] < 0 or b[2] >= 1 then
    raise('AdamW: betas must be two numbers in [0, 1)')
  end
  self.betas = { b[1], b[2] }
  return self
end

function AdamW:step(closure)
  local loss = closure and closure() or nil
  lat.no_grad(self.update, self)
  self.steps = self.steps + 1
  return loss
end

function AdamW:update()
  local b1, b2 = self.betas[1], self.betas[2]
  for i, p in ipairs(self.params) do
    local g = p.ptr.grad_
    if g ~= nil then
      local st = self.state[i]
      if not st.exp_avg then
        st.exp_avg, st.exp_avg_sq, st.step = lat.zeros(p.shape), lat.zeros(p.shape), 0
      end
      st.step = st.step + 1
      check(C.lat_adamw_step_(p.ptr, g, st.exp_avg.ptr, st.exp_avg_sq.ptr, st.step, self.lr, b1, b2,
        self.eps, self.weight_decay))
    end
  end
end

-- ---------------------------------------------------------------- clipping

local sumsq = ffi.new('double[1]')

-- Scales the gradients so that their global L2 norm is at most max_norm (by
-- max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_); returns the norm before
-- clipping. A non-finite norm is returned and the gradients are left as they are.
function M.clip_grad_norm(params, max_norm)
  local ps = read_params(params, 'clip_grad_norm')
  if type(max_norm) ~= 'number' or max_norm <= 0 then raise('clip_grad_norm: max_norm must be a number > 0') end
  local total = 0
  for _, p in ipairs(ps) do
    local g = p.ptr.grad_
    if g ~= nil then
      check(C.lat_sum_squares(g, sumsq))
      total = total + sumsq[0]
    end
  end
  total = math.sqrt(total)
  local coef = max_norm / (total + 1e-6)
  if coef < 1 then
    for _, p in ipairs(ps) do
      local g = p.ptr.grad_
      if g ~= nil then check(C.lat_scale_(g, coef)) end
    end
  end
  return total
end

return M
