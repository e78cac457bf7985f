-- core/sys.lua: the few POSIX calls the Lua library needs: a monotonic clock, isatty and mkdir -p.
-- Declared under private names (__asm__ redirection) so that scripts may declare the same
-- functions themselves.
local ffi = require 'ffi'
local C = ffi.C

ffi.cdef [[
typedef struct lat_timespec { long tv_sec; long tv_nsec; } lat_timespec;
int lat_sys_clock_gettime(int clk, lat_timespec *ts) __asm__("clock_gettime");
int lat_sys_isatty(int fd) __asm__("isatty");
int lat_sys_mkdir(const char *path, unsigned int mode) __asm__("mkdir");
const char *lat_sys_strerror(int errnum) __asm__("strerror");
]]

local M = {}
local ts = ffi.new('lat_timespec')
local CLOCK_MONOTONIC, EEXIST = 1, 17

-- seconds on a monotonic clock (for rates and durations)
function M.now()
  C.lat_sys_clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- whether file descriptor fd (2 = stderr) is a terminal
function M.isatty(fd) return C.lat_sys_isatty(fd) == 1 end

-- creates path and its missing parents; returns true, or nil and a message
function M.mkdir_p(path)
  local sofar = path:sub(1, 1) == '/' and '/' or ''
  for part in path:gmatch('[^/]+') do
    sofar = sofar .. part
    if C.lat_sys_mkdir(sofar, tonumber('755', 8)) ~= 0 then
      local e = ffi.errno()
      if e ~= EEXIST then return nil, ("mkdir '%s': %s"):format(sofar, ffi.string(C.lat_sys_strerror(e))) end
    end
    sofar = sofar .. '/'
  end
  return true
end

return M
