-- tensor/init.lua: the tensor type (an ffi.metatype over struct lat_tensor), its creation functions
-- and its methods.
--
-- Index bases: one per argument, whatever type the argument comes in.
--   1-based: dimension numbers (negative counts from the end: -1 is the last) and positions, in
--     a tensor (t:get, t:set, t:select, t:narrow's start) or in a dataset (ds:get(i) and
--     ds:subset(positions), a Lua list or an int32 tensor alike, both 1..ds:len()).
--   0-based: values that are data inside tensors: class labels, token ids, argmax results, the
--     index tensors of index_select, gather and embedding (passed to C unchanged; so are a
--     loader batch's index and the argument of ds:batch), and offsets through the raw pointers
--     (t.f[0] is the first element).
--
-- Element access: t:get(i, j, ...) reads one element, t:set(v, i, j, ...) writes one (a value
-- the dtype cannot hold is an error: a fraction or out-of-range integer for int32 and uint8, a
-- finite number beyond float32's range); lat.tensor{{1, 2}, {3, 4}} builds a tensor from nested
-- Lua tables, with the same checks, and t:tolist() reads one back. Recipes need nothing else.
--
-- Raw pointers t.f, t.i, t.u (float *, int32_t *, uint8_t *) and t.data (void *) are for fast
-- loops: 0-based, unchecked, and the tensor lives at least as long as the pointer object read
-- from it (local p = lat.full({9}, 7).f is safe). A pointer derived from it (p + k, a cast) or
-- copied into C memory does not hold the tensor: keep the tensor or the original pointer too.
--
-- In-place methods (name ending in '_', and set) are not recorded for autograd. With gradients
-- enabled they raise an error when the target or a source requires gradients (write the
-- out-of-place form, y = y * 3 for y:mul_(3), or make the change inside lat.no_grad, as the
-- optimisers do); they raise an error on a tensor that narrow had to copy (a narrow along a
-- dimension other than the first), as the write would not reach the narrowed tensor. Each write
-- counts in t._version, shared with t's views (reshape, detach, narrow along dimension 1), and
-- backward raises an error when a tensor an op kept for it was written after the op ran. Writes
-- through the raw pointers are not checked or counted: call t:mark_written() before writing so
-- into a tensor that an op may have kept.
local core = require 'lat.core'
local ffi, C, wrap, check, raise = core.ffi, core.C, core.wrap, core.check, core.raise
local P = require 'lat.tensor.private'
local dtype_code, is_tensor, need_tensor, opt_tensor = P.dtype_code, P.is_tensor, P.need_tensor, P.opt_tensor
local shape_buf, check_size, read_shape = P.shape_buf, P.check_size, P.read_shape

local T = {}        -- methods
local lat = {}      -- functions that become part of the lat namespace

local DTYPE_NAMES = { [0] = 'float32', [1] = 'int32', [2] = 'uint8' }
lat.float32, lat.int32, lat.uint8 = 'float32', 'int32', 'uint8'

lat.is_tensor = is_tensor

-- A value the dtype holds, or an error naming where it was going: an integer in range for int32
-- and uint8; for float32 any number but a finite one that would round to infinity (NaN and
-- +-inf are float32 values). where is a string or a function returning one (built on error only).
local FLOAT32_INF_FROM = (2 - 2 ^ -24) * 2 ^ 127 -- the midpoint above FLT_MAX, which rounds up
local INT_RANGE = { [C.LAT_I32] = { -2 ^ 31, 2 ^ 31 - 1, 'int32' }, [C.LAT_U8] = { 0, 255, 'uint8' } }
local function check_value(what, dt, v, where)
  local range = INT_RANGE[tonumber(dt)]
  local ok
  if range then ok = v == math.floor(v) and v >= range[1] and v <= range[2]
  else ok = not (v >= FLOAT32_INF_FROM or v <= -FLOAT32_INF_FROM) or v == math.huge or v == -math.huge end
  if not ok then
    if type(where) == 'function' then where = where() end
    local need = range and ('an integer in %d..%d'):format(range[1], range[2]) or 'a finite value within +-3.4e38'
    raise(('%s: %s (%s) does not fit %s, which needs %s'):format(what, where, tostring(v), range and range[3] or 'float32', need))
  end
end

-- the trailing option of a creation call: a dtype string or a table {dtype=, requires_grad=}
local function creation_opts(...)
  local n = select('#', ...)
  local last = n > 0 and select(n, ...) or nil
  if type(last) == 'string' then return { dtype = last } end
  if type(last) == 'table' and (last.dtype or last.requires_grad ~= nil or last.rng) then return last end
  return {}
end

local function finish(t, opts)
  if opts.requires_grad then check(C.lat_set_requires_grad(t.ptr, 1)) end
  return t
end

-- ---------------------------------------------------------------- creation

function lat.empty(...)
  local o = creation_opts(...)
  local nd = read_shape('empty', ...)
  return finish(wrap(C.lat_empty(dtype_code(o.dtype), nd, shape_buf)), o)
end

function lat.full(shape, value, opts)
  opts = type(opts) == 'string' and { dtype = opts } or opts or {}
  local nd = read_shape('full', shape)
  if type(value) ~= 'number' then raise('full: value must be a number') end
  return finish(wrap(C.lat_full(dtype_code(opts.dtype), nd, shape_buf, value)), opts)
end

function lat.zeros(...)
  local o = creation_opts(...)
  local nd = read_shape('zeros', ...)
  return finish(wrap(C.lat_full(dtype_code(o.dtype), nd, shape_buf, 0)), o)
end

function lat.ones(...)
  local o = creation_opts(...)
  local nd = read_shape('ones', ...)
  return finish(wrap(C.lat_full(dtype_code(o.dtype), nd, shape_buf, 1)), o)
end

function lat.zeros_like(t) return lat.zeros(t.shape, t.dtype) end
function lat.ones_like(t) return lat.ones(t.shape, t.dtype) end

-- arange(stop) or arange(start, stop[, step][, dtype])
function lat.arange(a, b, c, d)
  local start, stop, step, dtype
  if b == nil or type(b) == 'string' then start, stop, step, dtype = 0, a, 1, b
  elseif c == nil or type(c) == 'string' then start, stop, step, dtype = a, b, 1, c
  else start, stop, step, dtype = a, b, c, d end
  return wrap(C.lat_arange(start, stop, step, dtype_code(dtype)))
end

-- lat.tensor(nested table or number[, dtype or opts])
function lat.tensor(data, opts)
  opts = type(opts) == 'string' and { dtype = opts } or opts or {}
  if is_tensor(data) then return finish(data:clone(), opts) end
  local dt = dtype_code(opts.dtype)
  local shape, flat = {}, {}
  if type(data) == 'number' then
    check_value('tensor', dt, data, 'the value')
    flat[1] = data
  elseif type(data) == 'table' then
    local probe = data
    while type(probe) == 'table' do
      shape[#shape + 1] = #probe
      probe = probe[1]
    end
    -- path: the 1-based position of x, for messages ('[2, 1]'); the first entries fix the shape
    local path = {}
    local function where() return #path > 0 and ('entry [' .. table.concat(path, ', ') .. ']') or 'the table' end
    local function walk(x, depth)
      if depth > #shape then
        if type(x) ~= 'number' then
          raise(('tensor: ragged nested table: %s is a %s where a number was expected (shape %s from the first entries)')
            :format(where(), type(x), '[' .. table.concat(shape, ', ') .. ']'))
        end
        check_value('tensor', dt, x, where)
        flat[#flat + 1] = x
        return
      end
      if type(x) ~= 'table' then
        raise(('tensor: ragged nested table: %s is a %s where a table of %d entries was expected (shape %s from the first entries)')
          :format(where(), type(x), shape[depth], '[' .. table.concat(shape, ', ') .. ']'))
      end
      if #x ~= shape[depth] then
        raise(('tensor: ragged nested table: %s has %d entries, but dimension %d has %d (shape %s from the first entries)')
          :format(where(), #x, depth, shape[depth], '[' .. table.concat(shape, ', ') .. ']'))
      end
      for i = 1, #x do
        path[depth] = i
        walk(x[i], depth + 1)
      end
      path[depth] = nil
    end
    walk(data, 1)
  else
    raise('tensor: expected a table of numbers or a number, got ' .. type(data))
  end
  local t = lat.empty(shape, opts.dtype or 'float32')
  local c = t.ptr
  local p = dt == C.LAT_F32 and c.f or dt == C.LAT_I32 and c.i or c.u
  for k = 1, #flat do p[k - 1] = flat[k] end
  return finish(t, opts)
end

-- ---------------------------------------------------------------- random numbers

-- A generator: lat.Generator(seed). lat.manual_seed(s) reseeds the default one.
lat.Generator = P.generator
lat.default_generator = P.default_generator
function lat.manual_seed(seed) C.lat_rng_seed(lat.default_generator, seed) end

local function gen(opts) return (type(opts) == 'table' and opts.rng) or lat.default_generator end

local function random_tensor(what, fill, ...)
  local o = creation_opts(...)
  local nd = read_shape(what, ...)
  local t = wrap(C.lat_empty(C.LAT_F32, nd, shape_buf))
  fill(t, gen(o))
  return finish(t, o)
end

function lat.randn(...)
  return random_tensor('randn', function(t, g) check(C.lat_normal_(t.ptr, g, 0, 1)) end, ...)
end

function lat.rand(...)
  return random_tensor('rand', function(t, g) check(C.lat_uniform_(t.ptr, g, 0, 1)) end, ...)
end

-- randint(lo, hi, shape[, opts]): integers in [lo, hi), int32 unless opts.dtype says otherwise
function lat.randint(lo, hi, shape, opts)
  opts = type(opts) == 'string' and { dtype = opts } or opts or {}
  for name, v in pairs({ lo = lo, hi = hi }) do
    if type(v) ~= 'number' then raise(('randint: %s must be a number, got %s'):format(name, type(v))) end
    check_size('randint', name, v)
  end
  local nd = read_shape('randint', shape)
  local t = wrap(C.lat_empty(dtype_code(opts.dtype or 'int32'), nd, shape_buf))
  check(C.lat_randint_(t.ptr, gen(opts), lo, hi))
  return t
end

function lat.randperm(n, opts)
  if type(n) ~= 'number' then raise('randperm: n must be a number, got ' .. type(n)) end
  check_size('randperm', 'n', n)
  return wrap(C.lat_randperm(n, gen(opts)))
end

function T.normal_(t, mean, std, g) check(C.lat_normal_(t.ptr, g or lat.default_generator, mean or 0, std or 1)); return t end
function T.uniform_(t, lo, hi, g) check(C.lat_uniform_(t.ptr, g or lat.default_generator, lo or 0, hi or 1)); return t end
function T.bernoulli_(t, p, g) check(C.lat_bernoulli_(t.ptr, g or lat.default_generator, p)); return t end

-- ---------------------------------------------------------------- properties

local function shape_table(t)
  local c, s = t.ptr, {}
  for d = 0, c.ndim - 1 do s[d + 1] = tonumber(c.shape_[d]) end
  return s
end

function T.size(t, d)
  local c = t.ptr
  if d == nil then return shape_table(t) end
  local nd = c.ndim
  local i = d > 0 and d or nd + d + 1
  if i < 1 or i > nd then raise(('size: dimension %d out of range for %d dimensions'):format(d, nd)) end
  return tonumber(c.shape_[i - 1])
end
function T.dim(t) return t.ptr.ndim end
function T.numel(t) return tonumber(t.ptr.numel_) end

function T.item(t)
  local c = t.ptr
  if c.numel_ ~= 1 then raise(('item: the tensor has %d elements, not one'):format(tonumber(c.numel_))) end
  local dt = c.dtype_
  return dt == C.LAT_F32 and c.f[0] or dt == C.LAT_I32 and c.i[0] or c.u[0]
end

-- the flat element offset of 1-based positions (negative from the end), one per dimension
local function offset_of(t, c, what, ...)
  local n = select('#', ...)
  if n ~= c.ndim then raise(('%s: %d positions given for a %d-dimensional tensor'):format(what, n, c.ndim)) end
  local off = 0
  for d = 1, n do
    local i = select(d, ...)
    if type(i) ~= 'number' or i ~= math.floor(i) then
      raise(('%s: position %s in dimension %d is not an integer'):format(what, tostring(i), d))
    end
    local size = tonumber(c.shape_[d - 1])
    if i < 0 then i = size + i + 1 end
    if i < 1 or i > size then
      raise(('%s: position %d out of range 1..%d in dimension %d (shape [%s])')
        :format(what, select(d, ...), size, d, table.concat(shape_table(t), ', ')))
    end
    off = off * size + (i - 1)
  end
  return off
end

-- t:get(i, j, ...) with 1-based positions, one per dimension
function T.get(t, ...)
  local c = t.ptr
  local off = offset_of(t, c, 'get', ...)
  local dt = c.dtype_
  return dt == C.LAT_F32 and c.f[off] or dt == C.LAT_I32 and c.i[off] or c.u[off]
end

-- t:set(v, i, j, ...): writes v there (checked against the dtype); returns t
function T.set(t, value, ...)
  if type(value) ~= 'number' then raise('set: the value must be a number, got ' .. type(value)) end
  local c = t.ptr
  local off = offset_of(t, c, 'set', ...)
  local dt = c.dtype_
  check_value('set', dt, value, 'the value')
  check(C.lat_mark_written(c, 'set'))
  if dt == C.LAT_F32 then c.f[off] = value elseif dt == C.LAT_I32 then c.i[off] = value else c.u[off] = value end
  return t
end

-- nested Lua tables of the values
function T.tolist(t)
  local c = t.ptr
  local dt = c.dtype_
  local p = dt == C.LAT_F32 and c.f or dt == C.LAT_I32 and c.i or c.u
  if c.ndim == 0 then return p[0] end
  local shape = shape_table(t)
  local pos = 0
  local function build(d)
    local r = {}
    for i = 1, shape[d] do
      if d == #shape then r[i] = p[pos]; pos = pos + 1 else r[i] = build(d + 1) end
    end
    return r
  end
  return build(1)
end

-- ---------------------------------------------------------------- copies and dtypes

function T.clone(t) return wrap(C.lat_clone(t.ptr)) end
function T.detach(t) return wrap(C.lat_detach(t.ptr)) end
function T.to(t, dtype) return wrap(C.lat_to_dtype(t.ptr, dtype_code(dtype))) end
function T.float(t) return T.to(t, 'float32') end
function T.int(t) return T.to(t, 'int32') end
function T.byte(t) return T.to(t, 'uint8') end
function T.contiguous(t) return t end

-- ---------------------------------------------------------------- in place

-- t:fill_(v), zero_, copy_(src), add_(x[, alpha]), mul_(s), clamp_(lo, hi): in place, never
-- recorded. With gradients on, a target or source that requires gradients raises an error (write
-- y = y * s, or change it inside lat.no_grad); so does a copy that narrow made. Each write counts
-- in t._version, and backward raises if an op's kept input or output was written after it ran.
function T.fill_(t, v) check(C.lat_fill_(t.ptr, v)); return t end
function T.zero_(t) check(C.lat_fill_(t.ptr, 0)); return t end
function T.copy_(t, src) check(C.lat_copy_(t.ptr, need_tensor(src, 'copy_: source'))); return t end
-- t += alpha * x
function T.add_(t, x, alpha)
  if type(x) == 'number' then
    check(C.lat_axpy_(t.ptr, x, lat.ones(t.shape).ptr))
  else
    check(C.lat_axpy_(t.ptr, alpha or 1, need_tensor(x, 'add_: source')))
  end
  return t
end
function T.mul_(t, s) check(C.lat_scale_(t.ptr, s)); return t end
function T.clamp_(t, lo, hi) check(C.lat_clamp_(t.ptr, lo or -math.huge, hi or math.huge)); return t end
-- before writing through t.f, t.i or t.u: checks the write as the in-place methods do, counts it
function T.mark_written(t) check(C.lat_mark_written(t.ptr, 'mark_written')); return t end

-- ---------------------------------------------------------------- autograd

function T.requires_grad_(t, flag)
  if flag == nil then flag = true end
  check(C.lat_set_requires_grad(t.ptr, flag and 1 or 0))
  return t
end

-- t:backward([g][, {retain_graph = true}]): the graph's saved buffers are freed as the pass goes
-- through it (a second pass through it is an error) unless retain_graph is set.
local function retain_graph(opts, what)
  if opts == nil then return 0 end
  if type(opts) ~= 'table' then core.raise(what .. ': options must be a table, got ' .. type(opts)) end
  return opts.retain_graph and 1 or 0
end

function T.backward(t, g, opts)
  if type(g) == 'table' and opts == nil then g, opts = nil, g end
  check(C.lat_backward(t.ptr, opt_tensor(g, 'backward: gradient'), retain_graph(opts, 'backward')))
end

function T.zero_grad(t) check(C.lat_zero_grad(t.ptr)) end

-- lat.grad(output, inputs[, output_grad]): gradients of output with respect to each input
-- (leaves or intermediate values), leaving every .grad untouched. Returns a table, or a single
-- tensor when inputs is a single tensor. opts.retain_graph as for backward.
function lat.grad(out, inputs, out_grad, opts)
  if type(out_grad) == 'table' and opts == nil then out_grad, opts = nil, out_grad end
  local single = is_tensor(inputs)
  if single then inputs = { inputs } end
  local n = #inputs
  local wrt = ffi.new('lat_tensor*[?]', n)
  local res = ffi.new('lat_tensor*[?]', n)
  for i = 1, n do wrt[i - 1] = need_tensor(inputs[i], 'grad: input ' .. i) end
  check(C.lat_grad(need_tensor(out, 'grad: output'), opt_tensor(out_grad, 'grad: output gradient'), n, wrt, res,
    retain_graph(opts, 'grad')))
  local grads = {}
  for i = 1, n do grads[i] = wrap(res[i - 1]) end
  if single then return grads[1] end
  return grads
end

-- Run fn with gradient recording off; restores the previous mode even on error.
function lat.no_grad(fn, ...)
  if type(fn) ~= 'function' then raise('no_grad: expected a function to run, got ' .. type(fn)) end
  local prev = C.lat_is_grad_enabled()
  C.lat_set_grad_enabled(0)
  local res = { n = 0 }
  local function collect(ok, ...)
    res.n = select('#', ...)
    for i = 1, res.n do res[i] = (select(i, ...)) end
    return ok
  end
  local ok = collect(pcall(fn, ...))
  C.lat_set_grad_enabled(prev)
  if not ok then error(res[1], 0) end
  return unpack(res, 1, res.n)
end
function lat.set_grad_enabled(flag) C.lat_set_grad_enabled(flag and 1 or 0) end
function lat.is_grad_enabled() return C.lat_is_grad_enabled() ~= 0 end

-- ---------------------------------------------------------------- field access

-- A raw pointer keeps its tensor alive: a cdata pointer cannot hold a Lua reference, so the
-- tensor is held by a table under the pointer object as a weak key (the entry goes when the
-- pointer is collected, the tensor at the next collection if nothing else holds it). Each tensor
-- hands out one pointer object per field while that lives, so loops over many tensors do not
-- fill the table with new keys (measured: 15 ns an access round a thousand tensors, 4 ns raw).
local pointer_owner = setmetatable({}, { __mode = 'k' })
local function raw_pointer(field)
  local pointer_of = setmetatable({}, { __mode = 'kv' })
  return function(t)
    local p = pointer_of[t]
    if p == nil then
      p = t.ptr[field]
      pointer_of[t], pointer_owner[p] = p, t
    end
    return p
  end
end

local getters = {
  shape = shape_table,
  dtype = function(t) return DTYPE_NAMES[t.ptr.dtype_] end,
  requires_grad = function(t) return t.ptr.req_grad_ ~= 0 end,
  _version = function(t) return tonumber(C.lat_data_version(t.ptr)) end,
  grad = function(t)
    local g = t.ptr.grad_
    if g == nil then return nil end
    return wrap(C.lat_retain(g))
  end,
  is_leaf = function(t) return t.ptr.node == nil end,
  grad_fn = function(t)
    local n = C.lat_node_name(t.ptr)
    return n ~= nil and ffi.string(n) or nil
  end,
  T = function(t) return t:transpose(-2, -1) end,
  ndim = function(t) return t.ptr.ndim end,
  -- raw data pointers for fast loops in Lua (0-based, no bounds checks; see the top of the file)
  data = raw_pointer('data'),
  f = raw_pointer('f'),
  i = raw_pointer('i'),
  u = raw_pointer('u'),
}

local setters = {
  requires_grad = function(t, v) T.requires_grad_(t, v) end,
  grad = function(t, v)
    if v ~= nil then raise('grad: only nil can be assigned (to drop the gradient)') end
    local c = t.ptr
    local g = c.grad_
    if g ~= nil then c.grad_ = nil; C.lat_release(g) end
  end,
}

-- ---------------------------------------------------------------- the metatype

-- the differentiable ops (tensor/ops.lua): methods, and functions of the lat namespace
local ops = require 'lat.tensor.ops'
for k, v in pairs(ops.methods) do T[k] = v end
for k, v in pairs(ops.functions) do lat[k] = v end

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
  __tostring = require('lat.tensor.repr').tensor,
})
lat.Tensor = T -- the methods: a function added here is a method of every tensor

-- ---------------------------------------------------------------- threads and memory

function lat.set_num_threads(n) C.lat_set_num_threads(n) end
function lat.get_num_threads() return C.lat_get_num_threads() end

-- the instruction set lat's kernels use: 'avx512', 'avx2' or 'generic' (LAT_CPU may lower it)
local cpu_env = os.getenv('LAT_CPU')
if cpu_env and cpu_env ~= '' and cpu_env ~= 'avx512' and cpu_env ~= 'avx2' and cpu_env ~= 'generic' then
  error(("LAT_CPU must be 'avx512', 'avx2' or 'generic', got '%s'"):format(cpu_env), 0)
end
local cpu_missing = C.lat_cpu_missing()
if cpu_missing ~= nil then
  error(('liblat was built for %s, which this CPU lacks: build it again with cmake -DLAT_ARCH=x86-64'):format(ffi.string(cpu_missing)), 0)
end
function lat.cpu() return ffi.string(C.lat_cpu_level()) end

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

C.lat_get_num_threads() -- settle the thread count (LAT_NUM_THREADS or all cores)
return lat
