-- core/sys.lua: the POSIX calls the Lua library needs, in one place: a monotonic clock, isatty,
-- mkdir (-p), a folder's names, hard and symbolic links, the process id, host name, working
-- directory and executable. Declared under private names (__asm__ redirection) so that scripts
-- may declare the same functions themselves.
local ffi = require 'ffi'
local C = ffi.C

ffi.cdef [[
typedef struct lat_timespec { long tv_sec; long tv_nsec; } lat_timespec;
typedef struct lat_sys_dir lat_sys_dir;
struct lat_sys_dirent { uint64_t d_ino; int64_t d_off; unsigned short d_reclen; unsigned char d_type; char d_name[256]; };
int lat_sys_clock_gettime(int clk, lat_timespec *ts) __asm__("clock_gettime");
int lat_sys_isatty(int fd) __asm__("isatty");
int lat_sys_mkdir(const char *path, unsigned int mode) __asm__("mkdir");
const char *lat_sys_strerror(int errnum) __asm__("strerror");
lat_sys_dir *lat_sys_opendir(const char *path) __asm__("opendir");
struct lat_sys_dirent *lat_sys_readdir(lat_sys_dir *d) __asm__("readdir");
int lat_sys_closedir(lat_sys_dir *d) __asm__("closedir");
int lat_sys_link(const char *from, const char *to) __asm__("link");
int lat_sys_symlink(const char *target, const char *path) __asm__("symlink");
int lat_sys_unlink(const char *path) __asm__("unlink");
int lat_sys_getpid(void) __asm__("getpid");
int lat_sys_gethostname(char *name, size_t len) __asm__("gethostname");
char *lat_sys_getcwd(char *buf, size_t size) __asm__("getcwd");
long lat_sys_readlink(const char *path, char *buf, size_t size) __asm__("readlink");
]]

local M = {}
local ts = ffi.new('lat_timespec')
local CLOCK_MONOTONIC, EEXIST = 1, 17
local MODE = tonumber('755', 8)

-- the message of an errno value (default: the last call's)
function M.strerror(errno) return ffi.string(C.lat_sys_strerror(errno or ffi.errno())) end

-- seconds on a monotonic clock (for rates and durations)
function M.now()
  C.lat_sys_clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- whether file descriptor fd (2 = stderr) is a terminal
function M.isatty(fd) return C.lat_sys_isatty(fd) == 1 end

-- mkdir(path) -> true, or false when it exists already; other failures raise
function M.mkdir(path)
  if C.lat_sys_mkdir(path, MODE) == 0 then return true end
  if ffi.errno() == EEXIST then return false end
  error(("mkdir '%s': %s"):format(path, M.strerror()), 0)
end

-- creates path and its missing parents; returns true, or nil and a message
function M.mkdir_p(path)
  local sofar = path:sub(1, 1) == '/' and '/' or ''
  for part in path:gmatch('[^/]+') do
    sofar = sofar .. part
    if C.lat_sys_mkdir(sofar, MODE) ~= 0 then
      local e = ffi.errno()
      if e ~= EEXIST then return nil, ("mkdir '%s': %s"):format(sofar, M.strerror(e)) end
    end
    sofar = sofar .. '/'
  end
  return true
end

-- the names in a folder (without . and ..), sorted, or nil and a message
function M.list(path)
  local d = C.lat_sys_opendir(path)
  if d == nil then return nil, M.strerror() end
  local names = {}
  while true do
    local e = C.lat_sys_readdir(d)
    if e == nil then break end
    local name = ffi.string(e.d_name)
    if name ~= '.' and name ~= '..' then names[#names + 1] = name end
  end
  C.lat_sys_closedir(d)
  table.sort(names)
  return names
end

-- link(from, to) / symlink(target, path) -> true, or false and the errno (EEXIST: path is taken)
function M.link(from, to)
  if C.lat_sys_link(from, to) == 0 then return true end
  return false, ffi.errno()
end
function M.symlink(target, path)
  if C.lat_sys_symlink(target, path) == 0 then return true end
  return false, ffi.errno()
end
M.EEXIST = EEXIST

function M.unlink(path) return C.lat_sys_unlink(path) == 0 end

function M.pid() return C.lat_sys_getpid() end

function M.host()
  local buf = ffi.new('char[256]')
  if C.lat_sys_gethostname(buf, 255) ~= 0 then return 'unknown' end
  return ffi.string(buf)
end

function M.cwd()
  local buf = ffi.new('char[4096]')
  if C.lat_sys_getcwd(buf, 4096) == nil then return '.' end
  return ffi.string(buf)
end

-- the running executable's absolute path (nil where /proc is missing)
function M.executable()
  local buf = ffi.new('char[4096]')
  local n = C.lat_sys_readlink('/proc/self/exe', buf, 4095)
  if n <= 0 then return nil end
  return ffi.string(buf, n)
end

return M
