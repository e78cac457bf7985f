-- lat.data on small files the test writes: IDX (plain, gzip'd, corrupt), PNG round trips and
-- corrupt PNGs, image_folder, datasets and DataLoader, transforms, the byte tokenizer, and the
-- errors for missing or corrupt data set files.
local H = require 'harness'
local lat = require 'lat'
local data = lat.data

local tmp = os.tmpname()
os.remove(tmp)
tmp = tmp .. '.lat-data'
assert(os.execute(("mkdir -p '%s'"):format(tmp)) == 0)

local function write(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
end
local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end
local function sh(cmd) assert(os.execute(cmd) == 0, 'command failed: ' .. cmd) end
local function list(t) return table.concat(H.flat(t), ',') end

-- an IDX header: magic, type, dims (big-endian uint32 each)
local function idx_header(dims, dtype)
  local s = { string.char(0, 0, dtype or 8, #dims) }
  for _, d in ipairs(dims) do
    s[#s + 1] = string.char(math.floor(d / 2 ^ 24) % 256, math.floor(d / 2 ^ 16) % 256, math.floor(d / 256) % 256, d % 256)
  end
  return table.concat(s)
end
local function payload(n)
  local b = {}
  for k = 0, n - 1 do b[k + 1] = string.char((k * 7) % 256) end
  return table.concat(b)
end

-- ---------------------------------------------------------------- IDX

H.test('read_idx: plain and gzip-compressed files give the header shape and the bytes', function()
  local path = tmp .. '/a.idx'
  write(path, idx_header{ 2, 3, 4 } .. payload(24))
  sh(("gzip -c '%s' > '%s.gz'"):format(path, path))
  for _, p in ipairs({ path, path .. '.gz' }) do
    local t = data.read_idx(p)
    H.assert(t.dtype == 'uint8' and table.concat(t.shape, ',') == '2,3,4', p .. ': ' .. table.concat(t.shape, ','))
    for k = 0, 23 do H.assert(t.u[k] == (k * 7) % 256, 'byte ' .. k) end
  end
  local v = data.read_idx((function() write(tmp .. '/v.idx', idx_header{ 5 } .. '\1\2\3\4\5') return tmp .. '/v.idx' end)())
  H.assert(list(v) == '1,2,3,4,5')
end)

H.test('read_idx: hostile headers and truncated files are errors naming the file', function()
  local cases = {
    { 'magic.idx', string.char(1, 0, 8, 1, 0, 0, 0, 1, 0), 'not an IDX file' },
    { 'dtype.idx', idx_header({ 2 }, 0x0D) .. '\0\0\0\0\0\0\0\0', 'only 0x08' },
    { 'ndim0.idx', string.char(0, 0, 8, 0), 'declares 0 dimensions' },
    { 'ndim9.idx', idx_header{ 1, 1, 1, 1, 1, 1, 1, 1, 1 } .. '\0', 'declares 9 dimensions' },
    { 'dim0.idx', idx_header{ 3, 0 }, 'dimension 2 has size 0' },
    { 'short.idx', idx_header{ 2, 3, 4 } .. payload(20), 'truncated: 20 of 24 data bytes' },
    { 'head.idx', idx_header{ 2, 3, 4 }:sub(1, 9), 'truncated inside its header' },
    { 'tiny.idx', '\0\0', 'truncated' },
    { 'empty.idx', '', 'truncated' },
    { 'extra.idx', idx_header{ 2, 2 } .. payload(5), 'bytes after the 4 data bytes' },
    { 'huge.idx', idx_header{ 2147483647, 2147483647 }, 'exceeds' },
    -- 10^10 bytes declared, 3 present: an error without allocating the declared size
    { 'big.idx', idx_header{ 100000, 100000 } .. 'abc', 'truncated: 3 of 10000000000' },
  }
  for _, c in ipairs(cases) do
    local path = tmp .. '/' .. c[1]
    write(path, c[2])
    H.raises(function() data.read_idx(path) end, c[3], path)
  end
  H.raises(function() data.read_idx(tmp .. '/nothing.idx') end, 'cannot open', 'nothing.idx')
end)

H.test('read_idx: truncated or corrupt gzip streams are errors', function()
  local path = tmp .. '/z.idx'
  write(path, idx_header{ 64, 64 } .. payload(4096))
  sh(("gzip -c '%s' > '%s.gz'"):format(path, path))
  local gz = read(path .. '.gz')
  write(tmp .. '/cut.idx.gz', gz:sub(1, math.floor(#gz / 2)))
  H.raises(function() data.read_idx(tmp .. '/cut.idx.gz') end, 'cut.idx.gz', 'truncated')
  write(tmp .. '/cut8.idx.gz', gz:sub(1, #gz - 4)) -- data complete, gzip trailer cut
  H.raises(function() data.read_idx(tmp .. '/cut8.idx.gz') end, 'cut8.idx.gz', 'truncated')
  local bad = gz:sub(1, 20) .. string.rep('\255', 40) .. gz:sub(61)
  write(tmp .. '/bad.idx.gz', bad)
  H.raises(function() data.read_idx(tmp .. '/bad.idx.gz') end, 'bad.idx.gz')
end)

-- decompression bombs: the load must fail at once, naming the file and the limit, with the
-- child process's peak memory far below what the file would decode to
local MiB = 2 ^ 20
local function refuses_cheaply(reader, path, limit, ...)
  local code = ("local t0 = require('lat.core.sys').now(); %s local ok, err = pcall(lat.%s, %q)\n" ..
    "print(ok, err); print(('seconds %%.3f'):format(require('lat.core.sys').now() - t0))")
    :format(limit and ('lat.set_read_limit(%d)'):format(limit) or '', reader, path)
  local out, peak = H.child(code)
  H.assert(out:find('^false'), 'the bomb loaded: ' .. out, 2)
  for _, s in ipairs({ path, ... }) do H.assert(out:find(s, 1, true), ("message lacks '%s': %s"):format(s, out), 2) end
  H.assert(peak < 48 * MiB, ('peak memory %.0f MiB'):format(peak / MiB), 2)
  H.assert(tonumber(out:match('seconds ([%d.]+)')) < 1, 'the refusal took long: ' .. out, 2)
end

H.test('read_idx: gzip bombs are refused before decoding, by the read limit or the ratio', function()
  local n = 200 * MiB
  local path = tmp .. '/bomb.idx.gz'
  write(tmp .. '/bomb.head', idx_header{ n })
  sh(("(cat '%s/bomb.head'; head -c %d /dev/zero) | gzip -c > '%s'"):format(tmp, n, path))
  H.assert(#read(path) < 300000, 'the bomb is small')
  refuses_cheaply('data.read_idx', path, 16 * MiB, 'read_idx', 'would decode to 209715200 bytes', 'read limit of 16777216 bytes')
  -- under the default limit, a header that claims more than gzip can hold in the file is refused
  write(tmp .. '/liar.idx', idx_header{ 128, 1024, 1024 } .. payload(100))
  sh(("gzip -c '%s/liar.idx' > '%s/liar.idx.gz'"):format(tmp, tmp))
  refuses_cheaply('data.read_idx', tmp .. '/liar.idx.gz', nil, 'would decode to 134217728', 'decompression bomb', 'read limit')
  write(tmp .. '/liar2.idx', idx_header{ 2 ^ 31 - 1, 4 } .. payload(100))
  sh(("gzip -c '%s/liar2.idx' > '%s/liar2.idx.gz'"):format(tmp, tmp))
  refuses_cheaply('data.read_idx', tmp .. '/liar2.idx.gz', nil, 'decompression bomb')
  -- a plain file is held to the limit too, and the limit can be raised again
  write(tmp .. '/plain.idx', idx_header{ 64, 64 } .. payload(4096))
  local old = lat.set_read_limit(1000)
  local ok, err = pcall(data.read_idx, tmp .. '/plain.idx')
  lat.set_read_limit(old)
  H.assert(not ok and err:find('read limit of 1000 bytes', 1, true), tostring(err))
  H.assert(data.read_idx(tmp .. '/plain.idx'):numel() == 4096)
  -- and so are the files lat.data reads whole from Lua (messages, texts)
  old = lat.set_read_limit(1000)
  ok, err = pcall(require('lat.data.files').read_file, tmp .. '/plain.idx')
  lat.set_read_limit(old)
  H.assert(not ok and err:find('plain.idx: 4108 bytes, more than the read limit of 1000 bytes', 1, true), tostring(err))
  H.assert(#require('lat.data.files').read_file(tmp .. '/plain.idx') == 4108)
  H.raises(function() lat.set_read_limit(-1) end, 'set_read_limit')
  H.raises(function() lat.set_read_limit(1.5) end, 'set_read_limit')
end)

-- writes PNG files by hand with Python's zlib, independently of libpng: png(path, w, h, depth,
-- color type, rows (a list or a generator of filterless rows), extra chunks)
local PNG_PY = [[
import struct, sys, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
def png(path, w, h, depth, ctype, rows, extra=b''):
    z = zlib.compressobj(9)
    idat = b''.join(z.compress(b'\0' + r) for r in rows) + z.flush()
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 0))
        + extra + chunk(b'IDAT', idat) + chunk(b'IEND', b''))
]]
local function python_png(lines)
  write(tmp .. '/mk.py', PNG_PY .. lines)
  sh(("/usr/bin/python3 '%s/mk.py' '%s'"):format(tmp, tmp))
end

-- a gray image of zeros whose header says w x h but whose data holds only the first `rows` rows
local function zero_png(name, w, h, rows)
  python_png(("png(sys.argv[1] + '/%s', %d, %d, 8, 0, (bytes(%d) for _ in range(%d)))\n"):format(name, w, h, w, rows))
  return tmp .. '/' .. name
end

H.test('read_png: decompression bombs are refused before decoding', function()
  local path = zero_png('bomb.png', 10000, 10000, 10000) -- 100 MB of pixels in about 100 KB
  H.assert(#read(path) < 200000, 'the bomb is small')
  refuses_cheaply('io.read_png', path, 16 * MiB, 'read_png', 'read limit of 16777216 bytes')
  -- the header claims rows that the file's few bytes cannot inflate to
  refuses_cheaply('io.read_png', zero_png('liar.png', 30000, 30000, 10), nil, 'decompression bomb', 'read limit')
  local t = lat.io.read_png(zero_png('small.png', 30, 20, 20))
  H.assert(t:numel() == 600 and t:float():sum():item() == 0, 'a small image still loads')
end)

-- ---------------------------------------------------------------- PNG

H.test('PNG: gray, gray+alpha, RGB and RGBA round trips; float32 scaled and clamped', function()
  local g = lat.Generator(3)
  for _, c in ipairs({ 1, 2, 3, 4 }) do
    local img = lat.randint(0, 256, { c, 5, 7 }, { rng = g, dtype = 'uint8' })
    local path = ('%s/u%d.png'):format(tmp, c)
    lat.io.write_png(path, img)
    local back = lat.io.read_png(path)
    H.assert(back.dtype == 'uint8' and table.concat(back.shape, ',') == c .. ',5,7', table.concat(back.shape, ','))
    H.assert(list(back) == list(img), c .. ' channels differ')
  end
  local f = lat.rand({ 3, 4, 6 }, { rng = g })
  f:set(-1, 1, 1, 1):set(2, 2, 1, 1):set(0 / 0, 3, 1, 1)
  lat.io.write_png(tmp .. '/f.png', f)
  local back = lat.io.read_png(tmp .. '/f.png')
  for k = 0, f:numel() - 1 do
    local v = f.f[k]
    local want = v ~= v and 0 or math.floor(math.max(0, math.min(1, v)) * 255 + 0.5)
    H.assert(back.u[k] == want, ('element %d: %d, expected %d from %g'):format(k, back.u[k], want, v))
  end
  lat.io.write_png(tmp .. '/hw.png', lat.zeros(3, 2))
  H.assert(table.concat(lat.io.read_png(tmp .. '/hw.png').shape, ',') == '1,3,2')
end)

H.test('PNG: palette, 16-bit and low-bit images are normalised to 8-bit channels', function()
  python_png([[
d = sys.argv[1]
png(d + '/pal.png', 2, 1, 8, 3, [bytes([0, 1])], chunk(b'PLTE', bytes([255, 0, 0, 0, 0, 255])))
png(d + '/g16.png', 3, 1, 16, 0, [struct.pack('>HHH', 0, 65535, 32896)])
png(d + '/g1.png', 8, 1, 1, 0, [bytes([0b10100000])])
png(d + '/rgb16.png', 1, 1, 16, 2, [struct.pack('>HHH', 65535, 0, 257)])
]])
  local pal = lat.io.read_png(tmp .. '/pal.png')
  H.assert(table.concat(pal.shape, ',') == '3,1,2' and list(pal) == '255,0,0,0,0,255', 'palette: ' .. list(pal))
  local g16 = lat.io.read_png(tmp .. '/g16.png')
  H.assert(table.concat(g16.shape, ',') == '1,1,3' and list(g16) == '0,255,128', '16-bit gray: ' .. list(g16))
  local g1 = lat.io.read_png(tmp .. '/g1.png')
  H.assert(list(g1) == '255,0,255,0,0,0,0,0', '1-bit gray: ' .. list(g1))
  H.assert(list(lat.io.read_png(tmp .. '/rgb16.png')) == '255,0,1', '16-bit RGB')
end)

H.test('PNG: corrupt, truncated and non-PNG files are errors naming the file, never a crash', function()
  lat.io.write_png(tmp .. '/ok.png', lat.rand(3, 16, 16))
  local ok = read(tmp .. '/ok.png')
  local idat = ok:find('IDAT', 1, true)
  write(tmp .. '/corrupt.png', ok:sub(1, idat + 8) .. string.rep('\0', 30) .. ok:sub(idat + 39))
  H.raises(function() lat.io.read_png(tmp .. '/corrupt.png') end, 'corrupt.png', 'corrupt')
  write(tmp .. '/trunc.png', ok:sub(1, idat + 10))
  H.raises(function() lat.io.read_png(tmp .. '/trunc.png') end, 'trunc.png', 'corrupt')
  write(tmp .. '/hdr.png', ok:sub(1, 20))
  H.raises(function() lat.io.read_png(tmp .. '/hdr.png') end, 'hdr.png')
  write(tmp .. '/text.png', 'hello, not a png at all')
  H.raises(function() lat.io.read_png(tmp .. '/text.png') end, 'text.png', 'not a PNG')
  H.raises(function() lat.io.read_png(tmp .. '/none.png') end, 'none.png', 'cannot open')
  H.raises(function() lat.io.write_png(tmp .. '/five.png', lat.zeros(5, 2, 2)) end, '5 channels')
  H.raises(function() lat.io.write_png(tmp .. '/i.png', lat.zeros({ 2, 2 }, 'int32')) end, 'uint8 or float32')
  H.raises(function() lat.io.write_png(tmp .. '/no/such/dir.png', lat.zeros(2, 2)) end, 'cannot create')
end)

H.test('image_folder: classes sorted by name, files sorted, x float32 [N, C, H, W] in [0, 1]', function()
  local root = tmp .. '/imgs'
  sh(("mkdir -p '%s/dog' '%s/cat' '%s/.hidden'"):format(root, root, root))
  local cat_a = lat.full({ 3, 4, 5 }, 255, 'uint8')
  local cat_b = lat.zeros({ 3, 4, 5 }, 'uint8')
  local dog = lat.full({ 3, 4, 5 }, 51, 'uint8')
  lat.io.write_png(root .. '/cat/b.png', cat_b)
  lat.io.write_png(root .. '/cat/a.png', cat_a)
  lat.io.write_png(root .. '/dog/c.PNG', dog)
  write(root .. '/cat/notes.txt', 'not an image')
  write(root .. '/readme.txt', 'a file beside the class folders')
  local ds = data.image_folder(root)
  H.assert(table.concat(ds.classes, ',') == 'cat,dog', table.concat(ds.classes, ','))
  H.assert(ds:len() == 3 and table.concat(ds.tensors.x.shape, ',') == '3,3,4,5')
  H.assert(ds.tensors.x.dtype == 'float32' and list(ds.tensors.y) == '0,0,1')
  H.assert(ds.files[1]:match('cat/a.png$') and ds.files[3]:match('dog/c.PNG$'))
  H.near(ds:get(1).x:min():item(), 1, 0)
  H.near(ds:get(2).x:max():item(), 0, 0)
  H.near(ds:get(3).x:mean():item(), 0.2, 1e-6)
  lat.io.write_png(root .. '/dog/d.png', lat.zeros(1, 4, 5))
  H.raises(function() data.image_folder(root) end, 'd.png', 'all images must agree')
  write(root .. '/dog/d.png', 'broken')
  H.raises(function() data.image_folder(root) end, 'd.png', 'not a PNG')
  H.raises(function() data.image_folder(tmp .. '/nowhere') end, 'cannot open the folder')
end)

-- ---------------------------------------------------------------- datasets and loading

local function tensor_ds(n)
  local x = lat.arange(n):reshape(n, 1):mul(10)
  return data.TensorDataset{ x = x, y = lat.arange(n, 'int32') }
end

local function orders(loader, epoch)
  local seen = {}
  for b in loader:iter(epoch) do seen[#seen + 1] = list(b.y) end
  return table.concat(seen, '|')
end

H.test('TensorDataset: get, batch by index_select, field checks', function()
  local ds = tensor_ds(5)
  H.assert(ds:len() == 5)
  local ex = ds:get(3)
  H.assert(ex.x:item() == 20 and ex.y:item() == 2)
  local b = ds:batch(lat.tensor({ 4, 0 }, 'int32'))
  H.assert(list(b.x) == '40,0' and list(b.y) == '4,0')
  H.raises(function() ds:get(6) end, 'out of range')
  H.raises(function() data.TensorDataset{ x = lat.zeros(3), y = lat.zeros(4) } end, 'rows')
  H.raises(function() data.TensorDataset{ x = 5 } end, 'not a tensor')
end)

H.test('DataLoader: batch count, last partial batch, drop_last, in-order epochs', function()
  local ds = tensor_ds(10)
  local l = data.DataLoader(ds, { batch_size = 4 })
  H.assert(#l == 3 and l:len() == 3, 'batches: ' .. #l)
  H.assert(orders(l) == '0,1,2,3|4,5,6,7|8,9', orders(l))
  local b = l:iter()()
  H.assert(table.concat(b.x.shape, ',') == '4,1' and b.y.dtype == 'int32')
  H.assert(list(b.index) == '0,1,2,3', 'index field')
  local d = data.DataLoader(ds, { batch_size = 4, drop_last = true })
  H.assert(#d == 2 and orders(d) == '0,1,2,3|4,5,6,7')
  H.assert(#data.DataLoader(ds, { batch_size = 20 }) == 1 and #data.DataLoader(ds, { batch_size = 20, drop_last = true }) == 0)
  H.raises(function() data.DataLoader(ds, { batch_size = 0 }) end, 'batch_size')
  H.raises(function() data.DataLoader({}, {}) end, 'expected a dataset')
end)

H.test('DataLoader: shuffling is a permutation, reproducible by seed, different per epoch', function()
  local ds = tensor_ds(50)
  local a = data.DataLoader(ds, { batch_size = 8, shuffle = true, seed = 7 })
  local b = data.DataLoader(ds, { batch_size = 8, shuffle = true, seed = 7 })
  local c = data.DataLoader(ds, { batch_size = 8, shuffle = true, seed = 8 })
  local a1, a2 = orders(a), orders(a) -- epochs 1 and 2
  H.assert(a1 == orders(b) and a2 == orders(b), 'same seed, same orders')
  H.assert(a1 ~= a2, 'epochs 1 and 2 have the same order')
  H.assert(a1 ~= orders(c, 1), 'seeds 7 and 8 give the same order')
  H.assert(orders(c, 2) == orders(data.DataLoader(ds, { batch_size = 8, shuffle = true, seed = 8 }), 2),
    'epoch 2 alone reproduces epoch 2')
  local seen = {}
  for v in a1:gmatch('%d+') do
    H.assert(not seen[v], 'repeated ' .. v)
    seen[v] = true
  end
  local count = 0
  for _ in pairs(seen) do count = count + 1 end
  H.assert(count == 50, 'covers ' .. count)
  lat.manual_seed(1)
  local d1 = orders(data.DataLoader(ds, { batch_size = 8, shuffle = true }), 1)
  lat.manual_seed(1)
  local d2 = orders(data.DataLoader(ds, { batch_size = 8, shuffle = true }), 1)
  H.assert(d1 == d2, 'without a seed, lat.manual_seed fixes the order')
end)

H.test('transforms: compose applies in order, sees epoch and step, can be set later', function()
  local ds = tensor_ds(6)
  local calls = {}
  local function add1(b, info)
    calls[#calls + 1] = info.epoch .. ':' .. info.step
    b.x = b.x + 1
    return b
  end
  local function double(b) b.x = b.x * 2 return b end
  local l = data.DataLoader(ds, { batch_size = 3, transform = data.compose{ add1, double } })
  local xs = {}
  for b in l:iter() do xs[#xs + 1] = list(b.x) end
  H.assert(table.concat(xs, '|') == '2,22,42|62,82,102', table.concat(xs, '|'))
  H.assert(table.concat(calls, ' ') == '1:1 1:2', table.concat(calls, ' '))
  l.transform = { double, add1 } -- a list is composed
  H.assert(list(l:iter(5)().x) == '1,21,41')
  l.transform = function() end
  H.raises(function() l:iter()() end, 'returned nothing')
  H.raises(function() data.compose{ add1, 3 } end, 'entry 2')
end)

H.test('subset takes 1-based positions, in a Lua list or an int32 tensor alike', function()
  local t = tensor_ds(6)
  local from_list, from_tensor = t:subset{ 6, 2, 4 }, t:subset(lat.tensor({ 6, 2, 4 }, 'int32'))
  for k = 1, 3 do H.assert(from_list:get(k).y:item() == from_tensor:get(k).y:item(), 'the same example at ' .. k) end
  H.assert(from_tensor:get(1).y:item() == 5, 'position 6 is the sixth example')
  H.assert(orders(data.DataLoader(from_tensor, { batch_size = 2 })) == '5,1|3', 'and batches by index_select')
  H.assert(list(t:subset(lat.arange(1, 4, 'int32')):batch(lat.arange(3, 'int32')).y) == '0,1,2', 'the first three')
  H.raises(function() t:subset(lat.tensor({ 0, 1 }, 'int32')) end, 'position 0', 'out of range 1..6')
  H.raises(function() t:subset(lat.tensor({ 7 }, 'int32')) end, 'position 7', 'out of range 1..6')
end)

H.test('collate, ListDataset, map, subset and concat', function()
  local lds = data.ListDataset{
    { text = 'a', label = 1, w = 0.5, v = lat.tensor{ 1, 2 } },
    { text = 'bb', label = 0, w = 1, v = lat.tensor{ 3, 4 } },
    { text = 'ccc', label = 1, w = 2, v = lat.tensor{ 5, 6 } },
  }
  local b = data.DataLoader(lds, { batch_size = 3 }):iter()()
  H.assert(table.concat(b.text, ',') == 'a,bb,ccc')
  H.assert(b.label.dtype == 'int32' and list(b.label) == '1,0,1')
  H.assert(b.w.dtype == 'float32' and list(b.w) == '0.5,1,2')
  H.assert(table.concat(b.v.shape, ',') == '3,2' and list(b.v) == '1,2,3,4,5,6')
  H.assert(table.concat(lds:column('text'), '') == 'abbccc')
  local m = lds:map(function(ex, i) return { n = #ex.text * 10 + i } end)
  H.assert(m:len() == 3 and m:get(2).n == 22)
  local t = tensor_ds(6)
  local s = t:subset{ 6, 2, 4 }
  H.assert(s:len() == 3 and s:get(1).y:item() == 5)
  H.assert(orders(data.DataLoader(s, { batch_size = 2 })) == '5,1|3', 'subset batches by index_select')
  local s2 = data.subset(t, lat.tensor({ 2, 1 }, 'int32'))
  H.assert(s2:get(1).y:item() == 1)
  H.raises(function() t:subset{ 7 } end, 'out of range')
  local c = data.concat{ tensor_ds(2), tensor_ds(3) }
  H.assert(c:len() == 5 and list(c.tensors.y) == '0,1,0,1,2', 'tensor datasets concatenate into one')
  local doubled = t:map(function(ex) return { x = ex.x * 2, y = ex.y } end)
  local db = data.DataLoader(doubled, { batch_size = 4 }):iter()()
  H.assert(list(db.x) == '0,20,40,60' and list(db.y) == '0,1,2,3' and db.y.dtype == 'int32', 'examples of 0-d tensors stack')
  local mixed = data.concat{ lds, m }
  H.assert(mixed:len() == 6 and mixed:get(3).text == 'ccc' and mixed:get(4).n == 11)
end)

-- ---------------------------------------------------------------- byte tokenizer

H.test('bytes: encode/decode round trip with UTF-8, specials and errors', function()
  local B = data.bytes
  H.assert(B.vocab_size == 258 and B.PAD == 256 and B.BOS == 257)
  local s = 'Ahoy, Ishmael! naïve café — 日本語 ✓ \0 end'
  local ids = B.encode(s)
  H.assert(ids.dtype == 'int32' and ids:numel() == #s)
  for k = 1, #s do H.assert(ids.i[k - 1] == s:byte(k), 'byte ' .. k) end
  H.assert(B.decode(ids) == s, 'round trip')
  local e = B.encode('hi', { bos = true, eos = true })
  H.assert(list(e) == '257,104,105,257')
  H.assert(B.decode(e) == 'hi' and B.decode{ 104, 256, 105 } == 'hi')
  H.assert(B.encode(''):numel() == 0 and B.decode(B.encode('')) == '')
  H.raises(function() B.decode{ 104, 300 } end, 'outside')
end)

H.test('bytes: fixed-length padded batches and the tokenize transform', function()
  local B = data.bytes
  local ids, mask, len = B.batch({ 'abcdef', 'xy', '' }, 4)
  H.assert(table.concat(ids.shape, ',') == '3,4')
  H.assert(list(ids) == '97,98,99,100,120,121,256,256,256,256,256,256', list(ids))
  H.assert(list(mask) == '1,1,1,1,1,1,0,0,0,0,0,0' and list(len) == '4,2,0')
  local ids2 = B.batch({ 'abc' }, 3, { bos = true })
  H.assert(list(ids2) == '257,97,98')
  local ds = data.ListDataset{ { text = 'héllo', label = 1 }, { text = 'no', label = 0 } }
  local b = data.DataLoader(ds, { batch_size = 2, transform = B.tokenize{ len = 8 } }):iter()()
  H.assert(table.concat(b.x.shape, ',') == '2,8' and B.decode(b.x:select(1, 1)) == 'héllo')
  H.assert(b.mask:sum():item() == 8, 'mask counts 6 + 2 bytes')
end)

H.test('bytes: language-model windows shift by one', function()
  local B = data.bytes
  local ds = B.lm_dataset('abcdefghij', 4)
  H.assert(ds:len() == 2, 'windows: ' .. ds:len()) -- starts at a and e; i needs j as target
  local ex = ds:get(2)
  H.assert(B.decode(ex.x) == 'efgh' and B.decode(ex.y) == 'fghi')
  local over = B.lm_dataset('abcdefghij', 4, { stride = 1 })
  H.assert(over:len() == 6 and B.decode(over:get(6).y) == 'ghij')
  local seen = {}
  for batch in data.DataLoader(over, { batch_size = 4, shuffle = true, seed = 1 }):iter() do
    H.assert(table.concat(batch.x.shape, ',') == batch.x:size(1) .. ',4')
    for r = 1, batch.x:size(1) do
      local x, y = B.decode(batch.x:select(1, r)), B.decode(batch.y:select(1, r))
      H.assert(x:sub(2) == y:sub(1, 3), x .. ' / ' .. y)
      seen[x] = true
    end
  end
  H.assert(seen.abcd and seen.fghi)
  local docs = B.lm_dataset({ 'ab', 'cd' }, 2)
  H.assert(list(docs.tokens) == '97,98,257,99,100', 'documents joined by EOS')
  H.assert(B.lm_dataset('abc', 3):len() == 0)
end)

-- ---------------------------------------------------------------- data set errors

H.test('a missing or corrupt data set file names the file and datasets/fetch.sh', function()
  local root = tmp .. '/fakedata'
  H.raises(function() data.fashion_mnist('train', { root = root }) end,
    root .. '/fashion-mnist/train-images-idx3-ubyte.gz', 'is missing', 'datasets/fetch.sh')
  sh(("mkdir -p '%s/fashion-mnist'"):format(root))
  write(root .. '/fashion-mnist/t10k-images-idx3-ubyte.gz', idx_header{ 10000, 28, 28 } .. payload(100))
  H.raises(function() data.fashion_mnist('test', { root = root }) end,
    't10k-images-idx3-ubyte.gz', 'truncated', 'datasets/fetch.sh')
  write(root .. '/fashion-mnist/t10k-images-idx3-ubyte.gz', idx_header{ 3, 28, 28 } .. payload(3 * 784))
  write(root .. '/fashion-mnist/t10k-labels-idx1-ubyte.gz', idx_header{ 3 } .. '\0\1\2')
  H.raises(function() data.fashion_mnist('test', { root = root }) end, 'expected [10000, 28, 28]', 'datasets/fetch.sh')
  H.raises(function() data.fashion_mnist('dev') end, "'train' or 'test'")
  H.raises(function() data.spam('train', { root = root }) end, 'spam-assassin/data/easy-ham-1', 'datasets/fetch.sh')
  H.raises(function() data.moby_dick('train', { root = root }) end, 'moby-dick/data', 'datasets/fetch.sh')
  H.raises(function() data.sotu('test', { root = root }) end, 'sotu/data', 'datasets/fetch.sh')
  H.raises(function() data.spam('holdout') end, "'train', 'val', 'test'")
  sh(("mkdir -p '%s/sotu/data'"):format(root))
  write(root .. '/sotu/data/1790_george_washington_n.txt', 'Fellow-Citizens')
  H.raises(function() data.sotu('test', { root = root }) end, 'holds 1 addresses, expected 233', 'datasets/fetch.sh')
end)

H.test('email cleaning: Subject kept, other headers dropped, MIME decoded, HTML stripped', function()
  local E = data.email
  local msg = table.concat({
    'From someone  Thu Aug 22 12:36:23 2002',
    'Received: from x by y',
    'Subject: =?utf-8?B?SGVsbG8g?=  =?iso-8859-1?Q?w=F6rld_!?=',
    'Content-Type: multipart/mixed; boundary="XYZ"',
    '',
    'preamble',
    '--XYZ',
    'Content-Type: multipart/alternative; boundary=ALT',
    '',
    '--ALT',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Caf=E9 is a lo=',
    'ng line.',
    '--ALT',
    'Content-Type: text/html',
    '',
    '<p>HTML version</p>',
    '--ALT--',
    '--XYZ',
    'Content-Type: text/html',
    'Content-Transfer-Encoding: base64',
    '',
    'PGh0bWw+PGJvZHk+PGI+QnV5PC9iPiBub3cgJmFtcDsgc2F2ZTxicj5yZWFsbHk8L2JvZHk+PC9odG1sPg==',
    '--XYZ',
    'Content-Type: image/gif',
    'Content-Transfer-Encoding: base64',
    '',
    'R0lGODlhAQABAAAAACw=',
    '--XYZ--',
  }, '\n')
  local text = E.clean(msg)
  H.assert(text:sub(1, 23) == 'Subject: Hello wörld !', text:sub(1, 23))
  H.assert(not text:find('Received'), 'headers dropped')
  H.assert(text:find('Café is a long line.', 1, true), 'quoted-printable, us-ascii read as Windows-1252')
  H.assert(not text:find('HTML version'), 'multipart/alternative keeps the plain part')
  H.assert(text:find('Buy now & save\nreally', 1, true), 'base64 html: ' .. text)
  H.assert(not text:find('<') and not text:find('R0lG'), 'tags and attachments gone')
  H.assert(E.base64('aGVsbG8gd29ybGQ=') == 'hello world' and E.base64('YQ==') == 'a')
end)

local function equal(got, want, what)
  H.assert(got == want, ('%s: got %q, expected %q'):format(what or 'text', tostring(got), want), 2)
end

-- a message with one text part: its headers, then its body
local function message(headers, body)
  return table.concat(headers, '\n') .. '\n\n' .. body
end

H.test('email cleaning: bodies and subjects from their declared charsets to UTF-8', function()
  local E, cs = data.email, data.charset
  local function body(headers, bytes) return E.clean(message(headers, bytes)):match('\n\n(.*)$') end
  equal(body({ 'Content-Type: text/plain; charset=ISO-8859-1' }, 'Gr\252\223e aus M\252nchen, na\239ve caf\233'),
    'Grüße aus München, naïve café')
  equal(body({ 'Content-Type: text/plain; charset="windows-1252"' }, '\147Smart quotes\148 \150 \1285 \133 \137'),
    '“Smart quotes” – €5 … ‰')
  equal(body({ 'Content-Type: text/plain; charset=koi8-r' }, '\240\210\201\215\197\212, \205\201\210'), 'Привет, мир')
  equal(body({ 'Content-Type: text/plain; charset=iso-2022-jp' }, '\27$B$3$s$K$A$O@$3&\27(B'), 'こんにちは世界')
  -- transfer encodings first, then the charset
  equal(body({ 'Content-Type: text/plain; charset=ISO-2022-JP', 'Content-Transfer-Encoding: base64' },
    'GyRCRnxLXDhsJE4lYSE8JWsbKEI='), '日本語のメール')
  equal(body({ 'Content-Type: text/plain; charset=KOI8-R', 'Content-Transfer-Encoding: quoted-printable' },
    '=F3=DF=C5=DB=D8 =D6=C5 =C5=DD=A3'), 'Съешь же ещё')
  -- HTML: the charset from the Content-Type or else a <meta> tag; entities are UTF-8 too
  equal(body({ 'Content-Type: text/html' },
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=koi8-r"></head><body>\240\210\201\215\197\212 &#8364;</body></html>'),
    'Привет €')
  -- undeclared: valid UTF-8 stays, anything else is Windows-1252; an unknown charset likewise
  equal(body({}, 'Grüße “x”'), 'Grüße “x”')
  equal(body({}, '\147caf\233\148'), '“café”')
  equal(body({ 'Content-Type: text/plain; charset=x-unknown-charset' }, 'caf\233'), 'café')
  -- declared UTF-8 with invalid bytes, and bytes Windows-1252 leaves undefined: U+FFFD
  equal(body({ 'Content-Type: text/plain; charset=utf-8' }, 'ok \255 \192\175 \237\160\128 end'), 'ok � �� ��� end')
  equal(body({ 'Content-Type: text/plain; charset=windows-1252' }, 'a\129b'), 'a�b')
  equal(body({ 'Content-Type: text/plain; charset=iso-2022-jp' }, '\27$B$3$'), 'こ�', 'a truncated character')
  -- subjects: each encoded word from its charset, the raw bytes around them as undeclared
  equal(E.clean(message({ 'Subject: =?koi8-r?B?8NLJ18XU?= and =?windows-1252?Q?Prix_sp=E9cial?= caf\233' }, '')),
    'Subject: Привет and Prix spécial café\n\n')
  equal(E.clean(message({ 'Subject: =?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=' }, '')), 'Subject: 日本語\n\n')
  H.assert(cs.valid_utf8('Grüße') and not cs.valid_utf8('caf\233') and not cs.valid_utf8('\192\175')
    and not cs.valid_utf8('\237\160\128') and cs.valid_utf8('ascii'), 'valid_utf8')
  equal(cs.charset_of('text/plain; format=flowed; CHARSET="KOI8-R"'), 'koi8-r')
end)

os.execute(("rm -rf '%s'"):format(tmp))
H.finish()
