-- cautions.lua: the paper's two cautions as checks on a table of results (a defence can harm
-- held-out robustness, and can entrench a trojan more than clean fine-tuning does), and the
-- Pareto front of two metrics. Exposed as lat.eval.flags and lat.eval.pareto.
--   lat.eval.flags(rows, { undefended = rows[1], clean_finetune = rows[2] })
--   for _, r in ipairs(rows) do print(r.name, r.flags) end
local core = require 'lat.core'
local raise = core.raise

local M = {}

-- flags(rows, {undefended = row, clean_finetune = row}[, {tolerance = 0, robustness_tolerance =,
-- asr_tolerance =}]) -> rows, each given robustness_harmed (robustness < undefended's -
-- tolerance), trojan_entrenched (trojan_asr > clean_finetune's + tolerance) and flags, a short
-- string: 'robustness harmed', 'trojan entrenched', both joined by ', ', or ''. A flag is nil
-- when the row or its baseline lacks the number.
function M.flags(rows, baselines, opts)
  if type(rows) ~= 'table' or type(baselines) ~= 'table' then raise('flags: expected rows and {undefended =, clean_finetune =}') end
  opts = type(opts) == 'number' and { tolerance = opts } or (opts or {})
  local rtol = opts.robustness_tolerance or opts.tolerance or 0
  local atol = opts.asr_tolerance or opts.tolerance or 0
  local und, cft = baselines.undefended or {}, baselines.clean_finetune or {}
  for _, r in ipairs(rows) do
    if r.robustness and und.robustness then r.robustness_harmed = r.robustness < und.robustness - rtol end
    if r.trojan_asr and cft.trojan_asr then r.trojan_entrenched = r.trojan_asr > cft.trojan_asr + atol end
    local f = {}
    if r.robustness_harmed then f[#f + 1] = 'robustness harmed' end
    if r.trojan_entrenched then f[#f + 1] = 'trojan entrenched' end
    r.flags = table.concat(f, ', ')
  end
  return rows
end

-- a key or a function of a row, as a function of a row
local function getter(k) return type(k) == 'function' and k or function(r) return r[k] end end

-- points(rows, x, y[, group]) -> lat.plot.scatter's points for result rows: x and y as in
-- pareto (keys or functions of a row), the row's name as label, and as group group(r), by
-- default the first word of r.defence
function M.points(rows, x, y, group)
  local fx, fy = getter(x), getter(y)
  group = group or function(r) return r.defence:match('^%S+') end
  local pts = {}
  for _, r in ipairs(rows) do pts[#pts + 1] = { x = fx(r), y = fy(r), label = r.name, group = group(r) } end
  return pts
end

-- pareto(rows, x, y) -> the rows (in their order) that no other row beats on both x and y,
-- maximising both. x and y are keys or functions of a row (for a metric to minimise, pass
-- function(r) return -r.trojan_asr end). Rows lacking either number are left out.
function M.pareto(rows, x, y)
  local fx, fy = getter(x), getter(y)
  local pts = {}
  for _, r in ipairs(rows) do
    local a, b = fx(r), fy(r)
    if type(a) == 'number' and type(b) == 'number' and a == a and b == b then pts[#pts + 1] = { r, a, b } end
  end
  local front = {}
  for _, p in ipairs(pts) do
    local beaten = false
    for _, q in ipairs(pts) do
      if q[2] >= p[2] and q[3] >= p[3] and (q[2] > p[2] or q[3] > p[3]) then beaten = true; break end
    end
    if not beaten then front[#front + 1] = p[1] end
  end
  return front
end

return M
