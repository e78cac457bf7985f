-- loader.lua: DataLoader (batches of a dataset, in order or shuffled reproducibly per epoch),
-- the default collate and compose for chaining batch transforms.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local ffi, raise = core.ffi, core.raise
local is_tensor = lat.is_tensor

local L = {}

-- compose{f, g, ...}: the transform that applies f, then g, ...; each takes (batch, info) and
-- returns the batch (a new table or the same one changed).
function L.compose(list)
  if type(list) == 'function' then return list end
  if type(list) ~= 'table' then raise('compose: expected a list of functions') end
  for k, f in ipairs(list) do
    if type(f) ~= 'function' then raise(('compose: entry %d is a %s, not a function'):format(k, type(f))) end
  end
  local fs = { unpack(list) }
  return function(batch, info)
    for k = 1, #fs do
      local out = fs[k](batch, info)
      if out == nil then error(('transform %d of %d returned nothing (a transform returns the batch)'):format(k, #fs), 2) end
      batch = out
    end
    return batch
  end
end

local function is_int32(v) return v == math.floor(v) and v >= -2147483648 and v <= 2147483647 end

-- collate(examples): one batch table from example tables. Per field: tensors are stacked along a
-- new dimension 1; numbers become a tensor (int32 when all are integers, else float32); other
-- values (strings, tables) are gathered into a Lua list.
function L.collate(examples)
  local batch, first = {}, examples[1]
  if type(first) ~= 'table' then raise('collate: an example must be a table, got ' .. type(first)) end
  for key, v in pairs(first) do
    if is_tensor(v) then
      local list = {}
      for k, ex in ipairs(examples) do list[k] = ex[key] end
      batch[key] = lat.stack(list, 1)
    elseif type(v) == 'number' then
      local ints = true
      for _, ex in ipairs(examples) do
        local x = ex[key]
        if type(x) ~= 'number' then raise(("collate: field '%s' is a number in example 1 but a %s in another"):format(key, type(x))) end
        if not is_int32(x) then ints = false end
      end
      local t = lat.empty(#examples, ints and 'int32' or 'float32')
      local p = ints and t.i or t.f
      for k, ex in ipairs(examples) do p[k - 1] = ex[key] end
      batch[key] = t
    else
      local list = {}
      for k, ex in ipairs(examples) do list[k] = ex[key] end
      batch[key] = list
    end
  end
  return batch
end

-- ---------------------------------------------------------------- DataLoader

local Loader = {}

-- the number of batches in an epoch
function Loader.len(s)
  local n, bs = s.dataset:len(), s.batch_size
  if s.drop_last then return math.floor(n / bs) end
  return math.ceil(n / bs)
end

-- The 0-based order of the examples in epoch k (an int32 tensor): 0, 1, ... without shuffling;
-- with it, a permutation drawn from the seed's stream at offset k * 2^33, so each epoch has its
-- own order and epoch k's order depends only on the seed and k.
function Loader.order(s, epoch)
  local n = s.dataset:len()
  if not s.shuffle then return lat.arange(n, 'int32') end
  local g = lat.Generator(s.seed)
  g.offset = ffi.cast('uint64_t', epoch or s.epoch) * 0x200000000ULL
  return lat.randperm(n, { rng = g })
end

-- for batch in loader:iter() do ... end: the batches of the next epoch (1, 2, ... per call), or
-- of epoch k with loader:iter(k). Each batch has the dataset's fields and `index`, the int32
-- 0-based positions of its examples in the dataset; transforms get (batch, {epoch=, step=}).
function Loader.iter(s, epoch)
  if epoch == nil then
    s.epoch = s.epoch + 1
    epoch = s.epoch
  elseif type(epoch) ~= 'number' or epoch < 0 or epoch ~= math.floor(epoch) then
    raise('DataLoader:iter: the epoch must be a whole number >= 0')
  end
  local ds, bs, nb = s.dataset, s.batch_size, Loader.len(s)
  local n = ds:len()
  local order = Loader.order(s, epoch)
  local transform, collate = s.transform, s.collate
  local step = 0
  return function()
    if step >= nb then return nil end
    local start = step * bs
    local count = math.min(bs, n - start)
    step = step + 1
    local index = order:narrow(1, start + 1, count)
    local batch
    if ds.batch and not s.use_get then
      batch = ds:batch(index)
    else
      local examples = {}
      for k = 0, count - 1 do examples[k + 1] = ds:get(index.i[k] + 1) end
      batch = collate(examples)
    end
    if batch.index == nil then batch.index = index end
    if transform then
      batch = transform(batch, { epoch = epoch, step = step })
      if batch == nil then raise('DataLoader: the transform returned nothing (a transform returns the batch)') end
    end
    return batch
  end
end

-- DataLoader(dataset, {batch_size = 1, shuffle = false, seed = (drawn from lat's default
-- generator), drop_last = false, transform = fn or {fn, ...}, collate = fn}).
-- #loader and loader:len() give the number of batches per epoch.
function L.DataLoader(dataset, opts)
  opts = opts or {}
  if type(dataset) ~= 'table' or type(dataset.len) ~= 'function' or type(dataset.get) ~= 'function' then
    raise('DataLoader: expected a dataset (a table with :len() and :get(i))')
  end
  local bs = opts.batch_size or 1
  if type(bs) ~= 'number' or bs < 1 or bs ~= math.floor(bs) then
    raise('DataLoader: batch_size must be a whole number >= 1, got ' .. tostring(bs))
  end
  local seed = opts.seed
  if seed == nil then seed = lat.randint(0, 2147483647, { 1 }):item() end
  local state = {
    dataset = dataset, batch_size = bs, shuffle = opts.shuffle and true or false, seed = seed,
    drop_last = opts.drop_last and true or false,
    transform = opts.transform and L.compose(opts.transform) or nil,
    collate = opts.collate or L.collate, use_get = opts.use_get, epoch = 0,
  }
  -- a userdata, because LuaJIT honours __len (#loader) only on userdata and cdata
  local proxy = newproxy(true)
  local mt = getmetatable(proxy)
  mt.__index = function(_, k)
    local m = Loader[k]
    if m then return function(self, ...) return m(state, ...) end end
    return state[k]
  end
  mt.__newindex = function(_, k, v)
    if k == 'transform' then v = v and L.compose(v) or nil end
    state[k] = v
  end
  mt.__len = function() return Loader.len(state) end
  mt.__tostring = function()
    return ('DataLoader(%d examples, batch_size=%d, shuffle=%s, %d batches)'):format(
      dataset:len(), bs, tostring(state.shuffle), Loader.len(state))
  end
  return proxy
end

return L
