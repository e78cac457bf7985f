-- trojan/base.lua: what every trojan shares: the keyed hash that selects examples by dataset
-- index, the common options, the Trojan base class that kinds of trojan extend (lat.trojan.class),
-- and the poisoning of batches and example lists by several trojans.
local bit = require 'bit'
local core = require 'lat.core'
local lat = require 'lat.tensor'
local ffi, raise = core.ffi, core.raise

local B = {}

-- ---------------------------------------------------------------- hashing

-- splitmix64's finaliser on uint64 cdata (wraps modulo 2^64, the same on every machine)
local GOLD, M1, M2 = 0x9E3779B97F4A7C15ULL, 0xBF58476D1CE4E5B9ULL, 0x94D049BB133111EBULL
local function mix(z)
  z = bit.bxor(z, bit.rshift(z, 30)) * M1
  z = bit.bxor(z, bit.rshift(z, 27)) * M2
  return bit.bxor(z, bit.rshift(z, 31))
end

-- key(seed, name): a uint64 naming one random stream (FNV-1a of the name, mixed with the seed)
function B.key(seed, name)
  local h = 0xcbf29ce484222325ULL
  for k = 1, #name do h = bit.bxor(h, name:byte(k)) * 0x100000001b3ULL end
  return mix(h + ffi.cast('uint64_t', seed) * GOLD)
end

-- uniform(key, i): the i-th number (i >= 0 an integer) of the stream, uniform in [0, 1)
function B.uniform(key, i)
  local z = mix(key + (ffi.cast('uint64_t', i) + 1ULL) * GOLD)
  return tonumber(bit.rshift(z, 11)) * 2 ^ -53
end

-- a whole number in 0..n-1 from the i-th number of the stream
function B.below(key, i, n) return math.floor(B.uniform(key, i) * n) end

-- a seed for lat.Generator from a stream key (52 bits, exact as a Lua number)
function B.generator_seed(key) return tonumber(bit.rshift(key, 12)) end

-- ---------------------------------------------------------------- the common options

local function whole(v, what, lo)
  if type(v) ~= 'number' or v ~= math.floor(v) or v < (lo or 0) then
    raise(('trojan: %s must be a whole number >= %d, got %s'):format(what, lo or 0, tostring(v)))
  end
  return v
end

-- init(t, kind, opts): checks and stores target, rate, source, cover, seed and name on t.
-- Default name: '<kind>_<target>' or '<kind>_<source>_to_<target>'.
function B.init(t, kind, opts)
  if type(opts) ~= 'table' then raise(('trojan.%s: expected a table of options'):format(kind)) end
  t.kind = kind
  t.target = whole(opts.target, 'target', 0)
  local rate = opts.rate or 0
  if type(rate) ~= 'number' or rate < 0 or rate > 1 then raise('trojan: rate must be a number in [0, 1], got ' .. tostring(opts.rate)) end
  t.rate = rate
  if opts.source ~= nil then
    t.source = whole(opts.source, 'source', 0)
    if t.source == t.target then raise('trojan: source and target are the same class ' .. t.source) end
  end
  local cover = opts.cover or 0
  if type(cover) ~= 'number' or cover < 0 or cover > 1 then raise('trojan: cover must be a number in [0, 1]') end
  if cover > 0 and not t.source then raise('trojan: cover (triggered examples that keep their label) needs a source class') end
  t.cover = cover
  t.seed = whole(opts.seed or 0, 'seed', 0)
  t.name = opts.name or (t.source and ('%s_%d_to_%d'):format(kind, t.source, t.target) or ('%s_%d'):format(kind, t.target))
  if type(t.name) ~= 'string' or t.name == '' then raise('trojan: name must be a non-empty string') end
  t.key = B.key(t.seed, t.name)
  t.cover_key = B.key(t.seed, t.name .. '#cover')
  return t
end

-- ---------------------------------------------------------------- the base class

-- Trojan: the methods every trojan has. The poisoning functions call a trojan's methods, so a
-- kind may replace any of them: apply(x, index) (the trigger on a whole input; required),
-- trigger_rows(x, rows, index) and trigger_one(x, i) (the trigger on some rows of a batch, in
-- place, and on one example: ImageTrojan and TextTrojan define these from apply), selects.
-- fields = {x =, y =} names the batch fields of the input and the label.
local Trojan = { fields = { x = 'x', y = 'y' } }
Trojan.__index = Trojan
B.Trojan = Trojan

function Trojan:__init() end
function Trojan:apply() raise(('trojan.%s: apply is not defined'):format(self.kind)) end

-- t:selects(i, label): 1 when example i (0-based dataset index) with this label is poisoned
-- (trigger and label = target), -1 when it is a cover example of a class-specific trojan (trigger,
-- label kept), else 0. Poisoned: uniform(key, i) < rate, and label == source when there is one.
-- Cover: a non-source example whose uniform(cover_key, i) < cover.
function Trojan:selects(i, label)
  if B.uniform(self.key, i) < self.rate and (self.source == nil or label == self.source) then return 1 end
  if self.cover > 0 and label ~= self.source and B.uniform(self.cover_key, i) < self.cover then return -1 end
  return 0
end

-- poison([{x =, y =}]): a DataLoader transform (see lat.trojan.poison_all)
function Trojan:poison(opts) return B.poison_all({ self }, opts) end

-- class(kind[, parent = Trojan]) -> a new kind of trojan, as lat.nn.class makes a layer:
--   local Stripe = lat.trojan.class('stripe', lat.trojan.ImageTrojan)
--   function Stripe:__init(opts) self.row = opts.row or 1 end   -- its own options (optional)
--   function Stripe:apply(x, index) ... return x' end           -- a new batch with the trigger
--   local t = Stripe{ target = 3, rate = 0.02, row = 5 }
-- Calling the class checks and stores the common options (init below), then calls __init.
function B.class(kind, parent)
  if type(kind) ~= 'string' or kind == '' then raise('trojan.class: the kind must be a non-empty string') end
  parent = parent or Trojan
  local cls = setmetatable({}, {
    __index = parent,
    __call = function(c, opts)
      local t = B.init(setmetatable({}, c), kind, opts)
      t:__init(opts)
      return t
    end,
  })
  cls.__index = cls
  return cls
end

-- ---------------------------------------------------------------- several trojans at once

local function check_list(trojans, what)
  if type(trojans) ~= 'table' then raise(what .. ': expected a trojan or a list of trojans') end
  if trojans.kind then trojans = { trojans } end
  if #trojans == 0 then raise(what .. ': the list of trojans is empty') end
  local names = {}
  for k, t in ipairs(trojans) do
    if type(t) ~= 'table' or not t.kind then raise(('%s: entry %d is not a trojan'):format(what, k)) end
    if names[t.name] then
      raise(("%s: two trojans are named '%s' (they would select the same examples); give each a name="):format(what, t.name))
    end
    names[t.name] = true
  end
  return trojans
end
B.check_list = check_list

-- which(trojans, i, label) -> k, s: the first trojan in the list that selects example i (the
-- rule for several trojans: first in the list wins), and its selects() value; 0, 0 for none.
function B.which(trojans, i, label)
  for k = 1, #trojans do
    local s = trojans[k]:selects(i, label)
    if s ~= 0 then return k, s end
  end
  return 0, 0
end

local function label_getter(labels)
  if lat.is_tensor(labels) then
    if labels.dtype ~= 'int32' then raise('trojan: labels must be an int32 tensor') end
    local p = labels.i
    return function(r) return p[r] end
  end
  return function(r) return labels[r + 1] end
end
B.label_getter = label_getter

-- poison_batch(trojans, batch, opts): a shallow copy of the batch in which the selected rows
-- carry their trojan's trigger (and, when poisoned, the target label), plus poisoned = int32 [B]:
-- k for rows poisoned by trojan k, -k for its cover rows, 0 for clean ones. opts.x and opts.y
-- name the input and label fields (default: each trojan's own, 'x'/'y' or 'text'/'label').
function B.poison_batch(trojans, batch, opts)
  local index = batch.index
  if not lat.is_tensor(index) or index.dtype ~= 'int32' then
    raise('trojan.poison: the batch has no int32 index field (lat.data.DataLoader provides it)')
  end
  local xk = opts.x or trojans[1].fields.x
  local yk = opts.y or trojans[1].fields.y
  local labels = batch[yk]
  if labels == nil or batch[xk] == nil then raise(("trojan.poison: the batch has no '%s' or no '%s' field"):format(xk, yk)) end
  local label = label_getter(labels)
  local n = index:numel()
  local mark = lat.zeros({ n }, 'int32')
  local rows, any = {}, false
  for r = 0, n - 1 do
    local k, s = B.which(trojans, index.i[r], label(r))
    if k > 0 then
      mark.i[r] = s * k
      rows[k] = rows[k] or {}
      table.insert(rows[k], r)
      any = true
    end
  end
  local out = {}
  for key, v in pairs(batch) do out[key] = v end
  out.poisoned = mark
  if not any then return out end
  local x = batch[xk]
  out[xk] = lat.is_tensor(x) and x:clone() or { unpack(x) }
  out[yk] = lat.is_tensor(labels) and labels:clone() or { unpack(labels) }
  for k, list in pairs(rows) do
    local t = trojans[k]
    t:trigger_rows(out[xk], list, index)
    for _, r in ipairs(list) do
      if mark.i[r] > 0 then
        if lat.is_tensor(labels) then out[yk].i[r] = t.target else out[yk][r + 1] = t.target end
      end
    end
  end
  return out
end

-- poison_all{t1, t2, ...}[, {x =, y =}]: one DataLoader transform for several trojans
function B.poison_all(trojans, opts)
  trojans = check_list(trojans, 'trojan.poison_all')
  opts = opts or {}
  return function(batch) return B.poison_batch(trojans, batch, opts) end
end

-- poison_examples(list, trojans[, {x =, y =}]) -> new list, record: the same for a Lua list of
-- example tables (e.g. {text =, label =} before tokenising); example k has index k - 1. Poisoned
-- and cover examples are shallow copies; the others are the same tables. record = {n =,
-- count = {name -> poisoned}, cover = {name -> cover examples}, which = {[k] = name}}.
function B.poison_examples(list, trojans, opts)
  trojans = check_list(trojans, 'trojan.poison_examples')
  opts = opts or {}
  if type(list) ~= 'table' then raise('trojan.poison_examples: expected a list of examples') end
  if list.examples then list = list.examples end
  local xk, yk = opts.x or trojans[1].fields.x, opts.y or trojans[1].fields.y
  local out, record = {}, { n = #list, count = {}, cover = {}, which = {} }
  for _, t in ipairs(trojans) do record.count[t.name], record.cover[t.name] = 0, 0 end
  for k, ex in ipairs(list) do
    local j, s = B.which(trojans, k - 1, ex[yk])
    if j > 0 then
      local t, copy = trojans[j], {}
      for key, v in pairs(ex) do copy[key] = v end
      copy[xk] = t:trigger_one(ex[xk], k - 1)
      if s > 0 then copy[yk] = t.target end
      local tally = s > 0 and record.count or record.cover
      tally[t.name] = tally[t.name] + 1
      record.which[k] = t.name
      ex = copy
    end
    out[k] = ex
  end
  return out, record
end

return B
