-- charset.lua: text in one charset. to_utf8(bytes, charset) converts from a declared charset
-- to UTF-8 with glibc's iconv; bytes the charset does not define become U+FFFD. Without a
-- usable declaration, valid UTF-8 stays as it is and anything else is read as Windows-1252
-- (what mail declared as ISO-8859-1 or US-ASCII but written on Windows turns out to be).
local ffi = require 'ffi'

ffi.cdef [[
void *lat_iconv_open(const char *tocode, const char *fromcode) __asm__("iconv_open");
size_t lat_iconv(void *cd, char **inbuf, size_t *inbytesleft, char **outbuf, size_t *outbytesleft) __asm__("iconv");
int lat_iconv_close(void *cd) __asm__("iconv_close");
]]
local C = ffi.C
local EILSEQ, EINVAL, E2BIG = 84, 22, 7
local FAILED, NO_CONVERSION = ffi.cast('void *', -1), ffi.cast('size_t', 0) - 1 -- (size_t)-1
local REPLACEMENT = '\239\191\189' -- U+FFFD

local M = {}

-- names that mean Windows-1252 in practice (as in the WHATWG encoding standard)
local AS_1252 = { ['iso-8859-1'] = true, latin1 = true, ['iso8859-1'] = true, ['us-ascii'] = true,
                  ascii = true, ['windows-1252'] = true, cp1252 = true, ['iso_8859-1'] = true }

local converters = {} -- charset -> iconv descriptor, or false when iconv does not know it
local function converter(charset)
  if converters[charset] == nil then
    local cd = C.lat_iconv_open('UTF-8', charset)
    -- closed when collected (at the latest when the Lua state closes), so nothing outlives it
    converters[charset] = cd ~= FAILED and ffi.gc(cd, C.lat_iconv_close) or false
  end
  return converters[charset]
end

local inbuf, inleft = ffi.new('char *[1]'), ffi.new('size_t[1]')
local outbuf, outleft = ffi.new('char *[1]'), ffi.new('size_t[1]')

-- s through descriptor cd, each undecodable byte (or truncated sequence) as U+FFFD
local function convert(cd, s)
  C.lat_iconv(cd, nil, nil, nil, nil) -- back to the initial shift state (ISO-2022-JP)
  local src = ffi.new('char[?]', #s + 1, s)
  local cap = #s * 3 + 16
  local out = ffi.new('char[?]', cap)
  local parts = {}
  inbuf[0], inleft[0] = src, #s
  outbuf[0], outleft[0] = out, cap
  while true do
    local rc = C.lat_iconv(cd, inbuf, inleft, outbuf, outleft)
    local err = ffi.errno() -- read at once: the next allocation may change it
    if rc ~= NO_CONVERSION then
      C.lat_iconv(cd, nil, nil, outbuf, outleft) -- the closing shift sequence, if any
      break
    end
    parts[#parts + 1] = ffi.string(out, cap - outleft[0])
    outbuf[0], outleft[0] = out, cap
    if err == EILSEQ or err == EINVAL then
      parts[#parts + 1] = REPLACEMENT
      inbuf[0], inleft[0] = inbuf[0] + 1, inleft[0] - 1
      if inleft[0] == 0 then break end
    elseif err ~= E2BIG then
      error(('charset: iconv failed (errno %d)'):format(tonumber(err)))
    end
  end
  parts[#parts + 1] = ffi.string(out, cap - outleft[0])
  return table.concat(parts)
end

-- valid_utf8(s): true when s is well-formed UTF-8 (no overlong forms, no surrogates)
function M.valid_utf8(s)
  if not s:find('[\128-\255]') then return true end
  return convert(converter('UTF-8'), s) == s
end

-- charset_of(content_type): the lower-case charset parameter of a Content-Type value, or nil
function M.charset_of(content_type)
  local cs = content_type and content_type:match('[cC][hH][aA][rR][sS][eE][tT]%s*=%s*"?([^";%s]+)')
  return cs and cs:lower()
end

-- to_utf8(s[, charset]): s as UTF-8
function M.to_utf8(s, charset)
  if not s:find('[\128-\255\27]') then return s end -- ASCII (ESC: ISO-2022 shifts) reads the same
  charset = charset and charset:lower()
  if charset and not AS_1252[charset] and charset ~= 'utf-8' and charset ~= 'utf8' then
    local cd = converter(charset)
    if cd then return convert(cd, s) end
  end
  if not s:find('[\128-\255]') then return s end
  local utf8 = convert(converter('UTF-8'), s)
  if utf8 == s or charset == 'utf-8' or charset == 'utf8' then return utf8 end
  return convert(converter('WINDOWS-1252'), s)
end

return M
