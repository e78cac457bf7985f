-- experiment/slurm.lua: a sweep as a Slurm job array. Each array task is one shard of the grid
-- (the scaffold reads SLURM_ARRAY_TASK_ID, _MIN and _COUNT), every task writes into the same run
-- folder with --resume (a requeued task skips the rows it has), and the last task to end merges.
--   local text = slurm.script{ name =, command = { words }, tasks =, parallel =, cpus =, time =,
--     mem =, partition =, account =, chdir =, out =, configurations = }
--   local job = slurm.submit(path)   -- sbatch --parsable; raises with sbatch's words on failure
local core = require 'lat.core'
local raise = core.raise

local M = {}

local shell_word = require('lat.experiment.fs').shell_word

function M.script(t)
  for _, k in ipairs({ 'chdir', 'out' }) do
    if t[k]:find('%s') then raise(('lat sweep: the %s path %q has white space, which #SBATCH lines cannot hold'):format(k, t[k])) end
  end
  local lines = {
    '#!/bin/bash',
    ('#SBATCH --job-name=lat-%s'):format(t.name),
    ('#SBATCH --array=0-%d%s'):format(t.tasks - 1, (t.parallel or 0) > 0 and ('%%%d'):format(t.parallel) or ''),
    '#SBATCH --ntasks=1',
    ('#SBATCH --cpus-per-task=%d'):format(t.cpus),
    ('#SBATCH --time=%s'):format(t.time),
  }
  for _, k in ipairs({ 'mem', 'partition', 'account' }) do
    if t[k] and t[k] ~= '' then lines[#lines + 1] = ('#SBATCH --%s=%s'):format(k, t[k]) end
  end
  lines[#lines + 1] = ('#SBATCH --chdir=%s'):format(t.chdir)
  lines[#lines + 1] = ('#SBATCH --output=%s/slurm/%%A_%%a.out'):format(t.out)
  lines[#lines + 1] = ''
  lines[#lines + 1] = ('# %s: %d configurations in %d array tasks; task i runs the configurations i+1, i+1+%d, ...'):format(
    t.name, t.configurations, t.tasks, t.tasks)
  lines[#lines + 1] = '# A requeued or resubmitted task skips the rows it has (--resume); the last task to end merges.'
  lines[#lines + 1] = 'export LAT_PROGRESS=plain'
  local words = {}
  for i, w in ipairs(t.command) do words[i] = shell_word(w) end
  lines[#lines + 1] = 'exec ' .. table.concat(words, ' ')
  return table.concat(lines, '\n') .. '\n'
end

function M.submit(path)
  local p = io.popen(('sbatch --parsable %s 2>&1; echo "[exit $?]"'):format(shell_word(path)))
  local out = p:read('*a')
  p:close()
  local rc = tonumber(out:match('%[exit (%d+)%]%s*$'))
  local text = out:gsub('%[exit %d+%]%s*$', ''):gsub('%s+$', '')
  local job = text:match('^(%d+)')
  if rc ~= 0 or not job then
    raise(('lat sweep --submit: sbatch failed (exit %s): %s. The script is %s; submit it by hand once Slurm works'):format(
      tostring(rc), text, path))
  end
  return job
end

return M
