-- dataset.lua: the dataset protocol and its building blocks. A dataset is any table with
-- :len() and :get(i) (1-based) returning an example table; one that also has :batch(index)
-- returns whole batches at once, index being the loader's int32 index tensor of 0-based rows
-- (tensor datasets pass it to index_select along dimension 1, in C). Positions a user gives,
-- to get and to subset, are 1-based (the index-base rule: lua/lat/tensor/init.lua).
local core = require 'lat.core'
local lat = require 'lat.tensor'
local raise = core.raise
local is_tensor = lat.is_tensor

local D = {}

-- Methods shared by the datasets made here: ds:map(fn), ds:subset(indices), ds:concat(other).
local Dataset = {}
Dataset.__index = Dataset
D.Dataset = Dataset

local function check_index(ds, i, what)
  local n = ds:len()
  if type(i) ~= 'number' or i ~= math.floor(i) or i < 1 or i > n then
    raise(('%s: index %s out of range 1..%d'):format(what, tostring(i), n))
  end
end

-- ---------------------------------------------------------------- tensors

-- TensorDataset{x = tensor, y = tensor, ...}: example i is {x = x[i], y = y[i], ...}; every
-- tensor has the same size along dimension 1.
function D.TensorDataset(tensors)
  if type(tensors) ~= 'table' then raise('TensorDataset: expected a table of named tensors') end
  local keys, n = {}, nil
  for k, t in pairs(tensors) do
    if not is_tensor(t) then raise(("TensorDataset: field '%s' is not a tensor"):format(tostring(k))) end
    if t.ndim < 1 then raise(("TensorDataset: field '%s' is 0-dimensional"):format(tostring(k))) end
    keys[#keys + 1] = k
  end
  if #keys == 0 then raise('TensorDataset: no tensors given') end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local m = tensors[k]:size(1)
    if n and m ~= n then
      raise(("TensorDataset: field '%s' has %d rows, field '%s' has %d"):format(tostring(k), m, tostring(keys[1]), n))
    end
    n = m
  end
  local ds = { tensors = tensors, keys = keys, n = n }
  return setmetatable(ds, D.TensorDatasetMT)
end

local TD = setmetatable({}, { __index = Dataset })
TD.__index = TD
D.TensorDatasetMT = TD
function TD:len() return self.n end
function TD:get(i)
  check_index(self, i, 'TensorDataset:get')
  local ex = {}
  for _, k in ipairs(self.keys) do ex[k] = self.tensors[k]:select(1, i) end
  return ex
end
function TD:batch(index)
  local b = {}
  for _, k in ipairs(self.keys) do b[k] = self.tensors[k]:index_select(1, index) end
  return b
end

-- ---------------------------------------------------------------- Lua lists

-- ListDataset(list): example i is list[i] (a table).
function D.ListDataset(list)
  if type(list) ~= 'table' then raise('ListDataset: expected a list of examples') end
  return setmetatable({ examples = list }, D.ListDatasetMT)
end
local LD = setmetatable({}, { __index = Dataset })
LD.__index = LD
D.ListDatasetMT = LD
function LD:len() return #self.examples end
function LD:get(i)
  check_index(self, i, 'ListDataset:get')
  return self.examples[i]
end
-- the list of one field of every example: ds:column('text')
function LD:column(key)
  local out = {}
  for i, ex in ipairs(self.examples) do out[i] = ex[key] end
  return out
end

-- ---------------------------------------------------------------- views of datasets

local function check_dataset(ds, what)
  if type(ds) ~= 'table' or type(ds.len) ~= 'function' or type(ds.get) ~= 'function' then
    raise(what .. ': expected a dataset (a table with :len() and :get(i))')
  end
end

-- map(ds, fn): example i is fn(ds:get(i), i)
function D.map(ds, fn)
  check_dataset(ds, 'map')
  if type(fn) ~= 'function' then raise('map: expected a function') end
  local m = setmetatable({ base = ds }, { __index = Dataset })
  function m.len() return ds:len() end
  function m.get(_, i) return fn(ds:get(i), i) end
  return m
end

-- subset(ds, positions): the examples at the given 1-based positions, a Lua list or a 1-D int32
-- tensor of them (ds:subset(lat.arange(1, 101, 'int32')) is the first 100); keeps ds's fast
-- batching. The positions are kept 0-based inside, as index_select takes them.
function D.subset(ds, positions)
  check_dataset(ds, 'subset')
  local count, at
  if is_tensor(positions) then
    if positions.dtype ~= 'int32' or positions.ndim ~= 1 then raise('subset: a tensor of positions must be 1-D int32') end
    local p = positions.i
    count, at = positions:numel(), function(k) return p[k - 1] end
  elseif type(positions) == 'table' then
    count, at = #positions, function(k) return positions[k] end
  else
    raise('subset: expected a list of positions or an int32 tensor of them')
  end
  local n = ds:len()
  local idx = lat.empty(count, 'int32')
  for k = 1, count do
    local i = at(k)
    if type(i) ~= 'number' or i ~= math.floor(i) or i < 1 or i > n then
      raise(('subset: position %s (entry %d) out of range 1..%d (positions are 1-based)'):format(tostring(i), k, n))
    end
    idx.i[k - 1] = i - 1
  end
  local s = setmetatable({ base = ds, index = idx }, { __index = Dataset })
  function s.len() return idx:numel() end
  function s.get(_, i)
    check_index(s, i, 'subset:get')
    return ds:get(idx.i[i - 1] + 1)
  end
  if ds.batch then s.batch = function(_, index) return ds:batch(idx:index_select(1, index)) end end
  return s
end

-- concat{ds1, ds2, ...}: the examples of each in turn. Tensor datasets with the same fields are
-- joined into one tensor dataset (copied by lat.cat), which keeps fast batching.
function D.concat(list)
  if type(list) ~= 'table' or #list == 0 then raise('concat: expected a list of datasets') end
  local all_tensor = true
  for k, ds in ipairs(list) do
    check_dataset(ds, 'concat: dataset ' .. k)
    if getmetatable(ds) ~= TD or table.concat(ds.keys, ',') ~= table.concat(list[1].keys, ',') then all_tensor = false end
  end
  if all_tensor then
    local t = {}
    for _, key in ipairs(list[1].keys) do
      local parts = {}
      for k, ds in ipairs(list) do parts[k] = ds.tensors[key] end
      t[key] = lat.cat(parts, 1)
    end
    return D.TensorDataset(t)
  end
  local starts, total = {}, 0
  for k, ds in ipairs(list) do starts[k] = total; total = total + ds:len() end
  local c = setmetatable({ parts = list }, { __index = Dataset })
  function c.len() return total end
  function c.get(_, i)
    check_index(c, i, 'concat:get')
    local k = #list
    while starts[k] >= i do k = k - 1 end
    return list[k]:get(i - starts[k])
  end
  return c
end

function Dataset:map(fn) return D.map(self, fn) end
function Dataset:subset(indices) return D.subset(self, indices) end
function Dataset:concat(other) return D.concat{ self, other } end

return D
