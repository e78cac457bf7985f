-- files.lua: where the data sets live, reading and listing files, and the C readers of data set
-- files (IDX; PNG images through read_data), with errors that name the file and say how to get
-- the data.
local core = require 'lat.core'
local ffi, C, wrap, raise = core.ffi, core.C, core.wrap, core.raise
local lat = require 'lat.tensor'

local M = {}

M.HINT = 'run datasets/fetch.sh to fetch and check the data sets (LAT_DATA sets their folder)'

-- <repo>/data when lat runs from its source tree (this file is <repo>/lua/lat/data/files.lua)
local here = debug.getinfo(1, 'S').source:match('^@(.*)$') or ''
local repo = here:match('^(.*)/lua/lat/data/[^/]*$')

-- The data folder: opts.root, else $LAT_DATA, else <repo>/data.
function M.root(opts)
  local r = opts and opts.root or os.getenv('LAT_DATA')
  if r and r ~= '' then return r end
  return (repo or '.') .. '/data'
end

function M.exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- error for a data file or folder that is not there
function M.missing(what, path)
  raise(('%s: %s is missing; %s'):format(what, path, M.HINT))
end

-- the whole file as a string, or an error naming it; held to lat.set_read_limit like the C readers
function M.read_file(path, what)
  local f, err = io.open(path, 'rb')
  if not f then
    if what then M.missing(what, path) end
    raise(('cannot open %s: %s'):format(path, tostring(err)))
  end
  local size, limit = f:seek('end'), tonumber(C.lat_read_limit())
  if size and size > limit then
    f:close()
    raise(('%s: %d bytes, more than the read limit of %d bytes (lat.set_read_limit raises it)'):format(path, size, limit))
  end
  f:seek('set')
  local s = f:read('*a')
  f:close()
  return s
end

ffi.cdef [[
typedef struct lat_dir_stream lat_dir_stream;
struct lat_dirent { uint64_t d_ino; int64_t d_off; unsigned short d_reclen; unsigned char d_type; char d_name[256]; };
lat_dir_stream *opendir(const char *name);
struct lat_dirent *readdir(lat_dir_stream *d);
int closedir(lat_dir_stream *d);
]]
assert(ffi.os == 'Linux' and ffi.abi('64bit'), 'lat.data lists folders with the 64-bit Linux dirent layout')

-- The sorted names in a folder (without . and ..), or nil if it cannot be opened.
function M.list_dir(path)
  local d = ffi.C.opendir(path)
  if d == nil then return nil end
  local names = {}
  while true do
    local e = ffi.C.readdir(d)
    if e == nil then break end
    local name = ffi.string(e.d_name)
    if name ~= '.' and name ~= '..' then names[#names + 1] = name end
  end
  ffi.C.closedir(d)
  table.sort(names)
  return names
end

-- Whether a path is a folder.
function M.is_dir(path)
  local d = ffi.C.opendir(path)
  if d == nil then return false end
  ffi.C.closedir(d)
  return true
end

-- IDX file (gzip'd or not) to a uint8 tensor with the header's shape
function M.read_idx(path) return wrap(C.lat_read_idx(path)) end

-- A data set's file through a C reader (C.lat_read_idx, C.lat_read_png): a missing or corrupt
-- file raises an error naming the data set, the file, what is wrong and how to fetch it again.
function M.read_data(what, path, reader)
  if not M.exists(path) then M.missing(what, path) end
  local p = reader(path)
  if p == nil then raise(('%s: %s; %s'):format(what, core.c_error(), M.HINT)) end
  return wrap(p)
end

return M
