-- Checkpoints in the dtypes PyTorch and Hugging Face write: F16, BF16, F64, I64, I16, I8 and
-- BOOL converted on load (checked bit for bit against PyTorch's conversions, files written by
-- numpy in safetensors_ref.py), F16/BF16 written on request (PyTorch's rounding), sharded
-- checkpoints with their index, and hostile files in the new dtypes and index format.
local H = require 'harness'
local lat = require 'lat'
local ffi = require 'ffi'
local cjson = require 'cjson'

local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local DIR = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/checkpoint_dtypes'
os.execute('rm -rf ' .. DIR .. ' && mkdir -p ' .. DIR)
local REF = (debug.getinfo(1, 'S').source:match('^@(.*/)') or './') .. 'safetensors_ref.py'

local slurp, spit = H.read, H.write

local function python(cmd, dir)
  local out = H.run(('%s %s %s %s'):format(PYTHON, REF, cmd, dir))
  H.assert(out:find('%[exit 0%]\n$'), 'python failed: ' .. out, 2)
  return (out:gsub('%[exit 0%]\n$', ''))
end

local function bytes(t) return ffi.string(t.ptr.data, t:numel() * (t.dtype == 'uint8' and 1 or 4)) end

-- same dtype, shape and bits
local function same(a, b, what)
  H.assert(a ~= nil and b ~= nil, what .. ': missing', 2)
  H.assert(a.dtype == b.dtype, ('%s: dtype %s vs %s'):format(what, a.dtype, b.dtype), 2)
  H.assert(table.concat(a.shape, ',') == table.concat(b.shape, ','), what .. ': shapes differ', 2)
  if bytes(a) == bytes(b) then return end
  local pa, pb = ffi.cast('uint32_t *', a.ptr.data), ffi.cast('uint32_t *', b.ptr.data)
  for k = 0, a:numel() - 1 do
    H.assert(pa[k] == pb[k], ('%s: element %d has bits 0x%08x, want 0x%08x'):format(what, k, pa[k], pb[k]), 2)
  end
  error(what .. ': the bytes differ', 2)
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- ---------------------------------------------------------------- reading, against PyTorch

H.test('every F16 and BF16 bit pattern reads as the float32 PyTorch makes of it', function()
  python('all16', DIR)
  local t, _, report = lat.load(DIR .. '/all16.safetensors')
  H.assert(t.f16:numel() == 65536 and t.bf16:numel() == 65536, 'not every pattern is in the file')
  same(t.f16, t.f16_as_f32, 'F16 -> float32')
  same(t.bf16, t.bf16_as_f32, 'BF16 -> float32')
  H.assert(report.converted.f16 == 'F16 -> F32' and report.converted.bf16 == 'BF16 -> F32',
    'the conversions are not reported: ' .. cjson.encode(report.converted))
  H.assert(report.converted.f16_as_f32 == nil, 'an F32 tensor is reported as converted')
end)

H.test('F64, I64, I16, I8 and BOOL read as the float32, int32 and uint8 numpy makes of them', function()
  python('dtypes', DIR)
  local got, meta, report = lat.load(DIR .. '/dtypes.safetensors')
  local want = lat.load(DIR .. '/dtypes_kept.safetensors')
  H.assert(count(want) == 12 and count(got) == 12, 'not every dtype is in the files')
  for name, t in pairs(want) do same(got[name], t, "tensor '" .. name .. "'") end
  local expect = { f64 = 'F64 -> F32', i64 = 'I64 -> I32', i16 = 'I16 -> I32', i8 = 'I8 -> I32',
    bool = 'BOOL -> U8', f16 = 'F16 -> F32', bf16 = 'BF16 -> F32', empty_f16 = 'F16 -> F32',
    scalar_i64 = 'I64 -> I32' }
  for name, conv in pairs(expect) do
    H.assert(report.converted[name] == conv, ("'%s' reported as %s"):format(name, tostring(report.converted[name])))
  end
  H.assert(count(report.converted) == count(expect), 'unexpected conversions: ' .. cjson.encode(report.converted))
  H.assert(meta.format == 'pt' and count(meta) == 1, 'the __metadata__ block differs')
  H.assert(report.files[1] == DIR .. '/dtypes.safetensors' and #report.files == 1, 'report.files')
end)

-- ---------------------------------------------------------------- writing, against PyTorch

H.test("F16 and BF16 written by lat.save round as PyTorch's .to(float16 / bfloat16)", function()
  python('encode_src', DIR)
  local x = lat.load(DIR .. '/encode_src.safetensors').x
  H.assert(x:numel() > 1500000, 'few values to round')
  local ids = lat.tensor({ 3, -4 }, 'int32')
  lat.save(DIR .. '/enc_f16.safetensors', { x = x, ids = ids }, { dtype = 'f16' })
  lat.save(DIR .. '/enc_bf16.safetensors', { x = x, ids = ids }, { dtype = 'bfloat16' })
  local r = cjson.decode(python('encode_check', DIR))
  H.assert(table.concat(r.dtypes, ',') == 'F16,BF16,I32', 'stored dtypes: ' .. table.concat(r.dtypes, ','))
  H.assert(r.ids[1] == 3 and r.ids[2] == -4, 'an int32 tensor changed')
  for _, d in ipairs{ 'f16', 'bf16' } do
    H.assert(r[d].n == x:numel() and r[d].nans > 4000, d .. ': not every value compared')
    H.assert(r[d].mismatches == 0, ('%s: %d values rounded otherwise than torch, first [index, lat, torch]: %s')
      :format(d, r[d].mismatches, cjson.encode(r[d].first)))
  end
end)

H.test('round trips: F32 exactly; F16 and BF16 bit for bit (a signalling NaN comes back quiet)', function()
  local t = lat.load(DIR .. '/all16.safetensors')
  for _, c in ipairs{ { 'f16', 'f16', 0x7C00 }, { 'bf16', 'bf16', 0x7F80 } } do
    local name, dtype, inf = c[1], c[2], c[3]
    local p = DIR .. '/rt_' .. name .. '.safetensors'
    lat.save(p, { x = t[name] }, { dtype = dtype })
    local back, _, report = lat.load(p)
    H.assert(report.converted.x == dtype:upper() .. ' -> F32', name .. ': ' .. tostring(report.converted.x))
    lat.save(DIR .. '/rt_again.safetensors', { x = back.x }, { dtype = dtype })
    local raw = slurp(p)
    H.assert(slurp(DIR .. '/rt_again.safetensors') == raw, name .. ': a second round trip changed the file')
    local n = 0
    for k = 1, 8 do n = n + raw:byte(k) * 256 ^ (k - 1) end
    -- the string the pointer reads must stay referenced while it is read (the collector may
    -- free an unanchored temporary in the middle of the loop)
    local data = raw:sub(9 + n)
    local bits = ffi.cast('const uint16_t *', data)
    for k = 0, 65535 do
      local want = k
      if bit.band(k, 0x7FFF) > inf then want = bit.bor(k, inf == 0x7C00 and 0x200 or 0x40) end
      if bits[k] ~= want then H.assert(false, ('%s: pattern 0x%04x came back as 0x%04x'):format(name, k, bits[k])) end
    end
    H.assert(#data == 2 * 65536, name .. ': the data holds every pattern')
  end
  local ts = { w = lat.randn(7, 3), i = lat.tensor({ -2147483648, 2147483647 }, 'int32'), u = lat.tensor({ 0, 255 }, 'uint8') }
  lat.save(DIR .. '/rt_f32.safetensors', ts, { dtype = 'f32' })
  local back, _, report = lat.load(DIR .. '/rt_f32.safetensors')
  for k, v in pairs(ts) do same(back[k], v, k) end
  H.assert(next(report.converted) == nil, 'nothing was converted')
  H.raises(function() lat.save(DIR .. '/x.safetensors', ts, { dtype = 'f8' }) end, "opts.dtype is f8", "'f16'")
end)

-- ---------------------------------------------------------------- values a dtype cannot hold

local F = require 'safetensors_files'
local rejects = F.rejects

-- DIR/name.safetensors holding one tensor 't'
local function one(name, dtype, shape, data)
  return F.raw(DIR .. '/' .. name .. '.safetensors', '{' .. F.entry('t', dtype, shape, 0, #data) .. '}', data)
end

local function int64s(list)
  local a = ffi.new('int64_t[?]', #list, list)
  return ffi.string(a, 8 * #list)
end

H.test('an I64 value beyond int32, a finite F64 beyond float32 or a BOOL byte above 1 is refused, naming it', function()
  rejects(one('i64_big', 'I64', { 3 }, int64s{ 1, 2147483647, 2147483648LL }), "tensor 't' (I64)",
    'element 2 is 2147483648', "outside int32's range")
  rejects(one('i64_small', 'I64', { 2 }, int64s{ -2147483649LL, 0 }), 'element 0 is -2147483649')
  -- beyond the first 64 KiB the reader converts: the element number counts from the tensor's start
  local many = {}
  for k = 1, 20000 do many[k] = k end
  many[20000] = 2 ^ 40
  rejects(one('i64_late', 'I64', { 20000 }, int64s(many)), 'element 19999 is 1099511627776')
  local d = ffi.new('double[3]', { 1, 3.5e38, 2 })
  rejects(one('f64_big', 'F64', { 3 }, ffi.string(d, 24)), "tensor 't' (F64)", 'element 1 is 3.5e+38', "beyond float32's range")
  rejects(one('bool2', 'BOOL', { 4 }, '\0\1\2\1'), "tensor 't' (BOOL)", 'element 2 is the byte 2', 'a BOOL is 0 or 1')
  -- the edges still load
  local ok = lat.load(one('i64_edges', 'I64', { 2 }, int64s{ -2147483648LL, 2147483647 })).t
  H.assert(ok.i[0] == -2147483648 and ok.i[1] == 2147483647, 'the int32 edges')
  -- just below the midpoint between FLT_MAX and 2^128, and beyond (rounds to infinity: refused)
  d = ffi.new('double[2]', { 3.4028235677973362e38, -1 / 0 })
  local f = lat.load(one('f64_edges', 'F64', { 2 }, ffi.string(d, 16))).t
  H.assert(f.f[0] == 3.4028234663852886e38 and f.f[1] == -1 / 0, 'the float32 edges')
  d = ffi.new('double[1]', { 3.4028235677973366e38 })
  rejects(one('f64_mid', 'F64', { 1 }, ffi.string(d, 8)), 'element 0 is 3.4028235677973366e+38')
end)

H.test('a dtype lat cannot hold is refused, naming the tensor and the dtypes lat reads', function()
  for _, dt in ipairs{ 'C64', 'U32', 'U64', 'U16', 'F8_E4M3', 'F8_E5M2' } do
    rejects(one('cannot_' .. dt, dt, { 1 }, string.rep('\0', 8)), "tensor 't' has dtype " .. dt,
      'lat has no dtype that holds it', 'F16, BF16 and F64 as float32', 'BOOL as uint8')
  end
  rejects(one('unknown_dt', 'F12', { 1 }, '\0\0'), "unknown dtype 'F12'", 'I64, I16 and I8 as int32')
  rejects(one('lower_dt', 'f16', { 1 }, '\0\0'), "unknown dtype 'f16'")
end)

-- ---------------------------------------------------------------- hostile files in the new dtypes

H.test('sizes are those of the stored dtype', function()
  rejects(one('f16_size', 'F16', { 3 }, string.rep('\0', 12)), 'size mismatch', 'shape [3] of F16 needs 6 bytes', 'hold 12')
  rejects(one('i64_size', 'I64', { 2 }, string.rep('\0', 8)), 'shape [2] of I64 needs 16 bytes')
  rejects(one('f16_huge', 'F16', { '4611686018427387903' }, '\0\0'), 'size mismatch')
  rejects(one('f64_over', 'F64', { 4294967296, 4294967296 }, '\0\0'), 'too large')
end)

H.test('truncated files in the new dtypes, plain and zstd, within and after the first 64 KiB', function()
  local big = { h = lat.randn(100000), w = lat.randn(3) }
  for _, c in ipairs{ { 'f16', 'F16' }, { 'bf16', 'BF16' } } do
    local p = DIR .. '/full_' .. c[1] .. '.safetensors'
    lat.save(p, big, { dtype = c[1] })
    local full = slurp(p)
    H.assert(#full > 200000, 'the file is small')
    rejects(spit(DIR .. '/cut1_' .. c[1] .. '.safetensors', full:sub(1, -101)), 'truncated: header says 200006 bytes of data, file has 199906')
    rejects(spit(DIR .. '/cut2_' .. c[1] .. '.safetensors', full:sub(1, 1000)), 'truncated')
    lat.save(p .. '.zst', big, { dtype = c[1] })
    local z = slurp(p .. '.zst')
    rejects(spit(DIR .. '/cut3_' .. c[1] .. '.safetensors.zst', z:sub(1, math.floor(#z * 0.6))), 'truncated')
  end
  -- numpy's I64 file, cut inside its data
  local dtypes = slurp(DIR .. '/dtypes.safetensors')
  rejects(spit(DIR .. '/cut_dtypes.safetensors', dtypes:sub(1, -20)), 'truncated')
end)

H.test('the read limit counts the memory of the converted tensors', function()
  lat.save(DIR .. '/limit.safetensors', { w = lat.zeros(2 ^ 18) }, { dtype = 'f16' }) -- 512 KiB stored, 1 MiB kept
  local out = H.child(("lat.set_read_limit(768 * 1024); print(pcall(lat.load, %q))"):format(DIR .. '/limit.safetensors'))
  H.assert(out:find('^false') and out:find('would decode to 1048576 bytes', 1, true) and out:find('read limit of 786432', 1, true),
    'the F16 file was not refused: ' .. out)
  out = H.child(("lat.set_read_limit(1024 * 1024 + 100); print(pcall(lat.load, %q))"):format(DIR .. '/limit.safetensors'))
  H.assert(out:find('^true'), 'within the limit it loads: ' .. out)
end)

H.test('random corruptions of a file in every dtype: each loads or is rejected naming the file', function()
  local good = slurp(DIR .. '/dtypes.safetensors')
  local rng = lat.Generator(4)
  local function rand(n) return math.floor(lat.rand({}, { rng = rng }):item() * n) end
  local rejected = 0
  for _ = 1, 400 do
    local s = good
    for _ = 1, 1 + rand(3) do
      local i, kind = 1 + rand(#s), rand(3)
      if kind == 0 then s = s:sub(1, i - 1) .. string.char(rand(256)) .. s:sub(i + 1)
      elseif kind == 1 then s = s:sub(1, i - 1) .. s:sub(i + 1)
      else s = s:sub(1, i) .. string.char(rand(256)) .. s:sub(i + 1) end
    end
    local q = spit(DIR .. '/fuzzed_dtypes.safetensors', s)
    local ok, err = pcall(lat.load, q)
    if not ok then
      rejected = rejected + 1
      H.assert(tostring(err):find('checkpoint ' .. q .. ': ', 1, true), 'message does not name the file: ' .. tostring(err))
    end
  end
  H.assert(rejected > 200, 'few corruptions were noticed: ' .. rejected)
end)

-- ---------------------------------------------------------------- sharded checkpoints

local SH = DIR .. '/sharded'
local INDEX = SH .. '/model.safetensors.index.json'
local SHARD1, SHARD2 = 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'

H.test('a sharded checkpoint loads through its index into one table', function()
  python('sharded', SH)
  local t, meta, report = lat.load(INDEX)
  local want = lat.load(SH .. '/kept.safetensors')
  H.assert(count(t) == 4, 'tensors: ' .. count(t))
  for k, v in pairs(want) do same(t[k], v, "tensor '" .. k .. "'") end
  H.assert(meta.format == 'pt' and count(meta) == 1, "the shards' metadata")
  H.assert(report.index == INDEX and report.index_metadata.total_size == 58, 'the index metadata')
  H.assert(#report.files == 2 and report.files[1] == SH .. '/' .. SHARD1 and report.files[2] == SH .. '/' .. SHARD2, 'report.files')
  H.assert(report.converted['layer.0.weight'] == 'F16 -> F32' and report.converted['bn.num_batches_tracked'] == 'I64 -> I32'
    and report.converted['layer.1.weight'] == 'BF16 -> F32' and report.converted['layer.0.bias'] == nil, 'report.converted')
end)

-- an index beside the shards in SH, with this text
local function index(name, text) return spit(SH .. '/' .. name, text) end
local function index_of(map, extra)
  local parts = {}
  for k, v in pairs(map) do parts[#parts + 1] = ('"%s":"%s"'):format(k, v) end
  table.sort(parts)
  return '{' .. (extra or '') .. '"weight_map":{' .. table.concat(parts, ',') .. '}}'
end

H.test('a missing shard is an error naming it, before any shard is read', function()
  local p = index('missing.index.json', index_of({ a = SHARD1, b = 'model-00003-of-00003.safetensors' }))
  H.raises(function() lat.load(p) end, 'checkpoint index ' .. p, "shard 'model-00003-of-00003.safetensors' is missing",
    'no file ' .. SH .. '/model-00003-of-00003.safetensors', "'b' first")
end)

H.test('shards and index that disagree', function()
  local all = { ['layer.0.weight'] = SHARD1, ['layer.0.bias'] = SHARD1, ['layer.1.weight'] = SHARD2, ['bn.num_batches_tracked'] = SHARD2 }
  local function without(k) local m = {} for n, s in pairs(all) do if n ~= k then m[n] = s end end return m end
  H.raises(function() lat.load(index('unlisted.index.json', index_of(without('layer.0.bias')))) end,
    "shard '" .. SHARD1 .. "' holds tensor 'layer.0.bias', which the index does not put there")
  local ghost = without('nothing')
  ghost['layer.2.weight'] = SHARD2
  H.raises(function() lat.load(index('ghost.index.json', index_of(ghost))) end,
    "the index puts tensor 'layer.2.weight' in shard '" .. SHARD2 .. "', which does not hold it")
  -- a shard that is no checkpoint: its own message, with the index's
  spit(SH .. '/broken.safetensors', 'not a checkpoint')
  H.raises(function() lat.load(index('broken.index.json', index_of({ x = 'broken.safetensors' }))) end,
    'checkpoint index ' .. SH .. '/broken.index.json: shard broken.safetensors', 'checkpoint ' .. SH .. '/broken.safetensors',
    'not a safetensors checkpoint')
  -- metadata the shards disagree on
  lat.save(SH .. '/m1.safetensors', { a = lat.ones(1) }, { metadata = { format = 'pt' } })
  lat.save(SH .. '/m2.safetensors', { b = lat.ones(1) }, { metadata = { format = 'lat' } })
  H.raises(function() lat.load(index('meta.index.json', index_of({ a = 'm1.safetensors', b = 'm2.safetensors' }))) end,
    "shards 'm1.safetensors' and 'm2.safetensors' give the metadata key 'format' different values")
  -- an empty weight map is an empty checkpoint
  local t, meta, report = lat.load(index('empty.index.json', '{"weight_map":{}}'))
  H.assert(next(t) == nil and next(meta) == nil and #report.files == 0, 'the empty index')
end)

H.test('hostile index files are refused with a message naming the index', function()
  local ok_map = '"weight_map":{"a":"' .. SHARD1 .. '"}'
  local cases = {
    { '', 'ends too early' },
    { '[1]', 'not a JSON object' },
    { '{}', 'no weight_map' },
    { '{"metadata":{}}', 'no weight_map' },
    { '{' .. ok_map .. ',' .. ok_map .. '}', "'weight_map' twice" },
    { '{"metadata":{},"metadata":{},' .. ok_map .. '}', "'metadata' twice" },
    { '{"metadata":5,' .. ok_map .. '}', 'metadata is not a JSON object' },
    { '{"weight_map":[]}', 'weight_map must be an object' },
    { '{"weight_map":{"a":1}}', "gives tensor 'a' no shard file name" },
    { '{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}', "names tensor 'a' twice" },
    { '{"weight_map":{"a":"../x.safetensors"}}', "shard '../x.safetensors', which is not the name of a file beside the index" },
    { '{"weight_map":{"a":"/etc/passwd"}}', 'not the name of a file beside the index' },
    { '{"weight_map":{"a":".."}}', 'not the name of a file' },
    { '{"weight_map":{"a":""}}', 'not the name of a file' },
    { '{' .. ok_map .. '} x', "text after the index's closing '}'" },
    { '{' .. ok_map .. ',"other":[1,2,{"x":tru}]}', 'bad JSON' },
    { '{"metadata":{"total_size":1.5e},' .. ok_map .. '}', 'without digits in its exponent' },
    { '{"metadata":{"n":-},' .. ok_map .. '}', 'expected a JSON value' },
    { '{"metadata":{"n":01},' .. ok_map .. '}', "expected ',' or '}' in an object" },
    { '{"metadata":{"a":' .. string.rep('[', 100) .. string.rep(']', 100) .. '},' .. ok_map .. '}', 'nested too deeply' },
    { '{"metadata":{"a":' .. string.rep('[', 60) .. string.rep(']', 60) .. '},"weight_map":{"a\\u0000":"x"}}', 'NUL' },
    { '{"weight_map":{"a":"x\255"}}', 'UTF-8' },
  }
  for i, c in ipairs(cases) do
    local p = index('bad' .. i .. '.index.json', c[1])
    local ok, err = pcall(H.raises, function() lat.load(p) end, 'checkpoint index ' .. p, c[2])
    H.assert(ok, ('case %d (%s): %s'):format(i, c[1], tostring(err)))
  end
  -- what the index may hold besides the weight map: any JSON, kept in report.index_metadata
  local p = index('rich.index.json', '{"metadata":{"total_size":8,"nested":{"list":[1,-2.5e-3,true,null,"s"]}},' ..
    '"format_version":[1,{"x":false}],"weight_map":{"layer.0.bias":"' .. SHARD1 .. '","layer.0.weight":"' .. SHARD1 .. '"}}')
  local t, _, report = lat.load(p)
  H.assert(count(t) == 2 and report.index_metadata.nested.list[2] == -2.5e-3, 'the rich index')
  H.raises(function() lat.load(SH .. '/no_such.index.json') end, SH .. '/no_such.index.json', 'No such file')
  -- a zstd-compressed index reads too (the reader decompresses by the magic number)
  if H.run('command -v zstd'):find('zstd') then
    H.run(('zstd -q -f -o %s/z.index.json %s'):format(SH, INDEX))
    H.assert(count(lat.load(SH .. '/z.index.json')) == 4, 'the compressed index')
  end
end)

H.test('the library keeps working after rejecting files, without leaking', function()
  lat.collect()
  local live = lat.memory().live
  for _ = 1, 100 do
    for _, p in ipairs{ DIR .. '/i64_late.safetensors', DIR .. '/cut2_f16.safetensors', DIR .. '/bool2.safetensors',
                        SH .. '/bad11.index.json', SH .. '/bad20.index.json', SH .. '/missing.index.json' } do
      pcall(lat.load, p)
    end
  end
  lat.collect()
  H.assert(lat.memory().live <= live + 4096, ('live bytes grew from %d to %d'):format(live, lat.memory().live))
end)

H.finish()
