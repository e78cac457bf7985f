-- optim/schedule.lua: learning-rate schedules (lat.optim.schedule), each a function(step) -> lr, where
-- step = 1 is the first optimisation step (lat.train passes optimizer.steps + 1).
local raise = require('lat.core').raise
local S = {}

local function need(opts, key, what)
  local v = opts[key]
  if type(v) ~= 'number' then raise(('%s: %s must be a number, got %s'):format(what, key, type(v))) end
  return v
end

-- constant(lr) or constant{base=lr}
function S.constant(lr)
  if type(lr) == 'table' then lr = need(lr, 'base', 'schedule.constant') end
  if type(lr) ~= 'number' then raise('schedule.constant: lr must be a number') end
  return function() return lr end
end

-- warmup_cosine{base=, warmup=0, total=, min=0}: linear from base/warmup at step 1 to base at
-- step warmup, then half a cosine from base down to min at step total, and min after it.
function S.warmup_cosine(o)
  local base, total = need(o, 'base', 'schedule.warmup_cosine'), need(o, 'total', 'schedule.warmup_cosine')
  local warmup, min = o.warmup or 0, o.min or 0
  if warmup < 0 or warmup >= total then
    raise(('schedule.warmup_cosine: warmup (%s) must be in [0, total) with total = %s'):format(warmup, total))
  end
  return function(step)
    if warmup > 0 and step <= warmup then return base * step / warmup end
    local progress = math.max(0, math.min(1, (step - warmup) / (total - warmup)))
    return min + (base - min) * 0.5 * (1 + math.cos(math.pi * progress))
  end
end

-- step{base=, every=, gamma=0.1} multiplies by gamma after every `every` steps (torch's StepLR);
-- step{base=, milestones={...}, gamma=} after each milestone step (MultiStepLR). Steps 1..every
-- (or 1..milestones[1]) use base.
function S.step(o)
  local base, gamma = need(o, 'base', 'schedule.step'), o.gamma or 0.1
  if o.milestones then
    local ms = o.milestones
    for i = 2, #ms do
      if ms[i] <= ms[i - 1] then raise('schedule.step: milestones must increase') end
    end
    return function(step)
      local k = 0
      while k < #ms and step > ms[k + 1] do k = k + 1 end
      return base * gamma ^ k
    end
  end
  local every = need(o, 'every', 'schedule.step')
  if every < 1 then raise('schedule.step: every must be at least 1') end
  return function(step) return base * gamma ^ math.floor((step - 1) / every) end
end

return S
