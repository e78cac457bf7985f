-- eval/flags.lua: lat.eval.flags, the paper's two cautions as checks on a table of results: a
-- defence can harm held-out robustness, and can entrench a trojan more than clean fine-tuning
-- does.
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

return M
