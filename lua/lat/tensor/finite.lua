-- tensor/finite.lua: the check that stops a training step, an attack or an evaluation at the first NaN
-- or Inf in a loss, a gradient or a perturbation, with an error naming the step, the tensor and,
-- for a model, the first layer whose output is not finite. On by default; lat.check_finite(false)
-- or LAT_CHECK_FINITE=0 in the environment turns it off.
--   local F = require 'lat.tensor.finite'
--   if F.enabled and not F.tensor(g) then F.fail('attack: step 3: the gradient ...') end
local core = require 'lat.core'
local ffi, C = core.ffi, core.C

local F = { enabled = os.getenv('LAT_CHECK_FINITE') ~= '0' }

local sumsq = ffi.new('double[1]')

-- is every element of a float32 tensor finite? One pass: the sum of squares, accumulated in
-- double (which a float32's square cannot overflow), is finite exactly when every element is.
function F.pointer(c)
  if c.dtype_ ~= C.LAT_F32 then return true end
  core.check(C.lat_sum_squares(c, sumsq))
  local s = sumsq[0]
  return s == s and s ~= math.huge
end
function F.tensor(t) return F.pointer(t.ptr) end

F.number = core.finite

-- The first place in a forward pass where a value stops being finite: "the model's input" or
-- "layer 'name' (Class)", or nil. run() repeats the forward pass (without gradients); every
-- layer's output is checked through hooks, which finish innermost and earliest first.
function F.first_bad_layer(model, run)
  if type(model) ~= 'table' or type(model.named_modules) ~= 'function' then return nil end
  local found, handles = nil, {}
  local function watch(where, pre)
    return function(a)
      if not found and type(a) == 'cdata' and not F.tensor(a) then found = where end
    end, { pre = pre }
  end
  handles[1] = model:hook('', watch("the model's input", true))
  for _, e in ipairs(model:named_modules()) do
    local name, m = e[1], e[2]
    local where = name == '' and ('the model (%s)'):format(m.__name) or ("layer '%s' (%s)"):format(name, m.__name)
    handles[#handles + 1] = model:hook(name, watch(where, false))
  end
  local lat = require 'lat.tensor'
  pcall(lat.no_grad, run)
  for _, h in ipairs(handles) do h.remove() end
  return found
end

-- raise msg at the caller's line, with the first non-finite layer of model's forward pass run()
-- when given, and how to turn the check off
function F.fail(msg, model, run)
  local layer = model and F.first_bad_layer(model, run)
  if layer then msg = msg .. '; the first non-finite value appears at ' .. layer end
  core.raise(msg .. ' (lat.check_finite(false) or LAT_CHECK_FINITE=0 turns this check off)')
end

-- lat.check_finite([flag]) -> the previous setting; with a flag, turns the check on or off
function F.set(flag)
  local was = F.enabled
  if flag ~= nil then F.enabled = flag and true or false end
  return was
end

return F
