-- lua_parsers.lua: what fuzz_lua_parsers.c feeds each input to: every parser in lat.data that
-- reads bytes from a file or a saved string (e-mail messages, the SpamAssassin file names, the
-- byte and word tokenizers, a saved word tokenizer). Each entry is called with the input under
-- pcall. Raising a string error is a fine answer to bad bytes; a broken round trip raises a
-- table {finding = ...}, which the C side reports as a finding like any non-string error.
require 'lat' -- as a user would: it gives tensors their finaliser (init.lua)
local email = require 'lat.data.email'
local text = require 'lat.data.text'
local bytes = require 'lat.data.bytes'
local words = require 'lat.data.words'

local function expect(cond, what)
  if not cond then error({ finding = what }) end
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

return {
  { 'email.clean', function(s) expect(type(email.clean(s)) == 'string', 'clean: not a string') end },
  { 'email.base64', email.base64 },
  { 'email.quoted_printable', email.quoted_printable },
  { 'email.decode_words', email.decode_words },
  { 'email.strip_html', email.strip_html },
  { 'text.spam_split_of', text.spam_split_of },
  { 'bytes', function(s)
    expect(bytes.decode(bytes.encode(s, { bos = true, eos = true })) == s, 'bytes: encode/decode round trip')
    bytes.batch({ s, s:sub(1, math.floor(#s / 2)) }, 16)
    local ds = bytes.lm_dataset(s, 4, { stride = 3 })
    if ds:len() > 0 then ds:get(ds:len()) end
  end },
  { 'words', function(s)
    local tok = words.train({ s, s:upper() }, { vocab = 64, buckets = 16, min_count = 1 })
    local ids = tok:encode(s)
    tok:decode(ids)
    tok:batch({ s }, 8)
    local again = words.from_string(tok:to_string())
    expect(same(again:encode(s), ids), 'words: to_string/from_string changed the ids')
  end },
  { 'words.from_string', function(s) words.from_string(s):encode(s) end },
}
