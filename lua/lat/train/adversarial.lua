-- train/adversarial.lua: training under attack. One loss function serves every defence the paper
-- compares: none (clean loss), AT (the adversary at the input or the embeddings), LAT (at any
-- layer or layers), RLP (a random perturbation of the same size); they differ only in the
-- threat model and the attack. Targeted LAT is the same with a toward/away objective.
--   lat.train.fit{ ..., loss = lat.train.adversarial{ threat = tm, attack = { steps = 5 } } }
local core = require 'lat.core'
local lat = require 'lat.tensor'
local A = require 'lat.attack'
local raise = core.raise

local function default_forward(model, batch) return model(batch.x) end
local function default_loss(out, batch) return lat.cross_entropy(out, batch.y) end

-- adversarial{ threat =, attack = pgd options (steps, step_size, init, rule, objective, ...),
--   random = false (the RLP control: a random perturbation instead of an attack),
--   weight = 1 (the training loss is weight * adversarial + (1 - weight) * clean; the paper's code
--   uses the adversarial loss alone), loss = function(out, batch) -> scalar (the model's loss;
--   cross-entropy with batch.y by default), forward = function(model, batch) -> out,
--   objective = function(batch) -> attack objective (for targeted LAT, per batch) }
-- (info.step, from lat.train.step, names the training step in the attack's errors)
-- Returns function(model, batch[, info]) -> loss, { clean_loss =, adv_loss =, attack_success = }.
return function(spec)
  if type(spec) ~= 'table' then raise('adversarial: expected a table of settings') end
  local threat = spec.threat
  if threat == nil and not spec.none then raise('adversarial: threat is required') end
  local weight = spec.weight or 1
  if type(weight) ~= 'number' or not (weight >= 0 and weight <= 1) then raise('adversarial: weight must be in [0, 1]') end
  if spec.attack ~= nil and type(spec.attack) ~= 'table' then raise('adversarial: attack must be a table of pgd options') end
  local forward, loss_fn = spec.forward or default_forward, spec.loss or default_loss
  local attack = spec.attack or {}
  return function(model, batch, info)
    local opts = {}
    for k, v in pairs(attack) do opts[k] = v end
    opts.forward = forward
    if info and info.step then opts.context = ('train: step %d'):format(info.step) end
    if spec.objective then opts.objective = spec.objective(batch) end
    opts.keep_prefix = opts.replay ~= false
    local r = spec.random and A.random(model, batch, threat, opts) or A.pgd(model, batch, threat, opts)
    -- the attack's prefix, computed with the weights this step trains, serves the training
    -- forwards too where the layers' mode does not change their output (nn/replay.lua)
    local prefix = r.prefix
    if prefix then prefix.need_graph = true end
    local function run(fn)
      if prefix then return prefix:play(fn) end
      return fn()
    end
    local adv = run(function()
      return A.with_perturbation(model, threat, r.deltas, function() return loss_fn(forward(model, batch), batch) end)
    end)
    local extra = { adv_loss = adv:item(), attack_success = r.success }
    if weight >= 1 then return adv, extra end
    local clean = run(function() return loss_fn(forward(model, batch), batch) end)
    extra.clean_loss = clean:item()
    return adv * weight + clean * (1 - weight), extra
  end
end
