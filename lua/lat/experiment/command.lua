-- experiment/command.lua: the lat command's subcommands for sweeps.
--   lat merge RUN [RUN ...]                   results.csv and the summary of each complete run
--   lat sweep --slurm [--submit] [--cpus=2 --time=2:00:00 ...] RECIPE [recipe options]
--                                             a Slurm array script for the recipe's grid
-- The same from Lua: lat.experiment.merge(dir), require('lat.experiment.command').main('sweep', ...)
local core = require 'lat.core'
local args = require 'lat.args'
local E = require 'lat.experiment'
local fs = require 'lat.experiment.fs'
local sys = require 'lat.core.sys'
local shard = require 'lat.experiment.shard'
local slurm = require 'lat.experiment.slurm'
local raise = core.raise

local M = {}

local SWEEP = {
  slurm = { false, 'write a Slurm job-array script for the grid (the one engine so far)' },
  submit = { false, 'submit the script with sbatch once it is written' },
  tasks = { 0, 'array tasks (0: one per configuration); task i runs the configurations i+1, i+1+tasks, ...', 'natural' },
  parallel = { 0, 'at most this many tasks at once (0: no limit)', 'natural' },
  cpus = { 1, "CPUs per task (and the recipe's --threads, unless given)", 'count' },
  time = { '1:00:00', 'time limit per task (sbatch --time)' },
  mem = { '', 'memory per task, e.g. 4G (sbatch --mem; empty: the cluster default)' },
  partition = { '', 'partition (sbatch --partition; empty: the default)' },
  account = { '', 'account (sbatch --account; empty: the default)' },
}

local USAGE = 'usage: lat sweep --slurm [sweep options] RECIPE [recipe options]'

-- sweep(words) -> the script's path: the run folder made (config.json), RUN/sweep.sbatch written,
-- and submitted with --submit
function M.sweep(words)
  local own, rest, recipe_path = {}, {}, nil
  for _, w in ipairs(words) do
    if recipe_path then rest[#rest + 1] = w
    elseif w:sub(1, 1) == '-' or w:match('^[%a_][%w_%-]*=') then own[#own + 1] = w
    else recipe_path = w end
  end
  local opt, info = args.parse(SWEEP, own)
  if info.help or not recipe_path then
    io.write(args.help(SWEEP, { usage = USAGE, about = 'Writes (and with --submit submits) an sbatch job array that runs RECIPE\'s grid, one shard per task, into one run folder; the last task to end merges.' }))
    if not recipe_path and not info.help then raise('lat sweep: no recipe file given') end
    return nil
  end
  if not opt.slurm then raise('lat sweep: say which engine runs the sweep: --slurm (the only one so far)') end
  local recipe_file = fs.absolute(recipe_path)
  local recipe = E.load(recipe_file)
  local p = E.plan(recipe, rest)
  if p.help then io.write(p.help); return nil end
  for _, k in ipairs({ 'shard', 'resume', 'force' }) do
    if p.given[k] then raise(('lat sweep: leave --%s out: the array sets the shards, and every task resumes'):format(k)) end
  end
  local n = #p.selected
  local tasks = opt.tasks == 0 and n or math.min(opt.tasks, n)
  -- joining, as a task would: an existing run of the same recipe, options and grid is fine
  local f = E.open(p, recipe_file, shard.of('none'), true)
  sys.mkdir(f:path('slurm'))
  local out = fs.absolute(f.dir)
  local command = { sys.executable() or arg[-1] or 'lat', recipe_file }
  for _, w in ipairs(rest) do command[#command + 1] = w end
  command[#command + 1] = '--out=' .. out -- after the user's words, so that it is the one read
  command[#command + 1] = '--resume'
  if not p.given.threads then command[#command + 1] = '--threads=' .. opt.cpus end
  local path = f:path('sweep.sbatch')
  fs.write_atomic(path, slurm.script{ name = recipe.name, command = command, tasks = tasks, parallel = opt.parallel, cpus = opt.cpus,
    time = opt.time, mem = opt.mem, partition = opt.partition, account = opt.account, chdir = sys.cwd(), out = out,
    configurations = n })
  print(('lat sweep: %d configurations of %s in %d array tasks -> %s (run folder %s)'):format(n, recipe.name, tasks, path, f.dir))
  if opt.submit then
    local job = slurm.submit(path)
    print(('lat sweep: submitted as job %s; its logs go to %s/slurm/, the merged results to %s/results.csv'):format(job, f.dir, f.dir))
  else
    print(('lat sweep: submit it with: sbatch %s'):format(path))
  end
  return path
end

function M.merge(words)
  if #words == 0 or words[1] == '-h' or words[1] == '--help' then
    io.write('usage: lat merge RUN [RUN ...]\n\nMerges the rows of each run folder (every shard done) into results.csv, with the recipe\'s flags and plots.\n')
    if #words == 0 then raise('lat merge: no run folder given') end
    return
  end
  for _, dir in ipairs(words) do E.merge((dir:gsub('/+$', ''))) end
end

-- main(subcommand, words...): what `lat merge ...` and `lat sweep ...` run; an error is the
-- user's, so it comes without the library's file and line
function M.main(sub, ...)
  local words = { ... }
  local run = ({ merge = M.merge, sweep = M.sweep })[sub]
  if not run then raise(("lat: unknown subcommand '%s' (merge, sweep)"):format(tostring(sub))) end
  return E.protected(run, words)
end

return M
