-- Checkpoints: round trips (plain and zstd), metadata, atomic replacement under kill -9, hostile
-- files rejected with clear messages, and files read and written by an independent Python reader.
local H = require 'harness'
local lat = require 'lat'
local ffi = require 'ffi'
local cjson = require 'cjson'

local LAT = arg[-1]
local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local DIR = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/checkpoint'
os.execute('rm -rf ' .. DIR .. ' && mkdir -p ' .. DIR)

local slurp, spit, exists = H.read, H.write, H.exists

local function sh(cmd)
  local p = assert(io.popen(cmd .. ' 2>&1'))
  local out = p:read('*a')
  p:close()
  return out
end

local function bytes(t) return ffi.string(t.ptr.data, t:numel() * (t.dtype == 'uint8' and 1 or 4)) end

-- same dtype, shape and bits
local function same(a, b, what)
  H.assert(a ~= nil and b ~= nil, what .. ': missing', 2)
  H.assert(a.dtype == b.dtype, ('%s: dtype %s vs %s'):format(what, a.dtype, b.dtype), 2)
  H.assert(table.concat(a.shape, ',') == table.concat(b.shape, ','),
    ('%s: shape [%s] vs [%s]'):format(what, table.concat(a.shape, ', '), table.concat(b.shape, ', ')), 2)
  H.assert(bytes(a) == bytes(b), what .. ': the bytes differ', 2)
end

local function same_set(got, want)
  for k, v in pairs(want) do same(got[k], v, "tensor '" .. k .. "'") end
  for k in pairs(got) do H.assert(want[k], "unexpected tensor '" .. k .. "'", 2) end
end

local function fixture()
  local g = lat.Generator(7)
  local special = lat.tensor{ 0, -0.0, 1 / 0, -1 / 0, 1e-45, 3.4e38 }
  special.f[0] = 0 / 0
  return {
    f2 = lat.randn({ 3, 4 }, { rng = g }), f4 = lat.randn({ 2, 1, 3, 2 }, { rng = g }),
    f0 = lat.full({}, -2.5), fempty = lat.zeros(0, 5), special = special,
    i1 = lat.tensor({ -2147483648, -1, 0, 7, 2147483647 }, 'int32'), i0 = lat.full({}, 42, 'int32'),
    iempty = lat.zeros(4, 0, 'int32'),
    u3 = lat.randint(0, 256, { 2, 3, 5 }, { dtype = 'uint8', rng = g }), u1 = lat.tensor({ 255 }, 'uint8'),
    uempty = lat.empty(0, 'uint8'),
  }
end

-- ---------------------------------------------------------------- round trips

H.test('round trip of float32, int32 and uint8 tensors, plain and zstd', function()
  local ts = fixture()
  for _, name in ipairs{ 'rt.safetensors', 'rt.safetensors.zst' } do
    local path = DIR .. '/' .. name
    lat.save(path, ts)
    local got, meta = lat.load(path)
    same_set(got, ts)
    H.assert(next(meta) == nil, 'metadata of a checkpoint saved without it should be empty')
  end
  H.assert(slurp(DIR .. '/rt.safetensors.zst'):sub(1, 4) == '\40\181\47\253', '.zst file lacks the zstd magic')
  H.assert(slurp(DIR .. '/rt.safetensors'):sub(1, 4) ~= '\40\181\47\253', 'plain file is compressed')
end)

H.test('compress option overrides the file name', function()
  local ts = { w = lat.randn(100) }
  lat.save(DIR .. '/c.safetensors', ts, { compress = true })
  lat.save(DIR .. '/c2.safetensors.zst', ts, { compress = false })
  lat.save(DIR .. '/c3.safetensors', ts, { compress = 19 })
  H.assert(slurp(DIR .. '/c.safetensors'):sub(1, 4) == '\40\181\47\253', 'compress = true ignored')
  H.assert(slurp(DIR .. '/c2.safetensors.zst'):sub(1, 4) ~= '\40\181\47\253', 'compress = false ignored')
  for _, p in ipairs{ 'c.safetensors', 'c2.safetensors.zst', 'c3.safetensors' } do same_set(lat.load(DIR .. '/' .. p), ts) end
end)

H.test('metadata round trip', function()
  local meta = { step = '1200', config = '{"lr": 0.1, "where": "block2"}', note = 'naïve ✓ 😀 / \\ "q"\n\ttab',
    [''] = '', ['key with spaces'] = 'v' }
  for _, name in ipairs{ 'm.safetensors', 'm.safetensors.zst' } do
    lat.save(DIR .. '/' .. name, { x = lat.ones(2) }, { metadata = meta })
    local got, m = lat.load(DIR .. '/' .. name)
    same(got.x, lat.ones(2), 'x')
    for k, v in pairs(meta) do H.assert(m[k] == v, ('metadata %q: %q vs %q'):format(k, tostring(m[k]), v)) end
    for k in pairs(m) do H.assert(meta[k], 'unexpected metadata key ' .. k) end
  end
  lat.save(DIR .. '/m0.safetensors', {}, { metadata = {} })
  local t, m = lat.load(DIR .. '/m0.safetensors')
  H.assert(next(t) == nil and next(m) == nil, 'an empty checkpoint does not round-trip')
end)

H.test('nested tables flatten to dotted names', function()
  local a, b, c = lat.randn(2, 2), lat.randn(3), lat.ones(1, 'int32')
  lat.save(DIR .. '/n.safetensors', { model = { block1 = { w = a }, heads = { b, c } } })
  local got = lat.load(DIR .. '/n.safetensors')
  same_set(got, { ['model.block1.w'] = a, ['model.heads.1'] = b, ['model.heads.2'] = c })
end)

H.test('save rejects what a checkpoint cannot hold', function()
  local p = DIR .. '/bad_save.safetensors'
  H.raises(function() lat.save(p, { a = { b = 3 } }) end, "'a.b' is a number")
  H.raises(function() lat.save(p, { x = lat.ones(1) }, { metadata = { step = 3 } }) end, 'strings to strings')
  H.raises(function() lat.save(p, { ['a.b'] = lat.ones(1), a = { b = lat.ones(1) } }) end, "two tensors would be named 'a.b'")
  H.raises(function() lat.save(p, { __metadata__ = lat.ones(1) }) end, p, '__metadata__', 'reserved')
  H.raises(function() lat.save(DIR .. '/no/such/dir/x.safetensors', { x = lat.ones(1) }) end,
    DIR .. '/no/such/dir/x.safetensors', 'cannot create', 'No such file or directory')
  H.raises(function() lat.save(p, { x = lat.ones(1) }, { metadata = { s = 'bad \255 utf8' } }) end, p, 'metadata', 'UTF-8')
  H.assert(not exists(p), 'a failed save left a file behind')
end)

H.test('a missing file is an error naming it', function()
  H.raises(function() lat.load(DIR .. '/missing.safetensors') end, DIR .. '/missing.safetensors', 'No such file')
  H.raises(function() lat.load(DIR) end, DIR, 'not a regular file')
end)

-- ---------------------------------------------------------------- atomic replacement

H.test('a leftover temporary file changes nothing', function()
  local p = DIR .. '/atomic.safetensors'
  local old = { w = lat.randn(10, 10) }
  lat.save(p, old)
  spit(p .. '.tmp.99999', 'half a checkpoint')
  same_set(lat.load(p), old)
  local new = { w = lat.randn(3) }
  lat.save(p, new)
  same_set(lat.load(p), new)
  H.assert(not exists(p .. '.tmp.' .. 'x'), 'unexpected file')
  os.remove(p .. '.tmp.99999')
end)

H.test('saving removes the temporaries that killed writers left, and only those', function()
  local p = DIR .. '/stale.safetensors'
  local function dead_pid() return tonumber(sh('sh -c \'echo $$\'')) end -- a shell that has exited
  local live = tonumber(sh('sleep 60 > /dev/null 2>&1 & echo $!'))
  local files = {
    dead_old = p .. '.tmp.' .. dead_pid(), dead_old2 = p .. '.tmp.' .. dead_pid(),
    dead_new = p .. '.tmp.' .. dead_pid(),              -- too recent: perhaps a slow writer
    live_old = p .. '.tmp.' .. live,                    -- a live process's, however old
    live_parent = p .. '.tmp.1',                        -- init's: alive, though not ours to signal
    other_target = DIR .. '/other.safetensors.tmp.' .. dead_pid(),
    not_a_pid = p .. '.tmp.12x', longer_name = p .. '.zst.tmp.' .. dead_pid(),
  }
  for k, f in pairs(files) do
    spit(f, 'half a checkpoint')
    if k ~= 'dead_new' then sh(("touch -d '1 minute ago' '%s'"):format(f)) end
  end
  lat.save(p, { w = lat.ones(2) })
  os.execute('kill ' .. live)
  for k, f in pairs(files) do
    local gone = k == 'dead_old' or k == 'dead_old2'
    H.assert(exists(f) ~= gone, ('%s (%s) %s'):format(k, f, gone and 'was left' or 'was removed'))
    os.remove(f)
  end
  same_set(lat.load(p), { w = lat.ones(2) })
end)

H.test('a writer killed with SIGKILL leaves the old checkpoint intact', function()
  for _, name in ipairs{ 'killed.safetensors', 'killed.safetensors.zst' } do
    local p = DIR .. '/' .. name
    local old = { w = lat.randn(64, 64), step = lat.full({}, 3, 'int32') }
    lat.save(p, old, { metadata = { step = '3' } })
    local before = slurp(p)
    -- the child writes 32 MiB at a slow zstd level; it is killed once its temporary file has
    -- data in it (compress = 9 even for the plain name, to keep it writing long enough)
    local child = ("lat.save(%q, {w = lat.randn(8 * 2^20)}, {compress = 9})"):format(p)
    local out = sh(([[
exec 2>&1
"%s" -e '%s' & pid=$!
i=0
while [ ! -s "%s.tmp.$pid" ] && kill -0 $pid 2>/dev/null && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done
kill -9 $pid; wait $pid; echo "status $? pid $pid"]]):format(LAT, child, p))
    local status, pid = out:match('status (%d+) pid (%d+)')
    H.assert(status == '137', 'the child was not killed mid-write: ' .. out)
    H.assert(exists(p .. '.tmp.' .. pid), 'the killed child left no temporary file: ' .. out)
    H.assert(slurp(p) == before, name .. ': the old file changed')
    local got, meta = lat.load(p)
    same_set(got, old)
    H.assert(meta.step == '3', 'old metadata lost')
    os.remove(p .. '.tmp.' .. pid)
  end
end)

-- ---------------------------------------------------------------- hostile files

local F = require 'safetensors_files'
local le64, entry, rejects = F.le64, F.entry, F.rejects

-- a file in DIR made of a header (JSON text) and data bytes
local function raw(name, header, data) return F.raw(DIR .. '/' .. name, header, data) end

H.test('a well-formed hand-made file loads (the base of the corruptions below)', function()
  local p = raw('hand.safetensors', '{' .. entry('a', 'F32', { 2 }, 0, 8) .. ',' .. entry('b', 'U8', { 3 }, 8, 11) .. '}  ',
    ffi.string(ffi.new('float[2]', { 1.5, -2 }), 8) .. '\1\2\3')
  local t = lat.load(p)
  same(t.a, lat.tensor{ 1.5, -2 }, 'a')
  same(t.b, lat.tensor({ 1, 2, 3 }, 'uint8'), 'b')
end)

H.test('truncated files', function()
  lat.save(DIR .. '/full.safetensors', { w = lat.randn(100) })
  local full = slurp(DIR .. '/full.safetensors')
  rejects(spit(DIR .. '/trunc.safetensors', full:sub(1, -101)), 'truncated: header says 400 bytes of data, file has 300')
  rejects(spit(DIR .. '/trunc_h.safetensors', full:sub(1, 20)), 'header length')
  rejects(spit(DIR .. '/trunc_3.safetensors', full:sub(1, 3)), 'too short')
  rejects(spit(DIR .. '/empty.safetensors', ''), 'too short')
  lat.save(DIR .. '/full.safetensors.zst', { w = lat.randn(1000) })
  local z = slurp(DIR .. '/full.safetensors.zst')
  rejects(spit(DIR .. '/trunc.safetensors.zst', z:sub(1, #z - 200)), 'truncated zstd stream')
  rejects(spit(DIR .. '/trunc2.safetensors.zst', z:sub(1, 30)), 'truncated')
end)

H.test('header length larger than the file', function()
  local full = slurp(DIR .. '/full.safetensors')
  rejects(spit(DIR .. '/hl.safetensors', le64(#full) .. full:sub(9)), 'header length', 'is ' .. #full .. ' bytes', 'the file has ' .. #full)
  rejects(spit(DIR .. '/hl2.safetensors', le64(2 ^ 40) .. full:sub(9)), 'not a safetensors checkpoint', 'header length')
end)

H.test('not a checkpoint at all', function()
  rejects(spit(DIR .. '/text.safetensors', 'hello, this is a text file and not a checkpoint\n'), 'not a safetensors checkpoint')
  rejects(raw('array.safetensors', '[1, 2, 3]'), 'not a safetensors checkpoint', 'not a JSON object')
end)

H.test('bad JSON in the header', function()
  local a = entry('a', 'F32', { 1 }, 0, 4)
  local data = '\0\0\128\63'
  local cases = {
    { '{' .. a, 'ends too early' },
    { '{' .. a .. ',}', 'expected a string' },
    { '{' .. a .. '}x', 'text after' },
    { "{'a':1}", 'expected a string' },
    { '{"a" ' .. a:sub(5) .. '}', "expected ':'" },
    { '{"a\\q":1}', 'bad escape' },
    { '{"a\1":1}', 'control character' },
    { '{"a\\u0000":{}}', 'NUL' },
    { '{"a\\ud800":{}}', '\\u escape' },
    { '{"a\255":{}}', 'UTF-8' },
    { '{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}', 'leading zero' },
    { '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', 'fractional' },
    { '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 'negative' },
    { '{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}', 'non-negative integer' },
    { '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}', 'two numbers' },
    { '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}}', 'too large' },
    { '{"a":{"dtype":"F32","shape":[1]}}', "lacks the field 'data_offsets'" },
    { '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}', "unknown field 'extra'" },
    { '{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', "field 'dtype' twice" },
    { '{' .. a .. ',' .. a .. '}', "tensor 'a' twice" },
    { '{"__metadata__":{"k":1},' .. a .. '}', "entry 'k' is not a string" },
    { '{"__metadata__":{"k":"1","k":"2"},' .. a .. '}', "key 'k' twice" },
    { '{"__metadata__":{},"__metadata__":{},' .. a .. '}', '__metadata__ twice' },
    { '{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}', 'more than 8 dimensions' },
    { '{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}', 'too large' },
  }
  for i, c in ipairs(cases) do
    local ok, err = pcall(rejects, raw('json' .. i .. '.safetensors', c[1], data), c[2])
    H.assert(ok, ('case %d (%s): %s'):format(i, c[1], tostring(err)))
  end
end)

H.test('integers beyond 2^62 in shapes and offsets are refused, not wrapped modulo 2^64', function()
  local data = string.rep('\0', 32)
  local cases = {
    -- 2^64 + 8 wrapped to 8, which matched the 32 bytes of data
    { '{"a":{"dtype":"F32","shape":[18446744073709551624],"data_offsets":[0,32]}}', 'too large' },
    { '{"a":{"dtype":"U8","shape":[32],"data_offsets":[18446744073709551616,18446744073709551648]}}', 'too large' },
    { '{"a":{"dtype":"U8","shape":[32],"data_offsets":[0,36893488147419103264]}}', 'too large' },
    { '{"a":{"dtype":"U8","shape":[4611686018427387904],"data_offsets":[0,32]}}', 'too large' },
    { '{"a":{"dtype":"U8","shape":[32],"data_offsets":[0,3.2e1]}}', 'fractional' },
    { '{"a":{"dtype":"U8","shape":[32],"data_offsets":[0,32e0]}}', 'exponent' },
    { '{"a":{"dtype":"U8","shape":[32],"data_offsets":[0,32E0]}}', 'exponent' },
    { '{"a":{"dtype":"U8","shape":[32],"data_offsets":[-0,32]}}', 'negative' },
  }
  for i, c in ipairs(cases) do
    local ok, err = pcall(rejects, raw('int' .. i .. '.safetensors', c[1], data), c[2])
    H.assert(ok, ('case %d (%s): %s'):format(i, c[1], tostring(err)))
  end
  -- the largest accepted integer still parses (and is then refused as a size mismatch)
  rejects(raw('int_max.safetensors', '{"a":{"dtype":"U8","shape":[4611686018427387903],"data_offsets":[0,32]}}', data), 'size mismatch')
end)

H.test('offsets out of range, overlapping or leaving holes', function()
  local d12 = string.rep('\0', 12)
  rejects(raw('o1.safetensors', '{' .. entry('a', 'F32', { 1 }, 0, 4) .. ',' .. entry('b', 'F32', { 0 }, 8, 4) .. '}', d12),
    "tensor 'b'", 'data_offsets [8, 4] out of range')
  rejects(raw('o2.safetensors', '{' .. entry('a', 'F32', { 2 }, 0, 8) .. ',' .. entry('b', 'F32', { 1 }, 100, 104) .. '}', d12),
    "tensor 'b'", 'data_offsets [100, 104] out of range', 'data section has 12 bytes')
  rejects(raw('o3.safetensors', '{' .. entry('a', 'F32', { 2 }, 0, 8) .. ',' .. entry('b', 'F32', { 2 }, 4, 12) .. '}', d12),
    "tensors 'a' and 'b' overlap", '[0, 8] and [4, 12]')
  rejects(raw('o4.safetensors', '{' .. entry('a', 'F32', { 1 }, 0, 4) .. ',' .. entry('b', 'F32', { 1 }, 8, 12) .. '}', d12),
    'bytes 4 to 8 of the data belong to no tensor')
  rejects(raw('o5.safetensors', '{' .. entry('a', 'F32', { 2 }, 0, 8) .. '}', d12), '4 bytes after the last tensor')
end)

H.test('dtype strings lat does not read', function()
  rejects(raw('d1.safetensors', '{' .. entry('h', 'C64', { 2 }, 0, 16) .. '}', string.rep('\0', 16)), "tensor 'h' has dtype C64", 'lat does not read', 'F32, F16, BF16 and F64 as float32')
  rejects(raw('d2.safetensors', '{' .. entry('h', 'F33', { 1 }, 0, 4) .. '}', '\0\0\0\0'), "unknown dtype 'F33'")
  rejects(raw('d3.safetensors', '{' .. entry('h', 'f32', { 1 }, 0, 4) .. '}', '\0\0\0\0'), "unknown dtype 'f32'")
end)

H.test('size mismatch between shape and offsets', function()
  rejects(raw('s1.safetensors', '{' .. entry('w', 'F32', { 3 }, 0, 8) .. '}', string.rep('\0', 8)),
    "tensor 'w'", 'size mismatch', 'shape [3] of F32 needs 12 bytes', '[0, 8] hold 8')
  rejects(raw('s2.safetensors', '{' .. entry('w', 'I32', { 2, 0 }, 0, 4) .. '}', string.rep('\0', 4)), 'size mismatch', 'needs 0 bytes')
end)

H.test('corrupt zstd streams', function()
  lat.manual_seed(3)
  lat.save(DIR .. '/z.safetensors.zst', { w = lat.randn(10000) })
  local z = slurp(DIR .. '/z.safetensors.zst')
  local mid = math.floor(#z / 2)
  local flipped = z:sub(1, mid - 1) .. string.char((z:byte(mid) + 77) % 256) .. z:sub(mid + 1)
  rejects(spit(DIR .. '/zc.safetensors.zst', flipped), 'corrupt zstd stream')
  rejects(spit(DIR .. '/zc2.safetensors.zst', z:sub(1, 4) .. string.rep('\255', 40)), 'zstd')
  -- a checksum that does not match
  rejects(spit(DIR .. '/zc3.safetensors.zst', z:sub(1, -2) .. string.char((z:byte(#z) + 1) % 256)), 'corrupt zstd stream', 'checksum')
end)

H.test('random corruptions: each file loads or is rejected with a message naming it', function()
  local rng = lat.Generator(11)
  local function rand(n) return math.floor(lat.rand({}, { rng = rng }):item() * n) end
  local ts = { a = lat.randn(5, 3), b = lat.tensor({ 1, 2, 3 }, 'int32'), c = lat.full({}, 9, 'uint8') }
  local rejected = 0
  for _, name in ipairs{ 'fuzz.safetensors', 'fuzz.safetensors.zst' } do
    local p = DIR .. '/' .. name
    lat.save(p, ts, { metadata = { k = 'v' } })
    local good = slurp(p)
    for _ = 1, 300 do
      local s = good
      for _ = 1, 1 + rand(3) do
        local i, kind = 1 + rand(#s), rand(4)
        if kind == 0 then s = s:sub(1, i - 1) .. string.char(rand(256)) .. s:sub(i + 1)   -- replace a byte
        elseif kind == 1 then s = s:sub(1, i - 1) .. s:sub(i + 1)                          -- drop a byte
        elseif kind == 2 then s = s:sub(1, i) .. string.char(rand(256)) .. s:sub(i + 1)    -- insert a byte
        else s = s:sub(1, i) end                                                           -- cut the file
      end
      local q = spit(DIR .. '/fuzzed_' .. name, s)
      local ok, err = pcall(lat.load, q)
      if not ok then
        rejected = rejected + 1
        H.assert(tostring(err):find('checkpoint ' .. q .. ': ', 1, true), 'message does not name the file: ' .. tostring(err))
      end
    end
  end
  H.assert(rejected > 400, 'few corruptions were noticed: ' .. rejected)
end)

H.test('the library keeps working after rejecting files, without leaking', function()
  lat.collect()
  local live = lat.memory().live
  for _ = 1, 200 do
    for _, p in ipairs{ 'trunc.safetensors', 'o3.safetensors', 'zc.safetensors.zst', 'trunc.safetensors.zst', 'json20.safetensors' } do
      pcall(lat.load, DIR .. '/' .. p)
    end
  end
  lat.collect()
  H.assert(lat.memory().live <= live + 4096, ('live bytes grew from %d to %d'):format(live, lat.memory().live))
  same_set(lat.load(DIR .. '/rt.safetensors.zst'), fixture())
end)

-- ---------------------------------------------------------------- an independent reader and writer

local PY = [=[
import json, struct, sys, numpy as np
DT = {'F32': '<f4', 'I32': '<i4', 'U8': 'u1'}
def read(path):  # safetensors: u64 header length, JSON header, data
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', {})
    out = {k: np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]],
                            dtype=DT[v['dtype']]).reshape(v['shape']) for k, v in h.items()}
    return out, meta
def write(path, tensors, meta):
    h, data = {'__metadata__': meta}, b''
    for k, a in tensors.items():
        dt = [d for d, s in DT.items() if np.dtype(s) == a.dtype][0]
        h[k] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [len(data), len(data) + a.nbytes]}
        data += np.ascontiguousarray(a).tobytes()
    hb = json.dumps(h).encode()
    open(path, 'wb').write(struct.pack('<Q', len(hb)) + hb + data)
def dump(ts, meta):
    vals = lambda a: [float(x) if np.isfinite(x) else repr(float(x)) for x in a.ravel()] if a.dtype.kind == 'f' else a.ravel().tolist()
    print(json.dumps({'meta': meta, 'tensors': {k: {'dtype': str(a.dtype), 'shape': list(a.shape), 'values': vals(a)} for k, a in ts.items()}}))
if sys.argv[1] == 'read':
    dump(*read(sys.argv[2]))
else:
    ts = {'w': (np.arange(12, dtype='<f4').reshape(3, 4) - 5) / 7, 's': np.array(3.25, '<f4'),
          'e': np.zeros((0, 2), '<f4'), 'ids': np.array([-5, 0, 2**31 - 1], '<i4'),
          'px': np.arange(256, dtype='u1').reshape(16, 16), 'nan': np.array([np.nan, -np.inf], '<f4')}
    meta = {'from': 'numpy', 'note': 'na\u00efve \u2713 \U0001F600'}
    write(sys.argv[2], ts, meta)
    dump(ts, meta)
]=]
local script = spit(DIR .. '/ref_safetensors.py', PY)

local function python(cmd, path)
  local out = sh(('%s %s %s %s'):format(PYTHON, script, cmd, path))
  local ok, v = pcall(cjson.decode, out)
  H.assert(ok and type(v) == 'table', 'python failed: ' .. out, 2)
  return v
end

local NP_DTYPES = { float32 = 'float32', int32 = 'int32', uint8 = 'uint8' }

-- t (lat) against d (python's dump): dtype, shape and every value
local function matches(t, d, what)
  H.assert(t, what .. ': missing in lat', 2)
  H.assert(NP_DTYPES[t.dtype] == d.dtype, ('%s: dtype %s vs numpy %s'):format(what, t.dtype, d.dtype), 2)
  H.assert(table.concat(t.shape, ',') == table.concat(d.shape, ','), what .. ': shapes differ', 2)
  local flat = H.flat(t)
  H.assert(#flat == #d.values, what .. ': element counts differ', 2)
  for k, v in ipairs(d.values) do
    local x = flat[k]
    local ok
    if type(v) == 'string' then
      ok = (v == 'nan' and x ~= x) or (v == 'inf' and x == 1 / 0) or (v == '-inf' and x == -1 / 0)
    else
      ok = x == v
    end
    H.assert(ok, ('%s: element %d is %.9g in lat, %s in numpy'):format(what, k, x, tostring(v)), 2)
  end
end

local function matches_all(ts, dump)
  local n = 0
  for k, d in pairs(dump.tensors) do matches(ts[k], d, "tensor '" .. k .. "'"); n = n + 1 end
  for k in pairs(ts) do H.assert(dump.tensors[k], "numpy lacks tensor '" .. k .. "'", 2) end
  return n
end

local have_zstd = sh('command -v zstd') ~= ''

H.test('numpy reads what lat writes (and zstd -d what lat compresses)', function()
  local ts = fixture()
  local meta = { step = '7', note = 'naïve ✓' }
  lat.save(DIR .. '/py.safetensors', ts, { metadata = meta })
  local d = python('read', DIR .. '/py.safetensors')
  H.assert(matches_all(ts, d) == 11, 'not every tensor compared')
  H.assert(d.meta.step == '7' and d.meta.note == 'naïve ✓', 'numpy sees other metadata')
  if not have_zstd then print('     (zstd command not found: .zst part skipped)') return end
  lat.save(DIR .. '/py.safetensors.zst', ts, { metadata = meta })
  local out = sh(('zstd -q -d -f -o %s/py_unz.safetensors %s/py.safetensors.zst && echo ok'):format(DIR, DIR))
  H.assert(out:find('ok'), 'zstd -d failed: ' .. out)
  H.assert(slurp(DIR .. '/py_unz.safetensors') == slurp(DIR .. '/py.safetensors'), 'the .zst payload differs from the plain file')
  matches_all(ts, python('read', DIR .. '/py_unz.safetensors'))
end)

H.test('lat reads what numpy writes (and what zstd compresses, in several frames)', function()
  local p = DIR .. '/from_py.safetensors'
  local d = python('write', p)
  local ts, meta = lat.load(p)
  H.assert(matches_all(ts, d) == 6, 'not every tensor compared')
  H.assert(meta.from == 'numpy' and meta.note == 'naïve ✓ 😀', 'metadata differs: ' .. tostring(meta.note))
  if not have_zstd then return end
  local out = sh(('zstd -q -f -o %s.zst %s && echo ok'):format(p, p))
  H.assert(out:find('ok'), 'zstd failed: ' .. out)
  matches_all(lat.load(p .. '.zst'), d)
  -- two frames back to back (the split falls inside the header), as `cat a.zst b.zst` makes
  out = sh(('head -c 100 %s | zstd -q -c > %s.2.zst && tail -c +101 %s | zstd -q -c >> %s.2.zst && echo ok'):format(p, p, p, p))
  H.assert(out:find('ok'), 'zstd failed: ' .. out)
  matches_all(lat.load(p .. '.2.zst'), d)
  -- and a compressed file with bytes after the data
  sh(('cat %s > %s.g && printf xyz >> %s.g && zstd -q -f -o %s.g.zst %s.g'):format(p, p, p, p, p))
  rejects(p .. '.g.zst', '3 bytes after the last tensor')
end)

H.test('lat.models.load checks the saved model options before building anything', function()
  local function hostile(name, model, config)
    local p = DIR .. '/' .. name .. '.safetensors'
    lat.save(p, { w = lat.zeros(1) }, { metadata = { model = model, config = config } })
    return p
  end
  local p = hostile('mlp_huge', 'MLP', '{"sizes":[2147483647,2147483647]}')
  H.assert(#slurp(p) < 200, 'the hostile file is small')
  local cases = {
    { 'mlp_huge', 'MLP', '{"sizes":[2147483647,2147483647]}', 'at least 461168601413242', 'holds 1 values' },
    { 'mlp_big', 'MLP', '{"sizes":[100000,100000]}', 'parameters' },
    { 'mlp_wrap', 'MLP', '{"sizes":[4294967296,4294967296]}', "field 'sizes'", 'integers from 0 to 2^31 - 1' },
    { 'mlp_frac', 'MLP', '{"sizes":[1.5,2]}', "field 'sizes' is [1.5,2]" },
    { 'mlp_str', 'MLP', '{"sizes":"784,10"}', "field 'sizes'" },
    { 'mlp_obj', 'MLP', '{"sizes":{"1":2}}', "field 'sizes'" },
    { 'mlp_none', 'MLP', '{}', "field 'sizes' is missing" },
    { 'not_object', 'MLP', '5', 'not a JSON object' },
    { 'gpt_novocab', 'GPT', '{"max_len":8}', "field 'vocab' is missing" },
    { 'gpt_layers', 'GPT', '{"vocab":4,"max_len":4,"dim":8,"heads":2,"layers":1000000000}', 'parameters' },
    { 'gpt_dim', 'GPT', '{"vocab":4,"max_len":4,"dim":-8}', "field 'dim' is -8", 'from 1 to 2^31 - 1' },
    { 'gpt_drop', 'GPT', '{"vocab":4,"max_len":4,"dropout":2}', "field 'dropout' is 2", '[0, 1)' },
    { 'tc_pad', 'TransformerClassifier', '{"vocab":4,"max_len":4,"pad_id":0.5}', "field 'pad_id'" },
    { 'resnet_lists', 'ResNet', '{"widths":[4,8],"blocks":[1]}', "'widths' and 'blocks' have 2 and 1 entries" },
    { 'cnn_width', 'SmallCNN', '{"width":1e300}', "field 'width'" },
    { 'cnn_bias', 'SmallCNN', '{"bias":"no"}', "field 'bias'", 'true or false' },
    { 'block', 'BasicBlock', '{}', 'no lat.models class recorded' },
  }
  local before = lat.memory().peak
  for _, c in ipairs(cases) do
    local path = hostile(c[1], c[2], c[3])
    local ok, err = pcall(H.raises, function() lat.models.load(path) end, path, unpack(c, 4))
    H.assert(ok, c[1] .. ': ' .. tostring(err))
  end
  H.assert(lat.memory().peak - before < 2^20, 'the rejected files allocated memory')
  -- a real model's options still pass, unknown fields are ignored
  local m = lat.models.MLP{ sizes = { 3, 4, 2 } }
  local path = DIR .. '/mlp_ok.safetensors'
  lat.models.save(m, path)
  H.near(lat.models.load(path)(lat.ones(1, 3)), m(lat.ones(1, 3)), 0, 'reloaded MLP')
end)

-- A zstd frame written by hand: the safetensors header in a raw block, then `zeros` bytes of
-- data as run-length blocks of 128 KiB, 4 bytes each (how a 33 KB file decodes to 1 GB). With
-- sized, the frame header states the content size.
local function zstd_bomb(name, zeros, sized)
  local header = '{"w":{"dtype":"U8","shape":[' .. zeros .. '],"data_offsets":[0,' .. zeros .. ']}}'
  header = header .. string.rep(' ', (8 - #header % 8) % 8)
  local head = le64(#header) .. header
  local function u24(v) return string.char(v % 256, math.floor(v / 256) % 256, math.floor(v / 65536)) end
  local out = { '\40\181\47\253', sized and '\192' or '\0', '\80' } -- magic, descriptor, 1 MiB window
  if sized then out[#out + 1] = le64(#head + zeros) end
  out[#out + 1] = u24(#head * 8) .. head -- a raw block
  local block = 128 * 1024
  for left = zeros, 1, -block do
    local n = math.min(block, left)
    out[#out + 1] = u24(n * 8 + 2 + (left <= block and 1 or 0)) .. '\0' -- RLE, last flag
  end
  return spit(DIR .. '/' .. name, table.concat(out))
end

-- loads path in a fresh process (after lat.set_read_limit(limit) if given); the load must fail
-- at once with each of the strings in the message and the process's peak memory must stay low
local function refuses_cheaply(path, limit, ...)
  local out, peak = H.child(("%s local t0 = require('lat.core.sys').now(); local ok, err = pcall(lat.load, %q)\n" ..
    "print(ok, err); print(('seconds %%.3f'):format(require('lat.core.sys').now() - t0))")
    :format(limit and ('lat.set_read_limit(%d)'):format(limit) or '', path))
  H.assert(out:find('^false'), 'the bomb loaded: ' .. out, 2)
  for _, s in ipairs({ path, ... }) do H.assert(out:find(s, 1, true), ("message lacks '%s': %s"):format(s, out), 2) end
  H.assert(peak < 48 * 2^20, ('peak memory %.0f MiB: %s'):format(peak / 2^20, out), 2)
  H.assert(tonumber(out:match('seconds ([%d.]+)')) < 1, 'the refusal took long: ' .. out, 2)
end

H.test('zstd bombs are refused before decoding them, with or without a stated size', function()
  local MiB = 2^20
  local ok = zstd_bomb('bomb_ok.safetensors.zst', 4 * MiB, true)
  H.assert(lat.load(ok).w:numel() == 4 * MiB, 'the hand-made frame is valid zstd')
  local sized = zstd_bomb('bomb_sized.safetensors.zst', 256 * MiB, true)
  local unsized = zstd_bomb('bomb_unsized.safetensors.zst', 256 * MiB, false)
  H.assert(#slurp(sized) < 10000, 'the bomb is small')
  -- under the default read limit, 256 MiB from 8 KB is beyond any plausible compression ratio
  refuses_cheaply(sized, nil, '8289 compressed bytes would decode to 2684355', 'decompression bomb', 'read limit')
  refuses_cheaply(unsized, nil, 'decompression bomb', 'read limit')
  -- and under a limit the caller set, a real (compressible) checkpoint beyond it is refused too
  lat.save(DIR .. '/zeros.safetensors.zst', { w = lat.zeros(4 * MiB) })
  refuses_cheaply(DIR .. '/zeros.safetensors.zst', MiB, 'would decode to', 'read limit of 1048576 bytes')
  refuses_cheaply(ok, MiB, 'read limit of 1048576 bytes')
  lat.save(DIR .. '/plain_big.safetensors', { w = lat.zeros(MiB) })
  refuses_cheaply(DIR .. '/plain_big.safetensors', MiB, 'read limit of 1048576 bytes')
  H.assert(lat.load(DIR .. '/zeros.safetensors.zst').w:numel() == 4 * MiB, 'the default limit reads it')
  -- a caller who sets a limit has said what it accepts: the ratio check then stands aside, so a
  -- genuine all-zero checkpoint that compresses beyond it still loads
  lat.set_read_limit(512 * MiB)
  local ok_zeros, t = pcall(lat.load, sized)
  lat.set_read_limit(0)
  H.assert(ok_zeros and t.w:numel() == 256 * MiB, 'under a set limit the zero file loads: ' .. tostring(t))
end)

H.finish()
