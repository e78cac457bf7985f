-- tensor/gradcheck.lua: compares the gradients autograd computes with central finite differences.
--   local ok, report = lat.gradcheck(function(x, w) return lat.linear(x, w) end, { x, w })
-- The output is projected onto a fixed random direction r, so one scalar L = sum(r * f(inputs))
-- is differentiated; L is summed in double precision in Lua so that float32 rounding of the
-- sum does not swamp the differences. Points where the left and right slopes disagree are
-- kinks (ReLU at 0, a max-pool tie) and are skipped, up to a limit.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local C = core.C

local function projected(fn, inputs, r)
  local out = lat.no_grad(fn, unpack(inputs))
  local p, q, s = out.f, r.f, 0
  for k = 0, out:numel() - 1 do s = s + p[k] * q[k] end
  return s
end

-- opts: eps (1e-2), atol (1e-2), rtol (1e-2), max_points per input (64), kinks (false):
-- whether to detect and skip kinks, max_skip (fraction, 0.25), rng
return function(fn, inputs, opts)
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-2, opts.atol or 1e-2, opts.rtol or 1e-2
  local max_points = opts.max_points or 64
  local rng = opts.rng or lat.Generator(1234)
  local out = fn(unpack(inputs))
  local r = lat.randn(out.shape, { rng = rng })
  local loss = out:mul(r):sum()
  local wrt, idx = {}, {}
  for i, x in ipairs(inputs) do
    if lat.is_tensor(x) and x.requires_grad then wrt[#wrt + 1] = x; idx[#idx + 1] = i end
  end
  local grads = lat.grad(loss, wrt)
  local report = { checked = 0, skipped = 0, worst = 0, failures = {} }
  for j, x in ipairs(wrt) do
    local n = x:numel()
    local g, xf = grads[j].f, x.f
    local count = math.min(n, max_points)
    for c = 0, count - 1 do
      local k = n <= max_points and c or math.floor(c * n / count)
      local orig = xf[k]
      xf[k] = orig + eps
      local fp = projected(fn, inputs, r)
      xf[k] = orig - eps
      local fm = projected(fn, inputs, r)
      local skip = false
      if opts.kinks then
        xf[k] = orig
        local f0 = projected(fn, inputs, r)
        local left, right = (f0 - fm) / eps, (fp - f0) / eps
        skip = math.abs(left - right) > 0.05 * math.max(1, math.abs(left), math.abs(right))
      end
      xf[k] = orig
      if skip then
        report.skipped = report.skipped + 1
      else
        local num, ana = (fp - fm) / (2 * eps), g[k]
        local err = math.abs(num - ana)
        local bound = atol + rtol * math.abs(num)
        report.checked = report.checked + 1
        report.worst = math.max(report.worst, err / bound)
        if err > bound then
          report.failures[#report.failures + 1] = ('input %d element %d: numeric %.6g, autograd %.6g'):format(idx[j], k, num, ana)
        end
      end
    end
  end
  local too_many_skipped = report.skipped > (opts.max_skip or 0.25) * (report.checked + report.skipped)
  if too_many_skipped then
    report.failures[#report.failures + 1] = ('%d of %d points skipped as kinks'):format(report.skipped, report.checked + report.skipped)
  end
  return #report.failures == 0, report
end
