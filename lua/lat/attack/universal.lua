-- attack/universal.lua: universal attacks on image classifiers, one perturbation shared by every image:
-- an adversarial patch (pasted at a random place per image) and a universal adversarial
-- perturbation (added to every image, in an Linf or L2 ball). Each is optimised on training
-- images by changing the input directly (no hooks) with lat.grad, then applied to held-out ones.
--   local patch = U.fit_patch(model, train, { size = 6, steps = 200 })
--   local xp = U.apply_patch(x, patch, U.positions(x, 6, rng))
local core = require 'lat.core'
local lat = require 'lat.tensor'
local data = require 'lat.data'
local F = require 'lat.tensor.finite'
local new_threat = require('lat.attack.threat').new
local raise = core.raise

local U = {}

-- random top-left corners for a size x size patch on each image of x: { top = {..}, left = {..} }
-- (0-based, Lua lists)
function U.positions(x, size, rng)
  local B, H, W = x:size(1), x:size(3), x:size(4)
  if size > H or size > W then raise(('patch: a %dx%d patch does not fit %dx%d images'):format(size, size, H, W)) end
  local t = lat.randint(0, H - size + 1, { B }, { rng = rng })
  local l = lat.randint(0, W - size + 1, { B }, { rng = rng })
  local pos = { top = {}, left = {} }
  for i = 0, B - 1 do pos.top[i + 1], pos.left[i + 1] = t.i[i], l.i[i] end
  return pos
end

-- apply_patch(x [B, C, H, W], patch [1, C, s, s], pos) -> x with the patch pasted at pos;
-- differentiable with respect to the patch (one gather places it on every image)
function U.apply_patch(x, patch, pos)
  local B, Ch, H, W = unpack(x.shape)
  local s = patch:size(3)
  local index = lat.empty({ B, Ch, H * W }, 'int32')
  local mask = lat.zeros(B, 1, H, W)
  for b = 0, B - 1 do
    local top, left = pos.top[b + 1], pos.left[b + 1]
    for c = 0, Ch - 1 do
      local base = (b * Ch + c) * H * W
      for i = 0, H - 1 do
        for j = 0, W - 1 do
          local pi, pj = i - top, j - left
          index.i[base + i * W + j] = (pi >= 0 and pi < s and pj >= 0 and pj < s) and pi * s + pj or s * s
        end
      end
    end
    for i = top, top + s - 1 do
      for j = left, left + s - 1 do mask.f[(b * H + i) * W + j] = 1 end
    end
  end
  -- the patch's pixels and one zero, per channel, then picked out for every pixel of every image
  local flat = lat.cat({ patch:reshape(1, Ch, s * s), lat.zeros(1, Ch, 1) }, 3):expand(B, Ch, s * s + 1)
  local placed = flat:gather(3, index):reshape(B, Ch, H, W)
  return x * (1 - mask) + placed
end

-- minibatches of a dataset (or one batch table {x=, y=}) forever, in a seeded shuffle
local function batches(ds, batch_size, seed)
  if ds.x and ds.y and not ds.len then ds = data.TensorDataset{ x = ds.x, y = ds.y } end
  if type(ds) ~= 'table' or not ds.len then raise('universal: fit data must be a dataset or a batch {x=, y=}') end
  local loader = data.DataLoader(ds, { batch_size = batch_size, shuffle = true, seed = seed, drop_last = ds:len() > batch_size })
  local epoch, it = 0, nil
  return function()
    local b = it and it()
    if b then return b end
    epoch = epoch + 1
    it = loader:iter(epoch)
    return it()
  end
end

-- one update of a leaf v by the gradient g of the adversary's loss (to descend): 'sign',
-- 'l2' (normalised) or 'adam' (state kept in st)
local function move(rule, g, st, step)
  if rule == 'sign' then return g:gt(0):float() - g:lt(0):float() end
  if rule == 'l2' then return g / g:norm(2):clamp(1e-12) end
  if rule == 'adam' then
    st.m = st.m and st.m * 0.9 + g * 0.1 or g * 0.1
    st.v = st.v and st.v * 0.999 + g * g * 0.001 or g * g * 0.001
    return (st.m / (1 - 0.9 ^ step)) / ((st.v / (1 - 0.999 ^ step)):sqrt() + 1e-8)
  end
  raise(("universal: unknown step rule '%s' (sign, l2, adam)"):format(tostring(rule)))
end

-- runs fn with the model in evaluation mode, restoring its mode afterwards
local function in_eval(model, fn)
  local was = model.training
  model:eval()
  local res = { pcall(fn) }
  model:train(was)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2)
end
U.in_eval = in_eval

-- the options every fit takes, checked: steps and batch_size integers, step_size finite > 0
local function check_options(what, model, o)
  if type(model) ~= 'table' or type(model.eval) ~= 'function' then raise(what .. ': the first argument must be a lat.nn model, got ' .. type(model)) end
  if o.steps ~= nil and not core.natural(o.steps) then raise(('%s: steps must be an integer >= 0, got %s'):format(what, tostring(o.steps))) end
  if o.batch_size ~= nil and not (core.natural(o.batch_size) and o.batch_size >= 1) then
    raise(('%s: batch_size must be an integer >= 1, got %s'):format(what, tostring(o.batch_size)))
  end
  if o.step_size ~= nil and not core.positive(o.step_size) then
    raise(('%s: step_size must be a finite number > 0, got %s'):format(what, tostring(o.step_size)))
  end
end

-- the shared optimisation loop: perturb(v, x, rng) -> adversarial x; constrain(v) -> v in the set
local function fit(model, ds, v, perturb, constrain, o)
  local rng = lat.Generator(o.seed or 0)
  local next_batch = batches(ds, o.batch_size or 64, o.seed or 0)
  local st, losses = {}, {}
  return in_eval(model, function()
    for step = 1, o.steps or 200 do
      local b = next_batch()
      v = v:detach():requires_grad_()
      local loss = -lat.cross_entropy(model(perturb(v, b.x, rng)), b.y)
      losses[step] = -loss:item()
      if F.enabled and not F.number(losses[step]) then
        F.fail(('universal: step %d: the loss is %s'):format(step, tostring(losses[step])), model, function() model(perturb(v, b.x, rng)) end)
      end
      local g = lat.grad(loss, { v })[1]
      v = lat.no_grad(function() return constrain(v:detach() - move(o.rule, g, st, step) * o.step_size) end)
      if F.enabled and not F.tensor(v) then F.fail(('universal: step %d: the perturbation is not finite'):format(step)) end
    end
    return v, { losses = losses }
  end)
end

-- fit_patch(model, data, {size = 6, steps = 200, batch_size = 64, rule = 'adam', step_size =
-- 0.05, seed = 0, channels = from the data}) -> patch [1, C, size, size] in [0, 1], info
-- {losses = cross-entropy per step}. Untargeted: the patch raises the loss wherever it lands.
function U.fit_patch(model, ds, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  check_options('fit_patch', model, o)
  if o.size ~= nil and not (core.natural(o.size) and o.size >= 1) then raise(('fit_patch: size must be an integer >= 1, got %s'):format(tostring(o.size))) end
  o.rule, o.step_size = o.rule or 'adam', o.step_size or 0.05
  local s = o.size or 6
  local first = batches(ds, 1, 0)()
  local patch = lat.rand({ 1, first.x:size(2), s, s }, { rng = lat.Generator((o.seed or 0) + 1) })
  return fit(model, ds, patch,
    function(p, x, rng) return U.apply_patch(x, p, U.positions(x, s, rng)) end,
    function(p) return p:clamp(0, 1) end, o)
end

-- fit_uap(model, data, {norm = 'linf', eps = 16/255, steps = 200, batch_size = 64, rule = sign
-- for linf and l2 otherwise, step_size = eps / 10, seed = 0}) -> delta [1, C, H, W] with
-- norm <= eps, info. The perturbed image is clamp(x + delta, 0, 1).
function U.fit_uap(model, ds, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  check_options('fit_uap', model, o)
  local tm = new_threat{ where = 'input', norm = o.norm or 'linf', eps = o.eps or 16 / 255 }
  o.rule = o.rule or (tm.norm == 'linf' and 'sign' or 'l2')
  o.step_size = o.step_size or tm.eps / 10
  local first = batches(ds, 1, 0)()
  local shape = first.x.shape
  shape[1] = 1
  return fit(model, ds, lat.zeros(shape),
    function(d, x) return U.apply_uap(x, d) end,
    function(d) return tm:project(d, d) end, o)
end

-- apply_uap(x, delta) -> clamp(x + delta, 0, 1)
function U.apply_uap(x, delta) return (x + delta):clamp(0, 1) end

return U
