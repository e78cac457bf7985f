-- eval.lua: lat.eval, measuring models: clean accuracy and loss over a data set, batched and
-- without gradients, with the model in evaluation mode (restored afterwards).
local lat = require 'lat.tensor'
local data = require 'lat.data'

local E = {}

-- Runs fn(model, batch) over the data in evaluation mode without gradients; returns nothing.
function E.each_batch(model, dataset, fn, opts)
  opts = opts or {}
  local loader = dataset.iter and dataset or data.DataLoader(dataset, { batch_size = opts.batch_size or 500, transform = opts.transform })
  local was_training = model.training
  model:eval()
  local ok, err = pcall(lat.no_grad, function()
    for batch in loader:iter() do fn(model, batch) end
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
  E.each_batch(model, dataset, function(m, batch)
    local logits = m(batch[xk])
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
  E.each_batch(model, dataset, function(m, batch)
    local logits = m(batch.x)
    sum = sum + lat.cross_entropy(logits, batch.y, { reduction = 'sum' }):item()
    n = n + batch.y:numel()
  end, opts)
  return { loss = sum / n, bits_per_token = sum / n / math.log(2), tokens = n }
end

-- held-out attacks on images (lat/heldout.lua) and on text (lat/heldout_text.lua), and the
-- paper's cautions (lat/cautions.lua)
E.heldout_text = require 'lat.heldout_text'
E.heldout, E.flags, E.pareto = require 'lat.heldout', require('lat.cautions').flags, require('lat.cautions').pareto
E.points = require('lat.cautions').points

return E
