-- experiment/fs.lua (private): the file-system calls the experiment scaffold needs beyond
-- lat.core.sys: exclusive creation (link), a folder's names, the process id, host name, working
-- directory and executable, whole-file reads and atomic writes, and shell quoting. Declared under private names
-- (__asm__ redirection) so that scripts may declare the same functions themselves.
local ffi = require 'ffi'
local sys = require 'lat.core.sys'
local C = ffi.C

ffi.cdef [[
typedef struct lat_exp_dir lat_exp_dir;
struct lat_exp_dirent { uint64_t d_ino; int64_t d_off; unsigned short d_reclen; unsigned char d_type; char d_name[256]; };
lat_exp_dir *lat_exp_opendir(const char *path) __asm__("opendir");
struct lat_exp_dirent *lat_exp_readdir(lat_exp_dir *d) __asm__("readdir");
int lat_exp_closedir(lat_exp_dir *d) __asm__("closedir");
int lat_exp_link(const char *from, const char *to) __asm__("link");
int lat_exp_unlink(const char *path) __asm__("unlink");
int lat_exp_mkdir(const char *path, unsigned int mode) __asm__("mkdir");
int lat_exp_getpid(void) __asm__("getpid");
int lat_exp_gethostname(char *name, size_t len) __asm__("gethostname");
char *lat_exp_getcwd(char *buf, size_t size) __asm__("getcwd");
long lat_exp_readlink(const char *path, char *buf, size_t size) __asm__("readlink");
const char *lat_exp_strerror(int errnum) __asm__("strerror");
]]

local M = { mkdir_p = sys.mkdir_p, now = sys.now }
local EEXIST = 17

local function why() return ffi.string(C.lat_exp_strerror(ffi.errno())) end

function M.pid() return C.lat_exp_getpid() end

function M.host()
  local buf = ffi.new('char[256]')
  if C.lat_exp_gethostname(buf, 255) ~= 0 then return 'unknown' end
  return ffi.string(buf)
end

function M.cwd()
  local buf = ffi.new('char[4096]')
  if C.lat_exp_getcwd(buf, 4096) == nil then return '.' end
  return ffi.string(buf)
end

-- path made absolute against the working directory
function M.absolute(path)
  if path:sub(1, 1) == '/' then return path end
  return M.cwd() .. '/' .. path:gsub('^%./', '')
end

-- the running executable's absolute path (nil where /proc is missing)
function M.executable()
  local buf = ffi.new('char[4096]')
  local n = C.lat_exp_readlink('/proc/self/exe', buf, 4095)
  if n <= 0 then return nil end
  return ffi.string(buf, n)
end

-- mkdir(path) -> true, or false when it exists already; other failures raise
function M.mkdir(path)
  if C.lat_exp_mkdir(path, tonumber('755', 8)) == 0 then return true end
  if ffi.errno() == EEXIST then return false end
  error(("mkdir '%s': %s"):format(path, why()), 0)
end

-- the names in a folder (without . and ..), or nil and a message
function M.list(path)
  local d = C.lat_exp_opendir(path)
  if d == nil then return nil, why() end
  local names = {}
  while true do
    local e = C.lat_exp_readdir(d)
    if e == nil then break end
    local name = ffi.string(e.d_name)
    if name ~= '.' and name ~= '..' then names[#names + 1] = name end
  end
  C.lat_exp_closedir(d)
  table.sort(names)
  return names
end

function M.exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

-- the whole file, or nil when it cannot be opened
function M.read(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

local function write_temporary(path, text)
  local tmp = ('%s.tmp.%d'):format(path, M.pid())
  local f, err = io.open(tmp, 'wb')
  if not f then error(('cannot write %s'):format(err), 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then os.remove(tmp); error(('cannot write %s: %s'):format(tmp, tostring(werr)), 0) end
  return tmp
end

-- write_atomic(path, text): readers see the old file or the whole new one, never a part, even
-- when the writer is killed (a temporary file renamed into place)
function M.write_atomic(path, text)
  local tmp = write_temporary(path, text)
  local ok, err = os.rename(tmp, path)
  if not ok then os.remove(tmp); error(('cannot rename %s into place: %s'):format(tmp, tostring(err)), 0) end
end

-- create_exclusive(path, text) -> true, or false when path exists already (whoever made it);
-- the file appears whole, as with write_atomic
function M.create_exclusive(path, text)
  local tmp = write_temporary(path, text)
  local rc = C.lat_exp_link(tmp, path)
  local errno = ffi.errno()
  C.lat_exp_unlink(tmp)
  if rc == 0 then return true end
  if errno == EEXIST then return false end
  error(("cannot create '%s': %s"):format(path, ffi.string(C.lat_exp_strerror(errno))), 0)
end

-- a word as a shell reads it back: as it is when plain, else in single quotes
function M.shell_word(s)
  s = tostring(s)
  if s:match('^[%w%-_./=:,+@%%]+$') then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

return M
