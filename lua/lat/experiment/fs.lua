-- experiment/fs.lua (private): the file handling the experiment scaffold needs on top of the
-- POSIX calls of lat.core.sys: whole-file reads, atomic writes, exclusive creation, absolute
-- paths and shell quoting.
local sys = require 'lat.core.sys'

local M = {}

-- path made absolute against the working directory
function M.absolute(path)
  if path:sub(1, 1) == '/' then return path end
  return sys.cwd() .. '/' .. path:gsub('^%./', '')
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
  local tmp = ('%s.tmp.%d'):format(path, sys.pid())
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
  local ok, errno = sys.link(tmp, path)
  sys.unlink(tmp)
  if ok then return true end
  if errno == sys.EEXIST then return false end
  error(("cannot create '%s': %s"):format(path, sys.strerror(errno)), 0)
end

-- a word as a shell reads it back: as it is when plain, else in single quotes
function M.shell_word(s)
  s = tostring(s)
  if s:match('^[%w%-_./=:,+@%%]+$') then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

return M
