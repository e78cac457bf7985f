-- eval/pareto.lua: lat.eval.pareto, the Pareto front of result rows on two metrics, and
-- lat.eval.points, the rows as lat.plot.scatter's points.
--   local front = lat.eval.pareto(rows, 'clean_accuracy', 'robustness')
local M = {}

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
