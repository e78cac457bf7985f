-- io/init.lua: lat.io: lat.save and lat.load, checkpoints in the safetensors layout
-- (zstd-compressed when the name ends in .zst), written atomically and read as hostile input by
-- core/io_safetensors.c, whole or in shards (core/io_shard_index.c reads the index); and PNG
-- images (io/png.lua).
local core = require 'lat.core'
local json = require('cjson').new()
local ffi, C, raise = core.ffi, core.C, core.raise

local is_tensor = require('lat.tensor').is_tensor
local M = {} -- lat/init.lua puts save, load, set_read_limit and read_limit in the lat namespace

local function where(prefix) return prefix == '' and 'the top table' or "table '" .. prefix .. "'" end

-- {model = {w = t}, step = {t1, t2}} -> {['model.w'] = t, ['step.1'] = t1, ['step.2'] = t2}
local function flatten(tensors)
  local flat, names, seen = {}, {}, {}
  local function walk(tbl, prefix)
    if seen[tbl] then raise(('save: %s contains itself'):format(where(prefix))) end
    seen[tbl] = true
    for k, v in pairs(tbl) do
      if type(k) ~= 'string' and type(k) ~= 'number' then
        raise(('save: a key in %s is a %s; names are strings or numbers'):format(where(prefix), type(k)))
      end
      local name = prefix == '' and tostring(k) or prefix .. '.' .. tostring(k)
      if is_tensor(v) then
        if flat[name] then raise(("save: two tensors would be named '%s'"):format(name)) end
        flat[name] = v
        names[#names + 1] = name
      elseif type(v) == 'table' then
        walk(v, name)
      else
        raise(("save: '%s' is a %s, not a tensor or a table of tensors"):format(name, type(v)))
      end
    end
    seen[tbl] = nil
  end
  walk(tensors, '')
  table.sort(names)
  return flat, names
end

local function metadata_json(meta)
  if meta == nil then return nil end
  if type(meta) ~= 'table' then raise('save: opts.metadata must be a table of strings') end
  for k, v in pairs(meta) do
    if type(k) ~= 'string' or type(v) ~= 'string' then
      raise(("save: metadata maps strings to strings (safetensors' rule); %s = %s is %s -> %s (use tostring)")
        :format(tostring(k), tostring(v), type(k), type(v)))
    end
  end
  if next(meta) == nil then return '{}' end
  return require('lat.io.json').encode(meta) -- sorted keys: the same metadata gives the same header bytes
end

-- what opts.dtype may say, and the safetensors dtype float32 tensors are then stored as
local FLOAT_DTYPES = { f32 = 'F32', float32 = 'F32', f16 = 'F16', float16 = 'F16', bf16 = 'BF16', bfloat16 = 'BF16' }

-- lat.save(path, tensors[, opts]): tensors is a table name -> tensor (nested tables give dotted
-- names); opts.compress = true/false or a zstd level (default: true when path ends in .zst),
-- opts.metadata = {string -> string}, opts.dtype = 'f32' (default), 'f16' or 'bf16': how
-- float32 tensors are stored (rounded to nearest, ties to even; int32 and uint8 tensors are
-- stored as they are). Returns the names written, sorted.
function M.save(path, tensors, opts)
  if type(path) ~= 'string' then raise('save: path must be a string, got ' .. type(path)) end
  if type(tensors) ~= 'table' then
    raise('save: tensors must be a table of name -> tensor, got ' .. type(tensors))
  end
  opts = opts or {}
  local compress = opts.compress
  if compress == nil then compress = path:sub(-4) == '.zst' end
  local level = compress == true and 3 or compress == false and 0 or compress
  if type(level) ~= 'number' or level ~= math.floor(level) then
    raise('save: opts.compress must be true, false or a zstd level')
  end
  local float_dtype = FLOAT_DTYPES[opts.dtype or 'f32']
  if not float_dtype then
    raise(("save: opts.dtype is %s; float32 tensors are stored as 'f32', 'f16' or 'bf16'"):format(tostring(opts.dtype)))
  end
  local meta = metadata_json(opts.metadata)
  local flat, names = flatten(tensors)
  local n = #names
  local cnames = ffi.new('const char *[?]', n + 1)
  local cts = ffi.new('lat_tensor *[?]', n + 1)
  for i, name in ipairs(names) do
    cnames[i - 1] = name
    cts[i - 1] = flat[name].ptr
  end
  core.check(C.lat_save_safetensors(path, n, cnames, cts, meta, level, float_dtype))
  return names -- also keeps the name strings that cnames points into alive through the call
end

-- lat.set_read_limit(bytes): the most bytes that reading one file (lat.load, lat.data's IDX
-- reader, the PNG readers) may decode to; a file that would decode to more is refused before anything
-- is allocated. Process-wide; 0 restores the default (8 GiB or half the machine's memory,
-- whichever is less, and a compressed file may decode to at most 1100 times its size beyond
-- 64 MiB; a limit set here replaces both, so a genuine all-zero compressed checkpoint loads
-- after lat.set_read_limit(its decoded size)). Returns the previous limit. lat.read_limit() returns the current one.
function M.set_read_limit(bytes)
  if type(bytes) ~= 'number' or bytes ~= math.floor(bytes) or bytes < 0 or bytes >= 2^63 then
    raise('set_read_limit: bytes must be a whole number of bytes from 0 (the default) to 2^63, got ' .. tostring(bytes))
  end
  return tonumber(C.lat_set_read_limit(bytes))
end
function M.read_limit() return tonumber(C.lat_read_limit()) end

-- the safetensors dtype each lat dtype is stored as when it is not converted
local STORED = { float32 = 'F32', int32 = 'I32', uint8 = 'U8' }

-- one safetensors file -> tensors, metadata, report; or nil, the C message
local function load_file(path)
  local ck = C.lat_load_safetensors(path)
  if ck == nil then return nil, core.c_error() end
  ck = ffi.gc(ck, C.lat_checkpoint_free)
  local tensors, converted = {}, {}
  for i = 0, C.lat_checkpoint_count(ck) - 1 do
    local name = ffi.string(C.lat_checkpoint_name(ck, i))
    local t = core.wrap(C.lat_checkpoint_tensor(ck, i))
    local stored = ffi.string(C.lat_checkpoint_stored_dtype(ck, i))
    if stored ~= STORED[t.dtype] then converted[name] = stored .. ' -> ' .. STORED[t.dtype] end
    tensors[name] = t
  end
  local metadata = json.decode(ffi.string(C.lat_checkpoint_metadata(ck)))
  C.lat_checkpoint_free(ffi.gc(ck, nil))
  return tensors, metadata, { files = { path }, converted = converted }
end

-- the index's entries: shard -> its tensors' names (sorted), the shards (sorted), the index's metadata
local function read_index(path)
  local x = C.lat_read_shard_index(path)
  if x == nil then raise(core.c_error()) end
  x = ffi.gc(x, C.lat_shard_index_free)
  local listed, shards = {}, {}
  for i = 0, C.lat_shard_index_count(x) - 1 do
    local shard = ffi.string(C.lat_shard_index_shard(x, i))
    if not listed[shard] then
      listed[shard] = {}
      shards[#shards + 1] = shard
    end
    table.insert(listed[shard], ffi.string(C.lat_shard_index_tensor(x, i)))
  end
  local metadata = json.decode(ffi.string(C.lat_shard_index_metadata(x)))
  C.lat_shard_index_free(ffi.gc(x, nil))
  table.sort(shards)
  return listed, shards, metadata
end

-- A sharded checkpoint: every shard the index names is there before any is read, each holds
-- the tensors the index puts in it and no other, and the shards' metadata agree.
local function load_sharded(path)
  local listed, shards, index_metadata = read_index(path)
  local dir = path:match('^(.*)/[^/]*$') or '.'
  for _, shard in ipairs(shards) do
    local f = io.open(dir .. '/' .. shard, 'rb')
    if not f then
      raise(("checkpoint index %s: shard '%s' is missing (no file %s/%s; it holds %d tensors, '%s' first)")
        :format(path, shard, dir, shard, #listed[shard], listed[shard][1]))
    end
    f:close()
  end
  local tensors, metadata, from = {}, {}, {}
  local report = { index = path, index_metadata = index_metadata, files = {}, converted = {} }
  for _, shard in ipairs(shards) do
    local file = dir .. '/' .. shard
    local ts, meta, rep = load_file(file)
    if not ts then raise(('checkpoint index %s: shard %s: %s'):format(path, shard, meta)) end
    for _, name in ipairs(listed[shard]) do
      if not ts[name] then
        raise(("checkpoint index %s: the index puts tensor '%s' in shard '%s', which does not hold it"):format(path, name, shard))
      end
    end
    local wanted = {}
    for _, name in ipairs(listed[shard]) do wanted[name] = true end
    for name, t in pairs(ts) do
      if not wanted[name] then
        raise(("checkpoint index %s: shard '%s' holds tensor '%s', which the index does not put there"):format(path, shard, name))
      end
      tensors[name], report.converted[name] = t, rep.converted[name]
    end
    for k, v in pairs(meta) do
      if metadata[k] ~= nil and metadata[k] ~= v then
        raise(("checkpoint index %s: shards '%s' and '%s' give the metadata key '%s' different values")
          :format(path, from[k], shard, k))
      end
      metadata[k], from[k] = v, shard
    end
    report.files[#report.files + 1] = file
  end
  return tensors, metadata, report
end

-- lat.load(path) -> tensors (name -> tensor), metadata (string -> string: the file's
-- __metadata__), report. Tensors stored in a dtype lat has no dtype for are converted
-- (core/lat.h, lat_load_safetensors); report.converted names each, e.g. {w = 'F16 -> F32'}, and
-- report.files lists the files read. A path ending in .json is the index of a sharded
-- checkpoint (model.safetensors.index.json): its shards are loaded into one table, metadata
-- joins theirs, report.index_metadata is the index's own "metadata".
function M.load(path)
  if type(path) ~= 'string' then raise('load: path must be a string, got ' .. type(path)) end
  if path:sub(-5) == '.json' then return load_sharded(path) end
  local tensors, metadata, report = load_file(path)
  if not tensors then raise(metadata) end
  return tensors, metadata, report
end

-- lat.io.read_png(path), lat.io.write_png(path, image)
local png = require 'lat.io.png'
M.read_png, M.write_png = png.read_png, png.write_png

return M
