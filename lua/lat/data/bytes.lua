-- bytes.lua: the byte-level tokenizer. Token ids 0..255 are the bytes of the text (any UTF-8 or
-- other encoding passes through unchanged), 256 is padding, 257 marks a document's start or end;
-- vocab_size = 258. Also fixed-length padded batches and language-model windows.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local dataset = require 'lat.data.dataset'
local ffi, raise = core.ffi, core.raise
local is_tensor = lat.is_tensor

local B = { PAD = 256, BOS = 257, EOS = 257, vocab_size = 258 }

-- encode(s[, {bos = true, eos = true}]): int32 [n] token ids
function B.encode(s, opts)
  if type(s) ~= 'string' then raise('bytes.encode: expected a string, got ' .. type(s)) end
  local bos, eos = opts and opts.bos and 1 or 0, opts and opts.eos and 1 or 0
  local n = #s
  local t = lat.empty(n + bos + eos, 'int32')
  local p, src = t.i, ffi.cast('const uint8_t *', s)
  if bos == 1 then p[0] = B.BOS end
  for k = 0, n - 1 do p[bos + k] = src[k] end
  if eos == 1 then p[bos + n] = B.EOS end
  return t
end

-- decode(ids): the bytes of a token-id tensor (any shape, read in order) or Lua list; padding and
-- start/end ids are dropped; other ids outside 0..257 are an error.
function B.decode(ids)
  local n, get
  if is_tensor(ids) then
    if ids.dtype ~= 'int32' then raise('bytes.decode: expected an int32 tensor, got ' .. ids.dtype) end
    n = ids:numel()
    local p = ids.i
    get = function(k) return p[k] end
  elseif type(ids) == 'table' then
    n = #ids
    get = function(k) return ids[k + 1] end
  else
    raise('bytes.decode: expected a tensor or a list of ids')
  end
  local buf, m = ffi.new('uint8_t[?]', math.max(n, 1)), 0
  for k = 0, n - 1 do
    local v = get(k)
    if v >= 0 and v < 256 then
      buf[m] = v
      m = m + 1
    elseif v ~= B.PAD and v ~= B.BOS then
      raise(('bytes.decode: id %s at position %d is outside 0..%d'):format(tostring(v), k + 1, B.vocab_size - 1))
    end
  end
  return ffi.string(buf, m)
end

-- batch(strings, len[, {bos = true}]): the first len bytes of each string as int32 [B, len] ids,
-- padded with PAD; also a float32 [B, len] mask (1 for real tokens, 0 for padding) and the int32
-- [B] lengths. With bos, each row starts with BOS (counted in len).
function B.batch(strings, len, opts)
  if type(strings) ~= 'table' then raise('bytes.batch: expected a list of strings') end
  if type(len) ~= 'number' or len < 1 or len ~= math.floor(len) then raise('bytes.batch: len must be a whole number >= 1') end
  local bos = opts and opts.bos and 1 or 0
  local nb = #strings
  local ids = lat.full({ nb, len }, B.PAD, 'int32')
  local mask = lat.zeros(nb, len)
  local lengths = lat.empty(nb, 'int32')
  local p, q, l = ids.i, mask.f, lengths.i
  for r = 1, nb do
    local s = strings[r]
    if type(s) ~= 'string' then raise(('bytes.batch: entry %d is a %s, not a string'):format(r, type(s))) end
    local row = (r - 1) * len
    if bos == 1 then p[row] = B.BOS end
    local m = math.min(#s, len - bos)
    local src = ffi.cast('const uint8_t *', s)
    for k = 0, m - 1 do p[row + bos + k] = src[k] end
    for k = 0, m + bos - 1 do q[row + k] = 1 end
    l[r - 1] = m + bos
  end
  return ids, mask, lengths
end

-- tokenize{len = N, field = 'text', out = 'x', bos = false}: a DataLoader transform turning the
-- batch's list of strings batch[field] into batch[out] (ids) and batch.mask.
function B.tokenize(opts)
  opts = opts or {}
  local len, field, out = opts.len or 256, opts.field or 'text', opts.out or 'x'
  return function(batch)
    local ids, mask = B.batch(batch[field], len, opts)
    batch[out], batch.mask = ids, mask
    return batch
  end
end

-- lm_dataset(text, T[, {stride = T}]): windows of a long text for next-token prediction:
-- example i has x = tokens[s .. s+T-1] and y = tokens[s+1 .. s+T] (int32 [T]) with s = 1 + (i-1)
-- * stride. text is a string, a list of strings (joined with EOS between them) or int32 ids.
function B.lm_dataset(text, T, opts)
  if type(T) ~= 'number' or T < 1 or T ~= math.floor(T) then raise('bytes.lm_dataset: T must be a whole number >= 1') end
  local stride = opts and opts.stride or T
  if type(stride) ~= 'number' or stride < 1 or stride ~= math.floor(stride) then raise('bytes.lm_dataset: stride must be a whole number >= 1') end
  local tokens
  if type(text) == 'string' then tokens = B.encode(text)
  elseif is_tensor(text) then
    if text.dtype ~= 'int32' then raise('bytes.lm_dataset: token ids must be int32') end
    tokens = text:reshape(-1)
  elseif type(text) == 'table' then
    local parts = {}
    for k, s in ipairs(text) do parts[k] = B.encode(s, { eos = k < #text }) end
    tokens = #parts > 0 and lat.cat(parts, 1) or lat.empty(0, 'int32')
  else
    raise('bytes.lm_dataset: expected a string, a list of strings or an int32 tensor')
  end
  local n = tokens:numel()
  local count = n > T and math.floor((n - 1 - T) / stride) + 1 or 0
  local src = tokens.i
  local ds = setmetatable({ tokens = tokens, T = T, stride = stride }, { __index = dataset.Dataset })
  function ds.len() return count end
  -- rows [B, T] of x and y for the 0-based window numbers in index
  function ds.batch(_, index)
    local nb = index:numel()
    local x, y = lat.empty({ nb, T }, 'int32'), lat.empty({ nb, T }, 'int32')
    for r = 0, nb - 1 do
      local w = index.i[r]
      if w < 0 or w >= count then raise(('lm_dataset: window %d out of range 1..%d'):format(w + 1, count)) end
      ffi.copy(x.i + r * T, src + w * stride, T * 4)
      ffi.copy(y.i + r * T, src + w * stride + 1, T * 4)
    end
    return { x = x, y = y }
  end
  function ds.get(self, i)
    if type(i) ~= 'number' or i < 1 or i > count then raise(('lm_dataset: index %s out of range 1..%d'):format(tostring(i), count)) end
    local b = self:batch(lat.full({ 1 }, i - 1, 'int32'))
    return { x = b.x:reshape(T), y = b.y:reshape(T) }
  end
  return ds
end

return B
