-- eval/init.lua: lat.eval, measuring models: clean accuracy and loss over a data set, batched and
-- without gradients, with the model in evaluation mode (restored afterwards). Logits that are
-- not finite raise an error naming the batch and the layer (tensor/finite.lua) rather than
-- count as a class.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local data = require 'lat.data'
local F = require 'lat.tensor.finite'
local raise = core.raise

local E = {}

-- the model's output for a batch, checked to be finite
local function logits_of(model, x, what, index)
  local logits = model(x)
  if F.enabled and not F.tensor(logits) then
    F.fail(('%s: batch %d: the logits are not finite'):format(what, index), model, function() model(x) end)
  end
  return logits
end

-- Runs fn(model, batch, batch number) over the data in evaluation mode without gradients; returns nothing.
function E.each_batch(model, dataset, fn, opts)
  if type(model) ~= 'table' or type(model.eval) ~= 'function' then raise('eval: the first argument must be a lat.nn model, got ' .. type(model)) end
  if type(dataset) ~= 'table' and type(dataset) ~= 'userdata' then
    raise('eval: the second argument must be a data set or a loader, got ' .. type(dataset))
  end
  if opts ~= nil and type(opts) ~= 'table' then raise('eval: the options must be a table, got ' .. type(opts)) end
  opts = opts or {}
  local loader = dataset.iter and dataset or data.DataLoader(dataset, { batch_size = opts.batch_size or 500, transform = opts.transform })
  local was_training = model.training
  model:eval()
  local ok, err = pcall(lat.no_grad, function()
    local index = 0
    for batch in loader:iter() do
      index = index + 1
      fn(model, batch, index)
    end
  end)
  model:train(was_training)
  if not ok then error(err, 0) end
end

-- accuracy(model, dataset or loader[, {batch_size=, x='x', y='y', transform=}]) ->
-- { accuracy = fraction correct, loss = mean cross-entropy, n = examples }
function E.accuracy(model, dataset, opts)
  opts = opts or {}
  local xk, yk = opts.x or 'x', opts.y or 'y'
  local correct, loss_sum, n = 0, 0, 0
  E.each_batch(model, dataset, function(m, batch, index)
    local logits = logits_of(m, batch[xk], 'eval.accuracy', index)
    local y = batch[yk]
    local pred = logits:argmax(-1)
    local b = y:numel()
    for i = 0, b - 1 do if pred.i[i] == y.i[i] then correct = correct + 1 end end
    loss_sum = loss_sum + lat.cross_entropy(logits, y, { reduction = 'sum' }):item()
    n = n + b
  end, opts)
  return { accuracy = correct / n, loss = loss_sum / n, n = n }
end

-- lm_loss(model, dataset or loader[, opts]) -> { loss = mean next-token cross-entropy in nats,
-- bits_per_token = loss / ln 2 (bits per byte for byte tokens), tokens = count }; batches have
-- x and y int32 [B, T]
function E.lm_loss(model, dataset, opts)
  local sum, n = 0, 0
  E.each_batch(model, dataset, function(m, batch, index)
    local logits = logits_of(m, batch.x, 'eval.lm_loss', index)
    sum = sum + lat.cross_entropy(logits, batch.y, { reduction = 'sum' }):item()
    n = n + batch.y:numel()
  end, opts)
  return { loss = sum / n, bits_per_token = sum / n / math.log(2), tokens = n }
end

-- held-out attacks on images (eval/heldout.lua) and on text (eval/heldout_text.lua), the
-- paper's cautions (eval/flags.lua) and the Pareto front of results (eval/pareto.lua)
E.heldout_text = require 'lat.eval.heldout_text'
E.heldout, E.flags, E.pareto = require 'lat.eval.heldout', require('lat.eval.flags').flags, require('lat.eval.pareto').pareto
E.points = require('lat.eval.pareto').points

return E
