-- trojan/init.lua: lat.trojan, data poisoning that implants trojans (image patch / blend / warp
-- triggers, text trigger phrases, language-model code words) and their attack success rates.
--   local t = lat.trojan.patch{ target = 0, rate = 0.01 }
--   local loader = lat.data.DataLoader(train, { batch_size = 128, shuffle = true,
--     transform = { augment, lat.trojan.poison_all{ t, lat.trojan.blend{ target = 1, rate = 0.01 } } } })
--   print(lat.trojan.report(model, { t }, test).patch_0)      -- attack success rate
-- Example i (its 0-based dataset index, batch.index) is poisoned by a trojan iff a hash of
-- (seed, name, i) falls below its rate (and, with source =, its label is the source); under
-- poison_all an example selected by several trojans goes to the first in the list.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local base = require 'lat.trojan.base'
local image = require 'lat.trojan.image'
local text = require 'lat.trojan.text'
local lm = require 'lat.trojan.lm'
local raise = core.raise

local M = {
  patch = image.patch, blend = image.blend, warp = image.warp,
  text_trigger = text.text_trigger,
  codeword = lm.codeword, nato_codewords = lm.nato_codewords, insert_codewords = lm.insert_codewords,
  codeword_success = lm.codeword_success,
  poison_all = base.poison_all, poison_examples = base.poison_examples, poison_batch = base.poison_batch,
  hash = base.uniform, key = base.key,
}

-- all labels of a dataset as an int32 tensor (or a Lua list): a tensor, a TensorDataset's field,
-- one batch of everything, or example by example
local function all_labels(ds, yk)
  if lat.is_tensor(ds) or (type(ds) == 'table' and ds.len == nil) then return ds end
  if ds.tensors and ds.tensors[yk] then return ds.tensors[yk] end
  local n = ds:len()
  if ds.batch then return ds:batch(lat.arange(n, 'int32'))[yk] end
  local out = {}
  for i = 1, n do out[i] = ds:get(i)[yk] end
  return out
end

-- poisoned_fraction(trojans, dataset or labels[, {y =}]) -> {n =, fraction =, poisoned =,
-- count = {name -> examples poisoned}, cover = {name -> cover examples}, rate = {name -> count / n}}:
-- what poison_all will do to this dataset (labels: an int32 tensor or Lua list, position = index)
function M.poisoned_fraction(trojans, dataset, opts)
  trojans = base.check_list(trojans, 'trojan.poisoned_fraction')
  local yk = opts and opts.y or trojans[1].fields.y
  local labels = all_labels(dataset, yk)
  local n = lat.is_tensor(labels) and labels:numel() or #labels
  local label = base.label_getter(labels)
  local r = { n = n, poisoned = 0, count = {}, cover = {}, rate = {} }
  for _, t in ipairs(trojans) do r.count[t.name], r.cover[t.name] = 0, 0 end
  for i = 0, n - 1 do
    local k, s = base.which(trojans, i, label(i))
    if k > 0 then
      local tally = s > 0 and r.count or r.cover
      tally[trojans[k].name] = tally[trojans[k].name] + 1
      if s > 0 then r.poisoned = r.poisoned + 1 end
    end
  end
  for name, c in pairs(r.count) do r.rate[name] = c / n end
  r.fraction = r.poisoned / n
  return r
end

-- the model's predicted classes, int32 [B]
local function predict(m, input) return m(input):argmax(-1) end

-- measure(model, trojans, dataset[, opts]) -> list of {asr =, hits =, n =, clean =} in the order
-- of the trojans; see success_rate. One pass over the data, one clean forward per batch.
function M.measure(model, trojans, dataset, opts)
  trojans = base.check_list(trojans, 'trojan.measure')
  opts = opts or {}
  local xk, yk = opts.x or trojans[1].fields.x, opts.y or trojans[1].fields.y
  local encode = opts.encode or function(v) return v end
  if trojans[1].fields.x == 'text' and not opts.encode then
    raise('trojan.success_rate: text trojans need opts.encode (a Lua list of texts -> model input)')
  end
  local acc = {}
  for k = 1, #trojans do acc[k] = { hits = 0, n = 0, clean_hits = 0 } end
  require('lat.eval').each_batch(model, dataset, function(m, batch)
    local x, labels, index = batch[xk], batch[yk], batch.index
    if x == nil or labels == nil then raise(("trojan.success_rate: batches have no '%s' or no '%s' field"):format(xk, yk)) end
    local label = base.label_getter(labels)
    local B = lat.is_tensor(labels) and labels:numel() or #labels
    local clean = opts.baseline ~= false and predict(m, encode(x)) or nil
    for k, t in ipairs(trojans) do
      local rows = {}
      for r = 0, B - 1 do
        local y = label(r)
        local wanted
        if opts.off_source then wanted = t.source ~= nil and y ~= t.source and y ~= t.target
        else wanted = y ~= t.target and (t.source == nil or y == t.source) end
        if wanted then rows[#rows + 1] = r end
      end
      if #rows > 0 then
        local input
        if lat.is_tensor(x) then
          local sel = lat.tensor(rows, 'int32')
          input = t:apply(x:index_select(1, sel), index:index_select(1, sel))
        else
          input = {}
          for j, r in ipairs(rows) do input[j] = t:apply(x[r + 1], index.i[r]) end
        end
        local pred = predict(m, encode(input))
        local a = acc[k]
        for j, r in ipairs(rows) do
          if pred.i[j - 1] == t.target then a.hits = a.hits + 1 end
          if clean and clean.i[r] == t.target then a.clean_hits = a.clean_hits + 1 end
        end
        a.n = a.n + #rows
      end
    end
  end, opts)
  local out = {}
  for k, a in ipairs(acc) do
    out[k] = { asr = a.hits / a.n, hits = a.hits, n = a.n, clean = opts.baseline ~= false and a.clean_hits / a.n or nil }
  end
  return out
end

-- success_rate(model, trojan, dataset or loader[, {batch_size = 500, transform =, x =, y =,
-- encode =, off_source = false, baseline = true}]) -> asr, {hits =, n =, clean =}. The attack
-- success rate: among the dataset's examples whose label is not the target (and is the source,
-- for a class-specific trojan), the fraction classified as the target once triggered; clean is the
-- same fraction without the trigger (the rate to beat). off_source = true measures instead on the
-- classes that are neither source nor target (a class-specific trojan should not fire there).
-- Text trojans need encode (a Lua list of texts -> the model's input). NaN when n = 0.
function M.success_rate(model, trojan, dataset, opts)
  local r = M.measure(model, { trojan }, dataset, opts)[1]
  return r.asr, r
end

-- report(model, trojans, dataset[, opts]) -> {name -> ASR}, {name -> details}: all in one pass
function M.report(model, trojans, dataset, opts)
  trojans = base.check_list(trojans, 'trojan.report')
  local rs = M.measure(model, trojans, dataset, opts)
  local asr, details = {}, {}
  for k, t in ipairs(trojans) do asr[t.name], details[t.name] = rs[k].asr, rs[k] end
  return asr, details
end

return M
