-- core/init.lua: loads liblat through the FFI and turns C failures into Lua errors at the caller.
local ffi = require 'ffi'

ffi.cdef(require 'lat.core.cdef')
-- A Lua tensor is this one-pointer struct, not the pointer itself: LuaJIT gives pointers
-- built-in arithmetic (p + 1 is the next struct), which would shadow the operator metamethods.
-- Its finaliser drops the reference it holds.
ffi.cdef('typedef struct lat_ref { lat_tensor *ptr; } lat_ref;')

local function load_library()
  local tried = {}
  for _, name in ipairs({ os.getenv('LAT_LIBRARY'), 'lat' }) do
    local ok, lib = pcall(ffi.load, name)
    if ok then return lib end
    tried[#tried + 1] = tostring(lib)
  end
  error('lat: cannot load liblat (set LAT_LIBRARY to the path of liblat.so): '
    .. table.concat(tried, '; '), 0)
end

local C = load_library()
local M = { C = C, ffi = ffi }

-- The stack level of the first caller outside the lat library, so that an error names the
-- user's line rather than ours. The library is the folder above this file's (lua/lat/).
local lib_dir = debug.getinfo(1, 'S').source:match('^@(.*/)[^/]+/[^/]+$') or ''
local function user_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, 'S')
    if not info then return 1 end
    local src = info.source or ''
    if src:sub(1, 1) ~= '@' or src:sub(2, #lib_dir + 1) ~= lib_dir then return level - 1 end
    level = level + 1
  end
end

-- the kinds of number that argument checks ask for
function M.finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end
function M.natural(v) return M.finite(v) and v >= 0 and v == math.floor(v) end -- an integer >= 0
function M.positive(v) return M.finite(v) and v > 0 end

-- error(msg) raised at the user's call site
function M.raise(msg)
  error(msg, user_level())
end

function M.c_error()
  return ffi.string(C.lat_error())
end

-- Garbage tensors hold C memory that LuaJIT's collector cannot see, so collect when the live
-- bytes exceed what stayed live after the last collection by a margin. A small margin keeps the
-- buffers that steps reuse few and warm in cache; a full collection of a recipe's small Lua
-- heap costs well under a millisecond.
local MIN_MARGIN = 32 * 2 ^ 20
local threshold = MIN_MARGIN
local function relieve_pressure()
  if tonumber(C.lat_live_bytes()) > threshold then
    collectgarbage()
    local live = tonumber(C.lat_live_bytes())
    threshold = live + math.max(MIN_MARGIN, live / 4)
  end
end
M.relieve_pressure = relieve_pressure

local Ref = ffi.typeof('lat_ref')
M.Ref = Ref
-- Own a tensor pointer returned by C (a new reference), or raise the C error at the user's line.
function M.wrap(p)
  if p == nil then error(ffi.string(C.lat_error()), user_level()) end
  relieve_pressure()
  return Ref(p)
end

-- Check an int status from C.
function M.check(rc)
  if rc ~= 0 then error(ffi.string(C.lat_error()), user_level()) end
end

return M
