-- tensor/ops.lua: the differentiable ops as tensor methods and lat.* functions, one line each where
-- the C op does the work; composites (mean, norm, softmax helpers) are written here from them.
local core = require 'lat.core'
local P = require 'lat.tensor.private'
local ffi, C, wrap, raise = core.ffi, core.C, core.wrap, core.raise
local T = {}   -- methods; tensor/init.lua installs them in the tensor type
local lat = {} -- functions (lat.where, lat.cat, ...); tensor/init.lua puts them in its namespace
local need, opt, cdim, read_dims, dims_buf = P.need_tensor, P.opt_tensor, P.cdim, P.read_dims, P.dims_buf
local read_shape, shape_buf = P.read_shape, P.shape_buf

local is_tensor = P.is_tensor

local function scalar_like(x) return wrap(C.lat_full(C.LAT_F32, 0, shape_buf, x)) end

-- ---------------------------------------------------------------- elementwise

local BIN = { add = C.LAT_OP_ADD, sub = C.LAT_OP_SUB, mul = C.LAT_OP_MUL, div = C.LAT_OP_DIV }

function T.add(a, b)
  if type(b) == 'number' then return wrap(C.lat_add_scalar(need(a, 'add: first input'), b)) end
  if type(a) == 'number' then return wrap(C.lat_add_scalar(need(b, 'add: second input'), a)) end
  return wrap(C.lat_binary(BIN.add, need(a, 'add: first input'), need(b, 'add: second input')))
end
function T.sub(a, b)
  if type(b) == 'number' then return wrap(C.lat_add_scalar(need(a, 'sub: first input'), -b)) end
  if type(a) == 'number' then return wrap(C.lat_add_scalar(wrap(C.lat_unary(C.LAT_OP_NEG, need(b, 'sub: second input'))).ptr, a)) end
  return wrap(C.lat_binary(BIN.sub, need(a, 'sub: first input'), need(b, 'sub: second input')))
end
function T.mul(a, b)
  if type(b) == 'number' then return wrap(C.lat_mul_scalar(need(a, 'mul: first input'), b)) end
  if type(a) == 'number' then return wrap(C.lat_mul_scalar(need(b, 'mul: second input'), a)) end
  return wrap(C.lat_binary(BIN.mul, need(a, 'mul: first input'), need(b, 'mul: second input')))
end
function T.div(a, b)
  if type(b) == 'number' then return wrap(C.lat_mul_scalar(need(a, 'div: first input'), 1 / b)) end
  if type(a) == 'number' then return wrap(C.lat_mul_scalar(wrap(C.lat_pow_scalar(need(b, 'div: second input'), -1)).ptr, a)) end
  return wrap(C.lat_binary(BIN.div, need(a, 'div: first input'), need(b, 'div: second input')))
end

local UNARY = {
  neg = C.LAT_OP_NEG, exp = C.LAT_OP_EXP, log = C.LAT_OP_LOG, sqrt = C.LAT_OP_SQRT,
  abs = C.LAT_OP_ABS, relu = C.LAT_OP_RELU, gelu = C.LAT_OP_GELU, tanh = C.LAT_OP_TANH,
  sigmoid = C.LAT_OP_SIGMOID,
}
for name, op in pairs(UNARY) do
  T[name] = function(x) return wrap(C.lat_unary(op, need(x, name .. ': input'))) end
end

function T.pow(x, p)
  if type(p) ~= 'number' then raise('pow: the exponent must be a number') end
  return wrap(C.lat_pow_scalar(need(x, 'pow: input'), p))
end
function T.clamp(x, lo, hi) return wrap(C.lat_clamp(need(x, 'clamp: input'), lo or -math.huge, hi or math.huge)) end

function lat.where(mask, a, b)
  if type(a) == 'number' then a = scalar_like(a) end
  if type(b) == 'number' then b = scalar_like(b) end
  return wrap(C.lat_where(need(mask, 'where: mask'), need(a, 'where: first value'), need(b, 'where: second value')))
end

local CMP = { eq = 0, ne = 1, lt = 2, le = 3, gt = 4, ge = 5 }
for name, op in pairs(CMP) do
  T[name] = function(a, b)
    if type(b) == 'number' then b = scalar_like(b) end
    return wrap(C.lat_compare(need(a, name .. ': first input'), need(b, name .. ': second input'), op))
  end
end

-- ---------------------------------------------------------------- reductions

-- sum(dims, keepdim): dims is nil (all), a dim, or a table of dims (1-based)
function T.sum(x, dims, keepdim)
  local n = read_dims(dims, 'sum')
  return wrap(C.lat_sum(need(x, 'sum: input'), n, dims_buf, keepdim and 1 or 0))
end

function T.mean(x, dims, keepdim)
  local s = T.sum(x, dims, keepdim) -- first, so that bad dims are reported by sum
  local count = 1
  if dims == nil then count = x:numel()
  else
    for _, d in ipairs(type(dims) == 'table' and dims or { dims }) do count = count * x:size(d) end
  end
  return s:mul(1 / count)
end

function T.amax(x, dims, keepdim)
  local n = read_dims(dims, 'amax')
  return wrap(C.lat_amax(need(x, 'amax: input'), n, dims_buf, keepdim and 1 or 0))
end

function T.argmax(x, dim, keepdim)
  if dim == nil then return wrap(C.lat_argmax(x:reshape(-1).ptr, 0, 0)) end
  return wrap(C.lat_argmax(need(x, 'argmax: input'), cdim(dim, 'argmax'), keepdim and 1 or 0))
end

-- max(): the largest value; max(dim): values and (0-based) indices along dim
function T.max(x, dim, keepdim)
  if dim == nil then return x:amax() end
  return x:amax(dim, keepdim), x:argmax(dim, keepdim)
end

function T.min(x, dim, keepdim)
  if dim == nil then return x:neg():amax():neg() end
  local v, i = x:neg():max(dim, keepdim)
  return v:neg(), i
end

-- norm(p, dims, keepdim) with p = 1, 2 or math.huge ('inf')
function T.norm(x, p, dims, keepdim)
  p = p or 2
  if p == 2 then
    -- sqrt's derivative is infinite at 0, where the norm's is 0 (as PyTorch has it; a zero start
    -- of an attack is there): the root of s + [s == 0], less [s == 0], keeps every value and
    -- makes the gradient at 0 a finite slope times 2x = 0
    local s = x:mul(x):sum(dims, keepdim)
    local zero = s:eq(0):float()
    return s:add(zero):sqrt():sub(zero)
  end
  if p == 1 then return x:abs():sum(dims, keepdim) end
  if p == math.huge or p == 'inf' then return x:abs():amax(dims, keepdim) end
  raise(('norm: p must be 1, 2 or math.huge, got %s'):format(tostring(p)))
end

-- ---------------------------------------------------------------- layout

function T.reshape(x, ...)
  local nd = read_shape('reshape', ...)
  return wrap(C.lat_reshape(need(x, 'reshape: input'), nd, shape_buf))
end
T.view = T.reshape

function T.flatten(x, first, last)
  first, last = first or 1, last or -1
  local shape, nd = x.shape, x.ndim
  if first < 0 then first = nd + first + 1 end
  if last < 0 then last = nd + last + 1 end
  local out = {}
  for d = 1, first - 1 do out[#out + 1] = shape[d] end
  local p = 1
  for d = first, last do p = p * shape[d] end
  out[#out + 1] = p
  for d = last + 1, nd do out[#out + 1] = shape[d] end
  return x:reshape(out)
end

function T.unsqueeze(x, dim)
  local shape, nd = x.shape, x.ndim
  local d = dim < 0 and nd + dim + 2 or dim
  if d < 1 or d > nd + 1 then
    raise(('unsqueeze: dimension %s is out of range for a tensor of shape [%s] (use 1 to %d, or -%d to -1)')
      :format(tostring(dim), table.concat(shape, ', '), nd + 1, nd + 1))
  end
  table.insert(shape, d, 1)
  return x:reshape(shape)
end

function T.squeeze(x, dim)
  local shape, out = x.shape, {}
  local d = dim and (dim < 0 and #shape + dim + 1 or dim)
  for i = 1, #shape do
    if not (shape[i] == 1 and (d == nil or d == i)) then out[#out + 1] = shape[i] end
  end
  return x:reshape(out)
end

-- narrow(dim, start, length): start is 1-based. Along dimension 1 (or after leading dimensions of
-- size 1) the result is a view: writes into it change x. Along any other dimension it is a copy
-- (tensors are contiguous), and in-place writes into it raise an error; clone() it to write
-- into a copy on purpose.
function T.narrow(x, dim, start, length)
  local d = cdim(dim, 'narrow')
  if start == 0 then raise('narrow: start 0 is invalid (positions are 1-based; -1 is the last)') end
  if start < 0 then start = x:size(dim) + start + 1 end
  return wrap(C.lat_narrow(need(x, 'narrow: input'), d, start - 1, length))
end

-- select(dim, i): the slice at 1-based position i, with that dimension removed
function T.select(x, dim, i)
  local shape = x.shape
  local d = cdim(dim, 'select')
  if d < 0 then d = #shape + d end
  if d < 0 or d >= #shape then
    raise(('select: dimension %d is out of range for a tensor of shape [%s]'):format(dim, table.concat(shape, ', ')))
  end
  local size = shape[d + 1]
  if i == 0 or i > size or i < -size then
    raise(('select: position %s is out of range for dimension %d of a tensor of shape [%s] (use 1 to %d, or -%d to -1)')
      :format(tostring(i), dim, table.concat(shape, ', '), size, size))
  end
  if i < 0 then i = size + i + 1 end
  return x:narrow(dim, i, 1):squeeze(dim)
end

function T.permute(x, ...)
  local order = type(...) == 'table' and ... or { ... }
  if #order ~= x.ndim then raise(('permute: %d dimensions given for a %d-dimensional tensor'):format(#order, x.ndim)) end
  for i = 1, #order do dims_buf[i - 1] = cdim(order[i], 'permute') end
  return wrap(C.lat_permute(need(x, 'permute: input'), dims_buf))
end

function T.transpose(x, d0, d1)
  return wrap(C.lat_transpose(need(x, 'transpose: input'), cdim(d0 or 1, 'transpose'), cdim(d1 or 2, 'transpose')))
end

function T.expand(x, ...)
  local nd = read_shape('expand', ...)
  return wrap(C.lat_expand(need(x, 'expand: input'), nd, shape_buf))
end

function lat.cat(list, dim)
  local n = #list
  local arr = ffi.new('lat_tensor*[?]', n)
  for i = 1, n do arr[i - 1] = need(list[i], 'cat: tensor ' .. i) end
  return wrap(C.lat_cat(n, arr, cdim(dim or 1, 'cat')))
end

function lat.stack(list, dim)
  dim = dim or 1
  local us = {}
  for i = 1, #list do us[i] = list[i]:unsqueeze(dim) end
  return lat.cat(us, dim)
end

-- ---------------------------------------------------------------- linear algebra

function T.matmul(a, b) return wrap(C.lat_matmul(need(a, 'matmul: first input'), need(b, 'matmul: second input'))) end
function lat.linear(x, w, b) return wrap(C.lat_linear(need(x, 'linear: input'), need(w, 'linear: weight'), opt(b, 'linear: bias'))) end

-- ---------------------------------------------------------------- convolution and pooling

local function pair(v, default)
  if v == nil then return default, default end
  if type(v) == 'number' then return v, v end
  return v[1], v[2]
end

-- conv2d(x, w, b, {stride=, padding=}); x [N, C, H, W], w [O, C, kh, kw]
function lat.conv2d(x, w, b, opts)
  opts = opts or {}
  local sh, sw = pair(opts.stride, 1)
  local ph, pw = pair(opts.padding, 0)
  return wrap(C.lat_conv2d(need(x, 'conv2d: input'), need(w, 'conv2d: weight'), opt(b, 'conv2d: bias'), sh, sw, ph, pw))
end

local function pool_args(kernel, opts)
  opts = opts or {}
  local kh, kw = pair(kernel)
  if not kh then raise('pooling: kernel size required') end
  local sh, sw = pair(opts.stride, nil)
  sh, sw = sh or kh, sw or kw
  local ph, pw = pair(opts.padding, 0)
  return kh, kw, sh, sw, ph, pw
end

function lat.max_pool2d(x, kernel, opts)
  return wrap(C.lat_max_pool2d(need(x, 'max_pool2d: input'), pool_args(kernel, opts)))
end
function lat.avg_pool2d(x, kernel, opts)
  return wrap(C.lat_avg_pool2d(need(x, 'avg_pool2d: input'), pool_args(kernel, opts)))
end
-- mean over the spatial dimensions of [N, C, H, W], giving [N, C]
function lat.global_avg_pool2d(x) return x:mean({ 3, 4 }) end

-- ---------------------------------------------------------------- softmax and losses

function T.softmax(x, dim) return wrap(C.lat_softmax(need(x, 'softmax: input'), cdim(dim or -1, 'softmax'))) end
function T.log_softmax(x, dim) return wrap(C.lat_log_softmax(need(x, 'log_softmax: input'), cdim(dim or -1, 'log_softmax'))) end

local REDUCTIONS = { none = C.LAT_REDUCE_NONE, mean = C.LAT_REDUCE_MEAN, sum = C.LAT_REDUCE_SUM }
-- cross_entropy(logits [N, C] or [..., C], labels int32 [N] or [...], {ignore_index=, reduction=})
function lat.cross_entropy(logits, labels, opts)
  opts = opts or {}
  local red = REDUCTIONS[opts.reduction or 'mean']
  if not red then raise("cross_entropy: reduction must be 'mean', 'sum' or 'none'") end
  return wrap(C.lat_cross_entropy(need(logits, 'cross_entropy: logits'), need(labels, 'cross_entropy: labels'),
    opts.ignore_index or -100, red))
end

-- attention(q, k, v, heads, {causal=, mask=}): q, k, v [B, T, D]; mask [B, T] nonzero at keys
-- that may be attended (padding masked out); the scaling is 1/sqrt(D / heads)
function lat.attention(q, k, v, heads, opts)
  opts = opts or {}
  return wrap(C.lat_attention(need(q, 'attention: queries'), need(k, 'attention: keys'), need(v, 'attention: values'),
    heads, opts.causal and 1 or 0, opt(opts.mask, 'attention: mask')))
end

-- ---------------------------------------------------------------- normalisation

function lat.layer_norm(x, w, b, eps) return wrap(C.lat_layer_norm(need(x, 'layer_norm: input'), opt(w, 'layer_norm: weight'), opt(b, 'layer_norm: bias'), eps or 1e-5)) end

-- batch_norm(x, w, b, running_mean, running_var, {training=, momentum=, eps=})
function lat.batch_norm(x, w, b, rm, rv, opts)
  opts = opts or {}
  return wrap(C.lat_batch_norm(need(x, 'batch_norm: input'), opt(w, 'batch_norm: weight'), opt(b, 'batch_norm: bias'),
    opt(rm, 'batch_norm: running mean'), opt(rv, 'batch_norm: running variance'), opts.training and 1 or 0,
    opts.momentum or 0.1, opts.eps or 1e-5))
end

-- ---------------------------------------------------------------- indexing

function lat.embedding(weight, ids) return wrap(C.lat_embedding(need(weight, 'embedding: weight'), need(ids, 'embedding: ids'))) end
function T.gather(x, dim, index) return wrap(C.lat_gather(need(x, 'gather: input'), cdim(dim, 'gather'), need(index, 'gather: index'))) end
function T.index_select(x, dim, index) return wrap(C.lat_index_select(need(x, 'index_select: input'), cdim(dim, 'index_select'), need(index, 'index_select: index'))) end

-- dropout(x, p, training[, rng]): identity when not training
function lat.dropout(x, p, training, rng)
  if not training or p == 0 then return x end
  return wrap(C.lat_dropout(need(x, 'dropout: input'), p, rng or P.default_generator))
end

-- functional forms of the methods: lat.relu(x), lat.sum(x, dims), ...
for _, name in ipairs({ 'add', 'sub', 'mul', 'div', 'neg', 'exp', 'log', 'sqrt', 'abs', 'relu', 'gelu',
  'tanh', 'sigmoid', 'pow', 'clamp', 'sum', 'mean', 'amax', 'argmax', 'max', 'min', 'norm', 'reshape',
  'flatten', 'narrow', 'permute', 'transpose', 'expand', 'matmul', 'softmax', 'log_softmax',
  'gather', 'index_select', 'squeeze', 'unsqueeze' }) do
  lat[name] = T[name]
end

return { methods = T, functions = lat }
