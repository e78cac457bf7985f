-- dist/init.lua: lat.dist, data-parallel training over MPI ranks. Under `mpirun -np N lat
-- script.lua`, each of the N processes (ranks) trains on its rows of every global batch, and the
-- gradients are averaged over the ranks (one MPI_Allreduce per step, in liblat_mpi) before each
-- update, so that N ranks follow the loss curve of one process given the whole batch.
-- lat.train does all of this by itself; the pieces serve loops written by hand:
--   lat.dist.size(), lat.dist.rank(), lat.dist.is_main()   -- 1, 0, true in a single process
--   local part = lat.dist.Part(batch)                      -- part.batch: this rank's rows
--   ... loss(part.batch):backward() ...
--   loss, extra = part:reduce(params, loss, extra, model)  -- gradients and numbers averaged
-- A process that no MPI launcher started stays single and never loads MPI. A launch of several
-- ranks with a lat built without MPI is an error, rather than N processes each training alone.
-- MPI ends with the Lua state: MPI_Finalize after a normal end, MPI_Abort after an error (so
-- that the other ranks do not wait for a failed one forever).
local ffi = require 'ffi'
local core = require 'lat.core'
local lat = require 'lat.tensor'
local raise = core.raise

local M = {}

local state = { mode = nil } -- mode: nil (not decided yet), 'single' or 'mpi'
local lib, lib_error

-- the variables by which MPI launchers tell a process its place: Open MPI's mpirun, and PMI
-- (MPICH's hydra, srun --mpi=pmi2)
local LAUNCHERS = {
  { size = 'OMPI_COMM_WORLD_SIZE', rank = 'OMPI_COMM_WORLD_RANK', name = 'mpirun (Open MPI)' },
  { size = 'PMI_SIZE', rank = 'PMI_RANK', name = 'a PMI launcher' },
}

-- launched() -> size, rank, launcher name: what the environment says an MPI launcher started
-- (1, 0, nil when none did), whether or not MPI is running
function M.launched()
  for _, l in ipairs(LAUNCHERS) do
    local size = tonumber(os.getenv(l.size) or '')
    if size then return size, tonumber(os.getenv(l.rank) or '') or 0, l.name end
  end
  return 1, 0, nil
end

-- liblat_mpi sits beside liblat (LAT_LIBRARY, which the lat command sets), or LAT_MPI_LIBRARY
local function library_path()
  local explicit = os.getenv('LAT_MPI_LIBRARY')
  if explicit then return explicit end
  local dir = (os.getenv('LAT_LIBRARY') or ''):match('^(.*/)[^/]*$')
  return (dir or '') .. 'liblat_mpi.so'
end

local function load()
  if lib or lib_error then return lib, lib_error end
  ffi.cdef(require 'lat.dist.cdef')
  local path = library_path()
  local ok, l = pcall(ffi.load, path)
  if ok then lib = l else lib_error = ('cannot load %s: %s'):format(path, tostring(l)) end
  return lib, lib_error
end

-- available() -> true when this lat was built with MPI (liblat_mpi loads), else false, why
function M.available()
  local l, err = load()
  return l ~= nil, err
end

local function check(rc)
  if rc ~= 0 then raise('lat.dist: ' .. core.c_error()) end
end

local function start()
  check(lib.lat_dist_init())
  state.mode, state.rank, state.size = 'mpi', lib.lat_dist_rank(), lib.lat_dist_size()
  local l = lib
  state.guard = ffi.gc(ffi.new('char[1]'), function()
    local cli = package.loaded['lat.cli']
    if cli and cli.failed then l.lat_dist_abort(1) else l.lat_dist_finalize() end
  end)
end

local function decide()
  if state.mode then return end
  local size, _, launcher = M.launched()
  if size <= 1 or state.independent then state.mode = 'single'; return end
  local ok, err = load()
  if not ok then
    raise(('lat.dist: this process is one of %d ranks that %s started, but this lat was built ' ..
      'without MPI (%s); install libopenmpi-dev and rebuild, or run one process'):format(size, launcher, err))
  end
  start()
end

-- init(): starts MPI now, also for a single rank; raises when this lat has no MPI
function M.init()
  if state.mode == 'mpi' then return end
  if state.independent then raise('lat.dist.init: the ranks were declared independent (lat.dist.independent)') end
  local ok, err = load()
  if not ok then
    raise(('lat.dist.init: MPI is not available: %s (CMake found no MPI when lat was built; ' ..
      'install libopenmpi-dev and rebuild)'):format(err))
  end
  start()
end

-- independent(): the ranks do separate work (a sweep sharded by MPI rank, say): lat.dist then
-- reports size 1 and training averages nothing. Call it before any training.
function M.independent()
  if state.mode == 'mpi' then raise('lat.dist.independent: MPI already runs data-parallel training here') end
  state.independent, state.mode = true, 'single'
end

-- the ranks of data-parallel training, this process's place among them, and whether it is the
-- one that writes files and progress (rank 0)
function M.size() decide(); return state.mode == 'mpi' and state.size or 1 end
function M.rank() decide(); return state.mode == 'mpi' and state.rank or 0 end
function M.is_main() return M.rank() == 0 end

local function tensor_list(tensors, what)
  if type(tensors) ~= 'table' then raise(('%s: expected a list of tensors, got %s'):format(what, type(tensors))) end
  for i, t in ipairs(tensors) do
    if not lat.is_tensor(t) then raise(('%s: [%d] is a %s, not a tensor'):format(what, i, type(t))) end
  end
  return tensors
end

-- calls liblat_mpi's fn(tensor pointers, count, ...) on a list of tensors; one process has
-- nothing to do
local function on_tensors(fn, what, tensors, ...)
  tensor_list(tensors, what)
  if M.size() == 1 then return end
  local ptrs = ffi.new('lat_tensor *[?]', #tensors + 1)
  for i, t in ipairs(tensors) do ptrs[i - 1] = t.ptr end
  check(lib[fn](ptrs, #tensors, ...))
end

-- the gradients that params have (those without one are left out)
local function grads_of(params, what)
  local grads = {}
  for _, p in ipairs(tensor_list(params, what)) do
    if p.ptr.grad_ ~= nil then grads[#grads + 1] = p.grad end
  end
  return grads
end

-- allreduce_mean(tensors[, weight = 1]): each float32 tensor becomes the weighted mean over the
-- ranks, sum_r weight_r * t_r / sum_r weight_r, in place
function M.allreduce_mean(tensors, weight)
  on_tensors('lat_dist_allreduce_mean', 'lat.dist.allreduce_mean', tensors, weight or 1)
end

-- allreduce_grads(params[, weight = 1]): every parameter's gradient becomes the weighted mean
-- over the ranks (weight: the rank's rows, for the gradient of the mean loss over the global
-- batch). Parameters without a gradient are left out, and must be the same on every rank.
function M.allreduce_grads(params, weight)
  M.allreduce_mean(grads_of(params, 'lat.dist.allreduce_grads'), weight)
end

-- broadcast(tensors[, root = 0]): every rank's tensors (parameters, say) get root's values
function M.broadcast(tensors, root)
  on_tensors('lat_dist_broadcast', 'lat.dist.broadcast', tensors, root or 0)
end

-- sum(numbers) -> their sums over the ranks (a new list)
function M.sum(numbers)
  local n = #numbers
  local buf = ffi.new('double[?]', n + 1)
  for i = 1, n do buf[i - 1] = numbers[i] end
  if M.size() > 1 then check(lib.lat_dist_allreduce_sum(buf, n)) end
  local out = {}
  for i = 1, n do out[i] = buf[i - 1] end
  return out
end

-- barrier(): waits until every rank is here
function M.barrier()
  if M.size() > 1 then check(lib.lat_dist_barrier()) end
end

-- ---------------------------------------------------------------- a rank's part of a batch

local function rows_of(batch)
  if type(batch) ~= 'table' then raise('lat.dist: a batch must be a table of fields, got ' .. type(batch)) end
  for _, k in ipairs({ 'x', 'y' }) do
    local v = batch[k]
    if lat.is_tensor(v) and v:dim() >= 1 then return v:size(1) end
  end
  raise('lat.dist: cannot split a batch without a tensor x or y (its rows are the first dimension of x)')
end

-- a number that two ranks holding different global batches are unlikely to share: of the
-- examples' positions in the data set (the loader's batch.index) when there, else the row count
local function fingerprint(batch, rows)
  local h = rows
  local index = batch.index
  if lat.is_tensor(index) and index.dtype == 'int32' then
    for k = 0, index:numel() - 1 do h = (h * 31 + index.i[k]) % 2147483647 end
  end
  return h
end

local function number_of(v)
  if lat.is_tensor(v) and v:numel() == 1 then return v:item() end
  return type(v) == 'number' and v or nil
end

local Part = {}
Part.__index = Part

-- Part(batch[, rank, size]): the rows [floor(r*B/N), floor((r+1)*B/N)) of a global batch of B
-- rows (the first dimension of batch.x, else of batch.y) for rank r of N (default: this process
-- in lat.dist). Fields whose first dimension is B (tensors) or whose length is B (plain lists)
-- are cut; the others are shared. part.batch is the cut batch, part.rows its row count.
function M.Part(batch, rank, size)
  rank, size = rank or M.rank(), size or M.size()
  local B = rows_of(batch)
  if B < size then
    raise(('lat.dist: a batch of %d rows cannot be split over %d ranks; use batches of at least %d rows ' ..
      '(DataLoader drop_last leaves out a short last batch)'):format(B, size, size))
  end
  local first, last = math.floor(rank * B / size), math.floor((rank + 1) * B / size)
  local cut = {}
  for k, v in pairs(batch) do
    if lat.is_tensor(v) and v:dim() >= 1 and v:size(1) == B then
      cut[k] = v:narrow(1, first + 1, last - first)
    elseif type(v) == 'table' and getmetatable(v) == nil and #v == B then
      cut[k] = { unpack(v, first + 1, last) }
    else
      cut[k] = v
    end
  end
  return setmetatable({ batch = cut, rows = last - first, total = B, size = size,
    fingerprint = fingerprint(batch, B) }, Part)
end

-- the float32 buffers of a lat.nn model (batch-norm running statistics), or none
local function buffers_of(model)
  local list = {}
  if type(model) == 'table' and type(model.named_buffers) == 'function' then
    for _, e in ipairs(model:named_buffers()) do
      if lat.is_tensor(e[2]) and e[2].dtype == 'float32' then list[#list + 1] = e[2] end
    end
  end
  return list
end

-- part:share(params[, model]): every rank takes rank 0's parameters and model buffers (before
-- the first step, so that the ranks start alike even if they were built differently)
function Part:share(params, model)
  local list = buffers_of(model)
  for _, p in ipairs(tensor_list(params, 'lat.dist.Part:share')) do list[#list + 1] = p end
  M.broadcast(list)
end

-- part:reduce(params, loss, extra[, model]) -> loss, extra: after backward on this rank's rows,
-- averages over the ranks, weighted by rows: the gradients, the model's buffers (so that every
-- rank keeps the same running statistics), the loss and the extra numbers (so they are the
-- global batch's means). Raises if the ranks held different global batches.
function Part:reduce(params, loss, extra, model)
  local list = grads_of(params, 'lat.dist.Part:reduce')
  for _, b in ipairs(buffers_of(model)) do list[#list + 1] = b end
  M.allreduce_mean(list, self.rows)
  local keys = {}
  for k, v in pairs(extra or {}) do
    if number_of(v) then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local values = { self.rows, self.rows * loss, self.fingerprint }
  for i, k in ipairs(keys) do values[3 + i] = self.rows * number_of(extra[k]) end
  local sums = M.sum(values)
  if sums[3] ~= self.fingerprint * self.size then
    raise('lat.dist: the ranks hold different global batches: give the DataLoader the same seed on ' ..
      'every rank, and let no transform draw from a generator that differs between ranks')
  end
  local out
  if extra then
    out = {}
    for k, v in pairs(extra) do out[k] = v end
    for i, k in ipairs(keys) do out[k] = sums[3 + i] / sums[1] end
  end
  return sums[2] / sums[1], out
end

return M
