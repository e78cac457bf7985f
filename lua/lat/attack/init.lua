-- attack/init.lua: one projected-gradient attack for every threat model, its objectives, and the
-- random-perturbation control. The adversary's perturbations are leaves added at the threat
-- model's sites through hooks; each step differentiates the adversary's loss with respect to
-- them alone (lat.grad), so parameter gradients are neither computed nor touched. The model
-- runs in evaluation mode during the attack and gets its mode back afterwards.
--   local r = lat.attack.pgd(model, batch, tm, { steps = 10, objective = 'untargeted' })
--   r.deltas['layer2'], r.success, r.losses
-- Written outside the library, pgd takes a new objective, function(output, batch) -> the
-- adversary's loss (a scalar it lowers), success mask (float32 [B], 1 where the attack works)
-- or nil, as opts.objective; a new step rule, function(g, state, step, threat, opts) ->
-- direction (see rules below), as opts.rule; and a new norm through lat.Threat.norms.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local F = require 'lat.tensor.finite'
local Threat = require('lat.attack.threat').Threat
local in_eval = require('lat.nn.module').in_eval
local without_grad = require('lat.nn.module').without_grad
local replay = require 'lat.nn.replay'
local raise = core.raise

local A = {}

-- ---------------------------------------------------------------- objectives

-- An objective turns the model's output and the batch into the adversary's loss (to minimise,
-- a scalar) and a per-example success mask (float32 [B], 1 = the attack works there), or nil.
local function predictions(out) return out:argmax(-1) end
local function agree(pred, labels) return pred:eq(labels):float() end

local objectives = {}
-- raise the task loss; success where the prediction is wrong
function objectives.untargeted(out, batch, o)
  local y = o.labels or batch.y
  return -lat.cross_entropy(out, y, { ignore_index = o.ignore_index }),
    out:dim() == 2 and (1 - agree(predictions(out), y)) or nil
end
-- lower the loss to a target; success where the prediction is the target
function objectives.targeted(out, _, o)
  return lat.cross_entropy(out, o.target, { ignore_index = o.ignore_index }),
    out:dim() == 2 and agree(predictions(out), o.target) or nil
end
-- unlikelihood(logits [..., C], labels [...][, ignore_index = -100]): the mean over labelled
-- positions of -log(1 - p(label)), which pushes probability away from the labels
function A.unlikelihood(out, labels, ignore_index)
  ignore_index = ignore_index or -100
  local C = out:size(-1)
  local ids = labels:reshape(-1, 1)
  local mask = ids:ne(ignore_index):float()
  local p = out:log_softmax(-1):reshape(-1, C):gather(2, (ids:float() * mask):int()):exp() -- ignored rows read class 0
  return -(((1 - p):clamp(1e-6, 1)):log() * mask):sum() / mask:sum():clamp(1)
end

-- toward a bad answer and away from the good one (targeted LAT): CE(toward) - log(1 - p(away))
function objectives.toward_away(out, _, o)
  local toward = lat.cross_entropy(out, o.toward, { ignore_index = o.ignore_index })
  return toward + A.unlikelihood(out, o.away, o.ignore_index), out:dim() == 2 and agree(predictions(out), o.toward) or nil
end

-- the objective of an attack from its options: 'untargeted' (default), {target = labels},
-- {toward = labels, away = labels}, or function(out, batch) -> loss[, success]
local function objective_of(spec)
  if spec == nil or spec == 'untargeted' then return objectives.untargeted, {} end
  if type(spec) == 'function' then return spec, {} end
  if type(spec) == 'table' then
    if spec.toward then return objectives.toward_away, spec end
    if spec.target then return objectives.targeted, spec end
    if spec.labels then return objectives.untargeted, spec end
  end
  raise("attack: objective must be 'untargeted', {target=}, {toward=, away=} or a function")
end
A.objectives = objectives

-- ---------------------------------------------------------------- perturbations at the sites

local function default_forward(model, batch) return model(batch.x) end

-- at_sites(model, threat, hook_of, fn) -> fn()'s results, with hook_of(site) (a hook, or nil for
-- none) at each of the threat's sites; the hooks are removed afterwards, also when fn raises
local function at_sites(model, threat, hook_of, fn)
  local handles = {}
  for _, s in ipairs(threat.sites) do
    local hook = hook_of(s)
    if hook then handles[#handles + 1] = model:hook(s.layer, hook, { pre = s.pre }) end
  end
  local res = { pcall(fn) }
  for _, h in ipairs(handles) do h.remove() end
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2)
end

-- the clean activations at every site of the threat model (no gradients)
function A.clean_activations(model, batch, threat, forward)
  forward = forward or default_forward
  local acts = {}
  local out = at_sites(model, threat, function(s) return function(a) acts[s.name] = a:detach() end end,
    function() return lat.no_grad(forward, model, batch) end)
  return acts, out
end

-- Runs fn() with deltas (site name -> tensor) added at the threat model's sites; the hooks are
-- removed afterwards, even on error. Returns fn's results.
function A.with_perturbation(model, threat, deltas, fn)
  return at_sites(model, threat, function(s)
    local d = deltas[s.name]
    return d and function(a) return a + d end
  end, fn)
end

-- ---------------------------------------------------------------- step rules

-- A step rule is function(g, state, step, threat, opts) -> the direction of one step; pgd then
-- takes delta - direction * step_size and projects onto the threat set (the adversary descends
-- its loss). g: the gradient of the adversary's loss at one site; state: a table for that site
-- alone, kept from step to step (empty at step 1); step: 1, 2, ...; opts: pgd's options. pgd's
-- rule option is a function of this kind or the name of an entry of lat.attack.rules.
local rules = {}
function rules.sign(g) return g:gt(0):float() - g:lt(0):float() end
function rules.l2(g, _, _, threat) return g / g:norm(2, threat:group_dims(g:dim()), true):clamp(1e-12) end
function rules.raw(g) return g end
-- Adam on the perturbation, with opts.adam_betas (default {0.9, 0.999})
function rules.adam(g, st, step, _, opts)
  local b1, b2 = (opts.adam_betas or {})[1] or 0.9, (opts.adam_betas or {})[2] or 0.999
  st.m = (st.m or lat.zeros(g.shape)) * b1 + g * (1 - b1)
  st.v = (st.v or lat.zeros(g.shape)) * b2 + g * g * (1 - b2)
  return (st.m / (1 - b1 ^ step)) / ((st.v / (1 - b2 ^ step)):sqrt() + 1e-8)
end
A.rules = rules

-- ---------------------------------------------------------------- PGD

local INITS = { zero = true, uniform = true, random_radius = true, sphere = true }

local function check_pgd_args(model, batch, threat, opts)
  if type(model) ~= 'table' or type(model.hook) ~= 'function' then
    raise('attack: the first argument must be a lat.nn model, got ' .. type(model))
  end
  if type(batch) ~= 'table' then raise('attack: the second argument must be a batch table (e.g. {x =, y =}), got ' .. type(batch)) end
  if getmetatable(threat) ~= Threat then raise('attack: the third argument must be a lat.threat{...}') end
  if type(opts) ~= 'table' then raise('attack: the options must be a table, got ' .. type(opts)) end
  if opts.steps ~= nil and not core.natural(opts.steps) then
    raise(('attack: steps must be an integer >= 0, got %s'):format(tostring(opts.steps)))
  end
  if opts.step_size ~= nil and not core.positive(opts.step_size) then
    raise(('attack: step_size must be a finite number > 0, got %s'):format(tostring(opts.step_size)))
  end
  if opts.rule ~= nil and type(opts.rule) ~= 'function' and not rules[opts.rule] then
    raise(("attack: unknown step rule '%s' (l2, sign, adam, raw)"):format(tostring(opts.rule)))
  end
  if opts.init ~= nil and not INITS[opts.init] then
    raise(("attack: unknown initialisation '%s' (zero, uniform, random_radius, sphere)"):format(tostring(opts.init)))
  end
  if opts.forward ~= nil and type(opts.forward) ~= 'function' then raise('attack: forward must be a function(model, batch)') end
end

-- pgd(model, batch, threat, opts) -> { deltas = {site -> tensor}, losses = {per step},
--   success = fraction or nil, success_mask = float32 [B] or nil, norms = {site -> mean norm},
--   steps = steps taken, threat = threat:describe(), config = the options used, output = the
--   model's output under the final perturbation, prefix = the replay (with keep_prefix) }
-- opts: steps (10), step_size (in eps's units; default 2.5 * eps / steps), init ('zero', 'uniform',
-- 'random_radius', 'sphere'), rule ('l2' normalised gradient, 'sign', 'adam', 'raw', or a step rule
-- function; default by norm), objective (see objective_of), early_stop (stop when every example succeeds),
-- forward = function(model, batch) -> output (default model(batch.x)), rng, adam_betas, context (a
-- prefix for error messages, e.g. 'train: step 12'), replay (default true: the layers before the
-- earliest site run once, not at every step; false runs each forward in full), keep_prefix (the
-- result's prefix is then the replay, its outputs kept with their graph, for a training forward on
-- the same batch and weights to reuse: lat.train.adversarial). A loss, gradient or perturbation
-- that is not finite raises an error naming the step and the site (tensor/finite.lua).
function A.pgd(model, batch, threat, opts)
  opts = opts or {}
  check_pgd_args(model, batch, threat, opts)
  local steps = opts.steps or 10
  local forward = opts.forward or default_forward
  local objective, ospec = objective_of(opts.objective)
  local rule = opts.rule or threat:default_rule()
  local step_rule = type(rule) == 'function' and rule or rules[rule] or raise(("attack: unknown step rule '%s'"):format(tostring(rule)))
  local init = opts.init or 'zero'
  local rng = opts.rng or lat.default_generator
  local context = opts.context and (opts.context .. ': ') or ''
  local function fail(what, run) F.fail(context .. 'attack: ' .. what .. ' is not finite', run and model, run) end
  -- the weights need no gradient during an attack, unless its forwards are to be reused by
  -- training (keep_prefix): the graph then holds only what the perturbation's gradient needs
  local attack = opts.keep_prefix and in_eval or function(m, fn) return in_eval(m, without_grad, m, fn) end
  return attack(model, function()
    -- The first forward gives each site's clean activation (where the initial perturbation is
    -- drawn) and records the prefix; the later ones replay it and run only what follows the
    -- earliest site (nn/replay.lua). opts.replay = false runs every forward in full.
    local rp = opts.replay ~= false and replay.new() or nil
    if rp then rp.keep_graph = opts.keep_prefix end
    local clean, deltas, radius, alpha, state = {}, {}, {}, {}, {}
    local function start(s, a)
      local c = a:detach()
      clean[s.name] = c
      local unit = threat:unit(c)
      radius[s.name] = unit * threat.eps
      alpha[s.name] = unit * (opts.step_size or 2.5 * threat.eps / math.max(steps, 1))
      if F.enabled and not F.tensor(c) then fail(("the clean activation at '%s'"):format(s.name), function() forward(model, batch) end) end
      deltas[s.name] = threat:sample(c, init, rng, batch, radius[s.name]):requires_grad_()
      if F.enabled and not F.tensor(deltas[s.name]) then fail(("the initial perturbation at '%s'"):format(s.name)) end
      state[s.name] = {}
    end
    -- each site's hook marks the end of the prefix and, at the first forward, starts the attack
    local function hook_of(s)
      return function(a)
        if rp then rp:reach() end
        if not deltas[s.name] then lat.no_grad(start, s, a) end
        return a + deltas[s.name]
      end
    end
    local function perturbed()
      local out = at_sites(model, threat, hook_of, function() return forward(model, batch) end)
      return out, objective(out, batch, ospec)
    end
    local function reached()
      for _, s in ipairs(threat.sites) do
        if not clean[s.name] then raise(("attack: the forward pass never reached '%s'"):format(s.name)) end
      end
    end
    local forwards = 0
    local function evaluate()
      forwards = forwards + 1
      if not rp then return perturbed() end
      if forwards == 1 then return rp:record(perturbed) end
      return rp:play(perturbed)
    end
    local losses, taken = {}, 0
    for step = 1, steps do
      local _, loss, success = evaluate()
      if step == 1 then reached() end
      losses[step] = loss:item()
      if F.enabled and not F.number(losses[step]) then fail(("step %d: the adversary's loss (%s)"):format(step, tostring(losses[step])), evaluate) end
      taken = step
      if opts.early_stop and success and success:min():item() == 1 then break end
      local list = {}
      for i, s in ipairs(threat.sites) do list[i] = deltas[s.name] end
      local grads = lat.grad(loss, list)
      lat.no_grad(function()
        for i, s in ipairs(threat.sites) do
          local g, d = grads[i], deltas[s.name]
          if F.enabled and not F.tensor(g) then fail(("step %d: the gradient of the perturbation at '%s'"):format(step, s.name)) end
          local dir = step_rule(g, state[s.name], step, threat, opts)
          deltas[s.name] = threat:project(d - dir * alpha[s.name], clean[s.name], batch, radius[s.name]):requires_grad_()
          if F.enabled and not F.tensor(deltas[s.name]) then fail(("step %d: the perturbation at '%s'"):format(step, s.name)) end
        end
      end)
    end
    -- the final perturbation's effect (with no steps, this forward also gives the clean
    -- activations; it keeps its graph when the prefix is to be reused by a training forward)
    local final = (steps == 0 and opts.keep_prefix) and evaluate or function() return lat.no_grad(evaluate) end
    local out, loss, success = final()
    if steps == 0 then reached() end
    if F.enabled and not F.number(loss:item()) then fail(("the final adversary's loss (%s)"):format(tostring(loss:item())), evaluate) end
    local norms = {}
    for _, s in ipairs(threat.sites) do
      local d = deltas[s.name]:detach()
      deltas[s.name] = d
      norms[s.name] = lat.no_grad(function() return threat:measure(d):mean():item() end)
    end
    return {
      deltas = deltas, losses = losses, final_loss = loss:item(), output = out,
      success_mask = success, success = success and success:mean():item() or nil,
      norms = norms, steps = taken, threat = threat:describe(), prefix = opts.keep_prefix and rp or nil,
      config = { steps = steps, rule = type(rule) == 'function' and 'function' or rule, init = init, early_stop = opts.early_stop and true or false },
    }
  end)
end

-- random(model, batch, threat[, opts]): the random-perturbation control (the paper's RLP): a
-- perturbation of the full radius in a random direction (opts.init = 'sphere' by default), with
-- the same result fields as pgd
function A.random(model, batch, threat, opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.steps, o.init = 0, opts.init or 'sphere'
  return A.pgd(model, batch, threat, o)
end

-- lat.attack.universal: one perturbation or patch shared by every image (attack/universal.lua)
A.universal = require 'lat.attack.universal'

return A
