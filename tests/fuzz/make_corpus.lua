-- make_corpus.lua: writes the fuzz targets' seed inputs into tests/fuzz/corpus/<target>/, each a
-- small valid file made by lat itself or cut from the real data under $LAT_DATA. Run it from the
-- repository after changing a format:  build/lat tests/fuzz/make_corpus.lua
-- The seeds are committed (a few KiB) so that fuzzing needs neither the data sets nor a working
-- lat at configure time, and the inputs fuzzing finds can be merged in (tests/fuzz/README.md).
local lat = require 'lat'
local here = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
local out = here .. 'corpus/'

local function write(target, name, bytes)
  os.execute(('mkdir -p %q'):format(out .. target))
  local f = assert(io.open(out .. target .. '/' .. name, 'wb'))
  f:write(bytes)
  f:close()
end

local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

local function gzip(bytes)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, 'wb'))
  f:write(bytes)
  f:close()
  local p = assert(io.popen(('gzip -9n -c %q'):format(tmp)))
  local z = p:read('*a')
  p:close()
  os.remove(tmp)
  return z
end

-- checkpoints, plain and zstd: one tensor of each dtype, metadata, a 0-element tensor
local tmp = os.tmpname()
local tensors = {
  w = lat.tensor({ { 1.5, -2 }, { 0.25, 3 } }),
  ids = lat.tensor({ 7, -1, 300 }, 'int32'),
  px = lat.tensor({ 0, 128, 255 }, 'uint8'),
  none = lat.zeros(0, 3),
}
for name, level in pairs({ plain = 0, zstd = 3 }) do
  lat.save(tmp, tensors, { metadata = { format = 'pt', note = 'fuzz seed' }, compress = level })
  local bytes = read(tmp)
  assert(lat.load(tmp).w:numel() == 4)
  write('safetensors', name .. '.safetensors', bytes)
  if level == 0 then
    -- the JSON header on its own: the 8-byte little-endian length, then that many bytes
    local n = 0
    for k = 8, 1, -1 do n = n * 256 + bytes:byte(k) end
    write('json', 'header.json', bytes:sub(9, 8 + n))
    write('json', 'metadata.json', '{"format":"pt","note":"caf\\u00e9 \\"quoted\\"\\n"}')
  end
end

-- a checkpoint in every dtype lat converts (as PyTorch and Hugging Face write them), plain and
-- zstd: F16 and BF16 from lat.save, the others laid out by hand
local ffi = require 'ffi'
lat.save(tmp, { h = lat.tensor{ 1, -0.5, 65504, 6e-8 } }, { dtype = 'f16' })
local f16 = read(tmp)
assert(lat.load(tmp).h:numel() == 4)
lat.save(tmp, { b = lat.tensor{ 3.5, -1e30 } }, { dtype = 'bf16' })
write('safetensors', 'bf16.safetensors', read(tmp))
write('safetensors', 'f16.safetensors', f16)
local function le64(n)
  local s = {}
  for k = 1, 8 do s[k], n = string.char(n % 256), math.floor(n / 256) end
  return table.concat(s)
end
local parts = {
  { 'f64', 'F64', { 2 }, ffi.string(ffi.new('double[2]', { 0.1, -2 }), 16) },
  { 'i64', 'I64', { 2 }, ffi.string(ffi.new('int64_t[2]', { 7, -2147483648LL }), 16) },
  { 'i16', 'I16', { 2 }, ffi.string(ffi.new('int16_t[2]', { -32768, 5 }), 4) },
  { 'i8', 'I8', { 3 }, '\128\0\127' },
  { 'mask', 'BOOL', { 2, 2 }, '\1\0\0\1' },
}
local entries, data = {}, {}
for _, p in ipairs(parts) do
  local at = #table.concat(data)
  entries[#entries + 1] = ('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}')
    :format(p[1], p[2], table.concat(p[3], ','), at, at + #p[4])
  data[#data + 1] = p[4]
end
local header = '{"__metadata__":{"format":"pt"},' .. table.concat(entries, ',') .. '}'
local converted = le64(#header) .. header .. table.concat(data)
write('safetensors', 'converted.safetensors', converted)
write('json', 'header_converted.json', header)
local p = assert(io.popen(('zstd -q -c > %q'):format(tmp), 'w'))
p:write(converted)
p:close()
write('safetensors', 'converted_zstd.safetensors', read(tmp))
local loaded = lat.load(tmp)
assert(loaded.i64.dtype == 'int32' and loaded.mask.dtype == 'uint8' and loaded.f64.dtype == 'float32')
os.remove(tmp)

-- the index of a sharded checkpoint, as Hugging Face writes it
local index = [[{
  "metadata": {"total_size": 1024, "format": {"nested": [1, -2.5e-3, true, null]}},
  "weight_map": {
    "h.0.attn.c_attn.weight": "model-00001-of-00002.safetensors",
    "h.0.ln_1.bias": "model-00001-of-00002.safetensors",
    "wte.weight": "model-00002-of-00002.safetensors"
  }
}
]]
write('safetensors', 'model.safetensors.index.json', index)
write('json', 'index.json', index)
local ok, err = pcall(lat.load, out .. 'json/index.json')
assert(not ok and err:find('is missing'), err) -- parsed, but its shards are not there

-- IDX, plain and gzip'd: two 3x4 images (magic 0x0803) and their labels (0x0801), the header as
-- Fashion-MNIST's, the pixels the first ones of its test set
local function be32(v) return string.char(math.floor(v / 2^24) % 256, math.floor(v / 2^16) % 256, math.floor(v / 2^8) % 256, v % 256) end
local images = lat.data.read_idx(lat.data.root() .. '/fashion-mnist/t10k-images-idx3-ubyte.gz')
local pixels = {}
for k = 0, 23 do pixels[k + 1] = string.char(images.u[14 * 28 + k]) end
local idx3 = '\0\0\8\3' .. be32(2) .. be32(3) .. be32(4) .. table.concat(pixels)
local idx1 = '\0\0\8\1' .. be32(2) .. '\9\2'
write('idx', 'images.idx', idx3)
write('idx', 'labels.idx', idx1)
write('idx', 'images.idx.gz', gzip(idx3))
write('idx', 'labels.idx.gz', gzip(idx1))
tmp = os.tmpname()
write('idx', 'check', idx3)
assert(lat.data.read_idx(out .. 'idx/check'):numel() == 24)
os.remove(out .. 'idx/check')

-- PNG: gray, gray + alpha, RGB and RGBA, small
for c, name in pairs({ 'gray', 'gray_alpha', 'rgb', 'rgba' }) do
  local t = lat.zeros({ c, 3, 5 }, 'uint8')
  for k = 0, t:numel() - 1 do t.u[k] = (k * 37) % 256 end
  lat.io.write_png(tmp, t)
  assert(lat.io.read_png(tmp):numel() == c * 15)
  write('png', name .. '.png', read(tmp))
end
os.remove(tmp)

-- the Lua parsers: SpamAssassin messages (base64, quoted-printable, multipart/alternative,
-- encoded header words, plain), the start of a chapter and of an address, a saved tokenizer
local root = lat.data.root()
local spam = root .. '/spam-assassin/data/'
for name, file in pairs({
  base64 = 'spam-2/00538.46858b6122a85685022250db2f25b32a.txt',
  quoted_printable = 'spam-2/00158.58aea46256aaaa23787ec2acdcd31073.txt',
  alternative = 'spam-2/00714.cd13d8db12cc1f661d6b2eb6fcbb5156.txt',
  encoded_words = 'spam-2/00623.f80874598b1a22fbaa5d979d14d8ca2e.txt',
  plain = 'easy-ham-1/01692.3349a6670b58d2a39307e87ae0012294.txt',
}) do
  write('lua_parsers', 'email_' .. name, read(spam .. file):sub(1, 4096))
end
write('lua_parsers', 'spam_name', '00538.46858b6122a85685022250db2f25b32a.txt')
local chapter = read(root .. '/moby-dick/data/chapter_1.txt'):sub(1, 1500)
write('lua_parsers', 'moby_dick', chapter)
write('lua_parsers', 'sotu', read(root .. '/sotu/data/1790_george_washington_n.txt'):sub(1, 1500))
write('lua_parsers', 'tokenizer', lat.data.words.train({ chapter }, { vocab = 40, buckets = 8 }):to_string())
print('seeds written under ' .. out)
