-- train/init.lua: the training loop a recipe calls in one line, and its pieces (one step, one epoch)
-- for recipes that take it apart. Every piece takes the same configuration table:
--   lat.train.fit{ model = m, loader = l, optimizer = opt, epochs = 5,
--                  loss = function(model, batch) return loss_tensor, { acc = a } end,
--                  schedule = f (optional, lr per step), clip = max_norm (optional),
--                  evaluate = function(model, epoch) return { val_acc = ... } end (optional),
--                  log = lat.log.run_dir(...) (optional), on_step = function(info) end (optional),
--                  progress = false (optional: no progress bar) }
-- Under mpirun with several ranks (lat.dist), each step trains on this rank's rows of the global
-- batch and averages the gradients, the loss and the metrics over the ranks; only rank 0 shows
-- progress and writes metrics.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local optim = require 'lat.optim'
local log = require 'lat.log'
local sys = require 'lat.core.sys'
local F = require 'lat.tensor.finite'
local dist = require 'lat.dist'
local raise = core.raise

local M = {}

local function number_of(v)
  if type(v) == 'cdata' and lat.is_tensor(v) then return v:item() end
  return v
end

-- One optimisation step on one batch: the schedule's lr for the step about to be taken
-- (optimizer.steps + 1), zero_grad, loss, backward, clipping, update. The loss function gets
-- (model, batch, { step = that step }). Returns the loss (a number), the loss function's extra
-- metrics (or nil) and the gradient norm before clipping (when clipping). A loss or a gradient
-- that is not finite raises an error naming the step, and the layer or the parameter
-- (tensor/finite.lua). With several ranks, the loss function sees this rank's rows only
-- (lat.dist.Part), and the loss, metrics, gradients and model buffers are averaged over the
-- ranks; a fresh optimizer first takes rank 0's parameters and buffers.
function M.step(cfg, batch)
  if type(cfg) ~= 'table' then raise('train.step: expected a configuration table, got ' .. type(cfg)) end
  if type(cfg.loss) ~= 'function' then raise('train: loss must be a function(model, batch) -> loss, got ' .. type(cfg.loss)) end
  if type(cfg.optimizer) ~= 'table' or type(cfg.optimizer.step) ~= 'function' then
    raise('train: optimizer must be a lat.optim optimizer, got ' .. type(cfg.optimizer))
  end
  local opt = cfg.optimizer
  local step = opt.steps + 1
  local part = dist.size() > 1 and dist.Part(batch)
  if part then
    if opt.steps == 0 then part:share(opt.params, cfg.model) end
    batch = part.batch
  end
  if cfg.schedule then opt:set_lr(cfg.schedule(step)) end
  opt:zero_grad()
  local info = { step = step }
  local loss, extra = cfg.loss(cfg.model, batch, info)
  if not (lat.is_tensor(loss) and loss:numel() == 1) then
    raise('train: the loss function must return a tensor with one element, got ' ..
      (lat.is_tensor(loss) and ('shape [' .. table.concat(loss.shape, ', ') .. ']') or type(loss)))
  end
  local value = loss:item()
  if F.enabled and not F.number(value) then
    F.fail(('train: step %d: the loss is %s'):format(step, tostring(value)), cfg.model,
      function() cfg.loss(cfg.model, batch, info) end)
  end
  loss:backward()
  if part then value, extra = part:reduce(opt.params, value, extra, cfg.model) end
  if F.enabled then
    for i, p in ipairs(opt.params) do
      local g = p.ptr.grad_
      if g ~= nil and not F.pointer(g) then
        F.fail(("train: step %d: the gradient of parameter '%s' is not finite"):format(step, opt.names[i]))
      end
    end
  end
  local gnorm
  if cfg.clip then gnorm = optim.clip_grad_norm(opt.params, cfg.clip) end
  opt:step()
  return value, extra, gnorm
end

local function label(cfg, epoch)
  if cfg.epochs then return ('epoch %d/%d'):format(epoch, cfg.epochs) end
  return ('epoch %d'):format(epoch)
end

-- One pass over the loader with the model in training mode. Returns { loss = mean batch loss,
-- steps = batches, time = seconds, extra = { name = mean over batches } }.
function M.epoch(cfg, epoch)
  epoch = epoch or 1
  local model, loader, opt = cfg.model, cfg.loader, cfg.optimizer
  model:train()
  local bar = log.progress{ label = label(cfg, epoch), total = loader:len(), unit = 'batch',
    mode = (cfg.progress == false or not dist.is_main()) and 'off' or nil }
  local t0 = sys.now()
  local sum, n, extra_sum = 0, 0, {}
  local shown = {}
  for batch in loader:iter() do
    local loss, extra, gnorm = M.step(cfg, batch)
    sum, n = sum + loss, n + 1
    if extra then
      for k, v in pairs(extra) do extra_sum[k] = (extra_sum[k] or 0) + number_of(v) end
    end
    if cfg.on_step then
      cfg.on_step{ epoch = epoch, batch = n, step = opt.steps, loss = loss, lr = opt.lr,
        extra = extra, grad_norm = gnorm }
    end
    shown.loss, shown.lr = sum / n, opt.lr
    bar:update(n, shown)
  end
  local means = {}
  for k, v in pairs(extra_sum) do means[k] = v / n end
  bar:finish()
  return { loss = n > 0 and sum / n or 0 / 0, steps = n, time = sys.now() - t0, extra = means }
end

local REQUIRED = { 'model', 'loader', 'loss', 'optimizer', 'epochs' }

-- Trains for cfg.epochs epochs (from cfg.start_epoch, default 1). After each epoch, with the
-- model in evaluation mode, calls cfg.evaluate; appends one JSON line per epoch to
-- metrics.jsonl of cfg.log: epoch, train_loss, train_<extra>, lr (of the epoch's last step),
-- steps (total so far), train_time and time (seconds, the latter with evaluation), and the
-- evaluation metrics. Returns the list of these records.
function M.fit(cfg)
  if type(cfg) ~= 'table' then raise('train.fit: expected a configuration table, got ' .. type(cfg)) end
  for _, k in ipairs(REQUIRED) do
    if cfg[k] == nil then raise(("train.fit: '%s' is required"):format(k)) end
  end
  if not core.natural(cfg.epochs) then raise(('train.fit: epochs must be an integer >= 0, got %s'):format(tostring(cfg.epochs))) end
  if cfg.start_epoch ~= nil and not core.natural(cfg.start_epoch) then
    raise(('train.fit: start_epoch must be an integer >= 0, got %s'):format(tostring(cfg.start_epoch)))
  end
  local loader = cfg.loader
  if (type(loader) ~= 'table' and type(loader) ~= 'userdata') or not pcall(function() assert(loader.iter) end) then
    raise('train.fit: loader must be a lat.data.DataLoader (with :iter() and :len()), got ' .. type(cfg.loader))
  end
  if cfg.clip ~= nil and not (type(cfg.clip) == 'number' and cfg.clip > 0) then
    raise(('train.fit: clip must be a number > 0, got %s'):format(tostring(cfg.clip)))
  end
  local model, opt = cfg.model, cfg.optimizer
  local metrics = cfg.log and dist.is_main() and cfg.log:jsonl('metrics')
  local history = {}
  for epoch = cfg.start_epoch or 1, cfg.epochs do
    local t0 = sys.now()
    local r = M.epoch(cfg, epoch)
    local rec = { epoch = epoch, train_loss = r.loss, lr = opt.lr, steps = opt.steps, train_time = r.time }
    for k, v in pairs(r.extra) do rec['train_' .. k] = v end
    if cfg.evaluate then
      model:eval()
      local ev = cfg.evaluate(model, epoch) or {}
      local shown = {}
      for k, v in pairs(ev) do
        rec[k] = number_of(v)
        shown[#shown + 1] = ('%s=%s'):format(k, type(rec[k]) == 'number' and ('%.4g'):format(rec[k]) or tostring(rec[k]))
      end
      if cfg.progress ~= false and dist.is_main() and #shown > 0 then
        table.sort(shown)
        io.stderr:write(('%s  %s\n'):format(label(cfg, epoch), table.concat(shown, '  ')))
      end
    end
    rec.time = sys.now() - t0
    history[#history + 1] = rec
    if metrics then metrics:write(rec) end
  end
  return history
end

-- lat.train.adversarial: the loss for training under attack (train/adversarial.lua)
M.adversarial = require 'lat.train.adversarial'

return M
