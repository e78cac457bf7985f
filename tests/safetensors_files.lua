-- safetensors_files.lua: safetensors files made by hand, byte by byte, for the checkpoint tests
-- (test_checkpoint.lua, test_checkpoint_dtypes.lua), and the check that lat refuses one.
local H = require 'harness'
local lat = require 'lat'

local M = {}

-- n as 8 little-endian bytes (the header length that opens a safetensors file)
function M.le64(n)
  local s = {}
  for k = 1, 8 do
    s[k] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(s)
end

-- writes a file made of a header (JSON text) and data bytes; returns its path
function M.raw(path, header, data)
  return H.write(path, M.le64(#header) .. header .. (data or ''))
end

-- one tensor's description in a header
function M.entry(name, dtype, shape, b, e)
  return ('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'):format(name, dtype, table.concat(shape, ','), b, e)
end

-- lat.load(path) must fail with a message naming path and holding each of the strings
function M.rejects(path, ...)
  return H.raises(function() lat.load(path) end, path, ...)
end

return M
