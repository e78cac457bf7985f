-- email.lua: a raw e-mail message to plain text in UTF-8: its Subject line, then the text of its
-- body, with MIME parts walked, quoted-printable and base64 decoded, each part converted from its
-- declared charset (lat.data.charset) and HTML tags stripped.
local bit = require 'bit'
local charset = require 'lat.data.charset'

local E = {}

-- ---------------------------------------------------------------- decoding

local B64 = {}
do
  local alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  for i = 1, 64 do B64[alphabet:byte(i)] = i - 1 end
end

function E.base64(s)
  s = s:gsub('[^%w%+/]', '')
  local out, n = {}, #s - #s % 4
  local char, byte, bor, lshift, rshift, band = string.char, string.byte, bit.bor, bit.lshift, bit.rshift, bit.band
  for i = 1, n, 4 do
    local a, b, c, d = byte(s, i, i + 3)
    local v = bor(lshift(B64[a], 18), lshift(B64[b], 12), lshift(B64[c], 6), B64[d])
    out[#out + 1] = char(rshift(v, 16), band(rshift(v, 8), 255), band(v, 255))
  end
  local rest = #s - n
  if rest >= 2 then
    local a, b, c = byte(s, n + 1, n + 3)
    local v = bor(lshift(B64[a], 18), lshift(B64[b], 12), c and lshift(B64[c], 6) or 0)
    out[#out + 1] = char(rshift(v, 16))
    if rest == 3 then out[#out + 1] = char(band(rshift(v, 8), 255)) end
  end
  return table.concat(out)
end

local function hexchar(h) return string.char(tonumber(h, 16)) end

function E.quoted_printable(s)
  return (s:gsub('=\r?\n', ''):gsub('=(%x%x)', hexchar))
end

-- a header in UTF-8: its =?charset?B?...?= and =?charset?Q?...?= words decoded from their
-- charsets, the bytes around them read as undeclared
function E.decode_words(s)
  s = s:gsub('(%?=)%s+(=%?)', '%1%2') -- whitespace between encoded words is not text
  local out, pos = {}, 1
  while true do
    local i, j, cs, enc, text = s:find('=%?([^?]*)%?([bBqQ])%?([^?]*)%?=', pos)
    out[#out + 1] = charset.to_utf8(s:sub(pos, (i or 0) - 1))
    if not i then break end
    local bytes = (enc == 'b' or enc == 'B') and E.base64(text) or text:gsub('_', ' '):gsub('=(%x%x)', hexchar)
    out[#out + 1] = charset.to_utf8(bytes, (cs:gsub('%*.*$', ''))) -- RFC 2231: charset*language
    pos = j + 1
  end
  return table.concat(out)
end

-- ---------------------------------------------------------------- HTML

local ENTITIES = { nbsp = ' ', amp = '&', lt = '<', gt = '>', quot = '"', apos = "'", copy = '(c)', reg = '(r)' }

local function utf8_char(c)
  if c < 0x80 then return string.char(c) end
  if c < 0x800 then return string.char(0xC0 + bit.rshift(c, 6), 0x80 + c % 64) end
  if c < 0x10000 then return string.char(0xE0 + bit.rshift(c, 12), 0x80 + bit.rshift(c, 6) % 64, 0x80 + c % 64) end
  if c < 0x110000 then
    return string.char(0xF0 + bit.rshift(c, 18), 0x80 + bit.rshift(c, 12) % 64, 0x80 + bit.rshift(c, 6) % 64, 0x80 + c % 64)
  end
  return ''
end

-- case-insensitive Lua pattern for a word: 'br' -> '[bB][rR]'
local function ci(word) return (word:gsub('%a', function(c) return '[' .. c:lower() .. c:upper() .. ']' end)) end
local SCRIPT, STYLE, HEAD = ci('script'), ci('style'), ci('head')
local BREAKS = { ci('br'), ci('p'), ci('div'), ci('tr'), ci('li'), '[hH]%d', ci('table') }

function E.strip_html(s)
  s = s:gsub('<!%-%-.-%-%->', ' ')
  for _, tag in ipairs({ SCRIPT, STYLE, HEAD }) do s = s:gsub('<' .. tag .. '[^>]*>.-</' .. tag .. '%s*>', ' ') end
  for _, tag in ipairs(BREAKS) do
    s = s:gsub('</?' .. tag .. '>', '\n'):gsub('</?' .. tag .. '[%s/][^>]*>', '\n')
  end
  s = s:gsub('<[^>]*>', ' ')
  s = s:gsub('&#[xX](%x+);', function(h) return utf8_char(tonumber(h, 16)) end)
  s = s:gsub('&#(%d+);', function(d) return utf8_char(tonumber(d)) end)
  s = s:gsub('&(%a+);', function(name) return ENTITIES[name:lower()] end)
  return s
end

local function looks_like_html(s)
  local head = s:sub(1, 4096):lower()
  return head:find('<html', 1, true) or head:find('<body', 1, true) or head:find('<br', 1, true)
    or head:find('<p>', 1, true) or head:find('<font', 1, true) or head:find('<table', 1, true)
end

-- ---------------------------------------------------------------- MIME

-- header block and body, split at the first empty line
local function split_message(msg)
  local i, j = msg:find('\r?\n\r?\n')
  if not i then return msg, '' end
  return msg:sub(1, i - 1), msg:sub(j + 1)
end

-- lower-case name -> value of the first occurrence, continuation lines unfolded
local function parse_headers(head)
  head = head:gsub('\r\n', '\n'):gsub('\n[ \t]+', ' ')
  local h = {}
  for line in (head .. '\n'):gmatch('([^\n]*)\n') do
    local k, v = line:match('^([%w%-_]+):%s*(.*)$')
    if k then
      k = k:lower()
      if h[k] == nil then h[k] = v end
    end
  end
  return h
end

local function content_type(h)
  local ct = h['content-type'] or 'text/plain'
  local typ = (ct:match('^%s*([^;%s]+)') or 'text/plain'):lower()
  local boundary = ct:match('[bB][oO][uU][nN][dD][aA][rR][yY]%s*=%s*"([^"]+)"')
    or ct:match('[bB][oO][uU][nN][dD][aA][rR][yY]%s*=%s*([^;%s]+)')
  return typ, boundary
end

-- the body's text in UTF-8: transfer encoding undone, then converted from the declared charset
-- (for HTML also one declared in a <meta> tag)
local function decode_body(body, h, html)
  local cte = (h['content-transfer-encoding'] or ''):lower()
  if cte:find('base64', 1, true) then body = E.base64(body)
  elseif cte:find('quoted', 1, true) then body = E.quoted_printable(body) end
  local cs = charset.charset_of(h['content-type'])
  if not cs and (html or looks_like_html(body)) then cs = charset.charset_of(body:sub(1, 4096):match('<[mM][eE][tT][aA][^>]*>')) end
  return charset.to_utf8(body, cs)
end

-- the parts between the boundary lines of a multipart body
local function split_parts(body, boundary)
  local delim = '--' .. boundary
  local parts = {}
  local i = body:find(delim, 1, true)
  while i do
    local after = i + #delim
    if body:sub(after, after + 1) == '--' then break end
    local nl = body:find('\n', after, true)
    if not nl then break end
    local j = body:find('\n' .. delim, nl, true)
    parts[#parts + 1] = body:sub(nl + 1, j and j - 1 or #body)
    i = j and j + 1
  end
  return parts
end

local function walk(h, body, out, depth)
  local typ, boundary = content_type(h)
  if typ:find('^multipart/') and boundary and depth < 8 then
    local parts = split_parts(body, boundary)
    local alternative = typ == 'multipart/alternative'
    local chosen = nil
    if alternative then -- the plain-text version when there is one
      for _, p in ipairs(parts) do
        local ph = parse_headers((split_message(p)))
        if content_type(ph) == 'text/plain' then chosen = p break end
      end
    end
    for _, p in ipairs(chosen and { chosen } or parts) do
      local ph, pb = split_message(p)
      walk(parse_headers(ph), pb, out, depth + 1)
      if alternative and #out > 0 then break end
    end
  elseif typ == 'message/rfc822' and depth < 8 then
    local ph, pb = split_message(body)
    walk(parse_headers(ph), pb, out, depth + 1)
  elseif typ == 'text/html' then
    out[#out + 1] = E.strip_html(decode_body(body, h, true))
  elseif typ:find('^text/') or typ == 'text' then
    local text = decode_body(body, h)
    if looks_like_html(text) then text = E.strip_html(text) end
    out[#out + 1] = text
  end -- attachments, images and the rest are dropped
end

-- tidy white space: CRLF to LF, runs of blanks to one space, at most one empty line in a row
local function tidy(s)
  s = s:gsub('\r\n?', '\n'):gsub('[ \t\f\v]+', ' '):gsub(' ?\n ?', '\n'):gsub('\n\n\n+', '\n\n')
  return (s:gsub('^%s+', ''):gsub('%s+$', ''))
end

-- clean(msg): 'Subject: ...\n\n' followed by the message's text
function E.clean(msg)
  local head, body = split_message(msg)
  local h = parse_headers(head)
  local out = {}
  walk(h, body, out, 0)
  local subject = tidy(E.decode_words(h.subject or '')):gsub('\n', ' ')
  return 'Subject: ' .. subject .. '\n\n' .. tidy(table.concat(out, '\n\n'))
end

return E
