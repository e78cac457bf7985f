-- experiment/shard.lua: which share of a grid this process runs. Shard i of n (0-based) runs
-- the configurations i + 1, i + 1 + n, i + 1 + 2n, ... of the grid.
--   shard.of('1/4')   -> { index = 1, count = 4, source = '--shard' }
--   shard.of('')      -> from the environment of the engine that started the process: a Slurm
--                        job array, Slurm tasks, Open MPI or PMI (else 0 of 1)
--   shard.of('none')  -> 0 of 1 whatever the environment says
--   shard.mine(configurations, s) -> those of shard s
local core = require 'lat.core'
local raise = core.raise

local M = {}

local function integer(name, value)
  local n = tonumber(value)
  if not (n and n == math.floor(n) and n >= 0 and n < 2 ^ 31) then
    raise(("%s is '%s', not an integer >= 0"):format(name, tostring(value)))
  end
  return n
end

local function shard(index, count, source)
  if count < 1 then raise(('%s: the shard count is %d; it must be at least 1'):format(source, count)) end
  if index >= count then
    raise(('%s: shard index %d is out of range: with %d shards it is 0 .. %d'):format(source, index, count, count - 1))
  end
  return { index = index, count = count, source = source }
end

-- the pairs of variables each engine sets, most specific first: an array task inside a Slurm
-- job that also has tasks is a share of the array
local ENGINES = {
  { 'SLURM_PROCID', 'SLURM_NTASKS' },
  { 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE' },
  { 'PMI_RANK', 'PMI_SIZE' },
}

local function from_env(getenv)
  local id = getenv('SLURM_ARRAY_TASK_ID')
  if id then
    local count = getenv('SLURM_ARRAY_TASK_COUNT')
    local min = getenv('SLURM_ARRAY_TASK_MIN')
    if not (count and min) then raise('SLURM_ARRAY_TASK_ID is set, but SLURM_ARRAY_TASK_MIN or SLURM_ARRAY_TASK_COUNT is not') end
    local step = integer('SLURM_ARRAY_TASK_STEP', getenv('SLURM_ARRAY_TASK_STEP') or 1)
    local offset = integer('SLURM_ARRAY_TASK_ID', id) - integer('SLURM_ARRAY_TASK_MIN', min)
    if offset < 0 or offset % math.max(step, 1) ~= 0 then
      raise(('SLURM_ARRAY_TASK_ID %s is not MIN %s plus a multiple of the step %d'):format(id, min, step))
    end
    return shard(offset / math.max(step, 1), integer('SLURM_ARRAY_TASK_COUNT', count),
      ('SLURM_ARRAY_TASK_ID=%s (MIN %s, COUNT %s)'):format(id, min, count))
  end
  for _, e in ipairs(ENGINES) do
    local rank, size = getenv(e[1]), getenv(e[2])
    if rank or size then
      if not (rank and size) then raise(('%s is set, but %s is not'):format(rank and e[1] or e[2], rank and e[2] or e[1])) end
      return shard(integer(e[1], rank), integer(e[2], size), ('%s=%s of %s=%s'):format(e[1], rank, e[2], size))
    end
  end
  return shard(0, 1, 'one process')
end

-- of(spec[, getenv]): spec is the --shard option ('i/n', 'none' or '' for the environment)
function M.of(spec, getenv)
  getenv = getenv or os.getenv
  if spec == nil or spec == '' then return from_env(getenv) end
  if spec == 'none' then return shard(0, 1, '--shard=none') end
  local i, n = tostring(spec):match('^(%d+)/(%d+)$')
  if not i then raise(("--shard expects i/n (shard i of n, 0-based), 'none' or nothing, got '%s'"):format(tostring(spec))) end
  return shard(tonumber(i), tonumber(n), '--shard=' .. spec)
end

function M.mine(grid, s)
  local out = {}
  for k, c in ipairs(grid) do
    if (k - 1) % s.count == s.index then out[#out + 1] = c end
  end
  return out
end

-- the shard's name in file names: 0-of-1, 3-of-8
function M.name(s) return ('%d-of-%d'):format(s.index, s.count) end

return M
