-- words.lua: a word-level tokenizer trained on a corpus: lower-cased words (letters, digits and
-- any non-ASCII bytes) and single punctuation marks. The most frequent words get their own ids;
-- every other word is hashed into one of a fixed number of buckets, so nothing maps to a single
-- unknown id and rare trigger words stay distinguishable.
--   local tok = lat.data.words.train(texts, {vocab = 16384, buckets = 2048})
--   local ids, mask = tok:batch(list_of_strings, 256)     -- int32 [B, 256], PAD = 0
local lat = require 'lat.tensor'
local core = require 'lat.core'
local raise = core.raise

local W = {}
local Tok = {}
Tok.__index = Tok
W.PAD, W.BOS = 0, 1
local FIRST = 2 -- first word id

-- split into words and punctuation in order
local function tokens(text)
  local out = {}
  for word, punct in text:lower():gmatch('([%w\128-\255]*)([^%w%s\128-\255]?)') do
    if word ~= '' then out[#out + 1] = word end
    if punct ~= '' then out[#out + 1] = punct end
  end
  return out
end
W.split = tokens

-- FNV-1a (32 bits), for the buckets; the multiply by 16777619 = 2^24 + 403 is split so that every
-- intermediate stays an exact integer in a double
local bit = require 'bit'
local function hash(s)
  local h = 2166136261
  for i = 1, #s do
    h = bit.bxor(h, s:byte(i)) % 4294967296
    h = (bit.lshift(h, 24) + h * 403) % 4294967296
  end
  return h
end
W.hash = hash

local function build(words, buckets)
  local t = setmetatable({ words = words, buckets = buckets, index = {} }, Tok)
  for i, w in ipairs(words) do t.index[w] = FIRST + i - 1 end
  t.vocab_size = FIRST + #words + buckets
  t.PAD, t.BOS = W.PAD, W.BOS
  return t
end

-- train(texts, {vocab = 16384, buckets = 2048, min_count = 2}): the vocab most frequent tokens
-- (words and punctuation) of the texts, ties broken alphabetically so training is deterministic
function W.train(texts, opts)
  opts = opts or {}
  local vocab, buckets, min_count = opts.vocab or 16384, opts.buckets or 2048, opts.min_count or 2
  local counts = {}
  for _, text in ipairs(texts) do
    for _, w in ipairs(tokens(text)) do counts[w] = (counts[w] or 0) + 1 end
  end
  local list = {}
  for w, c in pairs(counts) do if c >= min_count then list[#list + 1] = w end end
  table.sort(list, function(a, b)
    if counts[a] ~= counts[b] then return counts[a] > counts[b] end
    return a < b
  end)
  for i = #list, vocab + 1, -1 do list[i] = nil end
  return build(list, buckets)
end

-- the id of one token (a word or a punctuation mark)
function Tok:id(w)
  return self.index[w] or (FIRST + #self.words + hash(w) % self.buckets)
end

-- encode(text) -> Lua list of ids
function Tok:encode(text)
  local ids = {}
  for i, w in ipairs(tokens(text)) do ids[i] = self:id(w) end
  return ids
end

-- decode(ids) -> text (known words; hashed ones as <hash:N>)
function Tok:decode(ids)
  local out = {}
  local get = type(ids) == 'table' and function(i) return ids[i + 1] end or function(i) return ids.i[i] end
  local n = type(ids) == 'table' and #ids or ids:numel()
  for i = 0, n - 1 do
    local id = get(i)
    if id >= FIRST and id < FIRST + #self.words then out[#out + 1] = self.words[id - FIRST + 1]
    elseif id >= FIRST + #self.words then out[#out + 1] = ('<hash:%d>'):format(id - FIRST - #self.words) end
  end
  return table.concat(out, ' ')
end

-- batch(texts, len) -> ids int32 [B, len] (the first len tokens, PAD after), mask float32 [B, len]
function Tok:batch(texts, len)
  local B = #texts
  local ids, mask = lat.zeros({ B, len }, 'int32'), lat.zeros(B, len)
  for b = 1, B do
    local t = self:encode(texts[b])
    for j = 1, math.min(len, #t) do
      ids.i[(b - 1) * len + j - 1] = t[j]
      mask.f[(b - 1) * len + j - 1] = 1
    end
  end
  return ids, mask
end

-- A string that from_string turns back into the same tokenizer, for checkpoint metadata, which
-- must be UTF-8: words are raw bytes (mail is often Latin-1), so bytes >= 0x80 and '%' are
-- written as %XX.
local function escape(w) return (w:gsub('[%%\128-\255]', function(c) return ('%%%02X'):format(c:byte()) end)) end
local function unescape(w) return (w:gsub('%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end)) end

function Tok:to_string()
  local words = {}
  for i, w in ipairs(self.words) do words[i] = escape(w) end
  return require('lat.io.json').encode{ words = words, buckets = self.buckets } -- sorted keys: same bytes every run
end

function W.from_string(s)
  local ok, t = pcall(require('lat.io.json').decode, s)
  if not ok or type(t) ~= 'table' or type(t.words) ~= 'table' or type(t.buckets) ~= 'number' then
    raise('words.from_string: not a saved tokenizer')
  end
  local words = {}
  for i, w in ipairs(t.words) do words[i] = unescape(w) end
  return build(words, t.buckets)
end

return W
