-- The real data sets as datasets/fetch.sh leaves them: sizes, class counts, split sizes and
-- label balance. Fails (does not skip) when the data is missing: run datasets/fetch.sh.
local H = require 'harness'
local lat = require 'lat'
local data = lat.data

local root = data.root()
local present = io.open(root .. '/fashion-mnist/train-labels-idx1-ubyte.gz', 'rb')
if present then present:close() end

H.test('the data folder is there', function()
  H.assert(present, ('no data sets in %s: run datasets/fetch.sh (LAT_DATA sets the folder)'):format(root))
end)

if present then
  H.test('Fashion-MNIST: 60000 / 10000 images, 6000 / 1000 of each class, pixels in [0, 1]', function()
    for split, n in pairs({ train = 60000, test = 10000 }) do
      local ds = data.fashion_mnist(split)
      local x, y = ds.tensors.x, ds.tensors.y
      H.assert(ds:len() == n and table.concat(x.shape, ',') == n .. ',1,28,28', split .. ' shape')
      H.assert(x.dtype == 'float32' and y.dtype == 'int32')
      H.assert(x:min():item() == 0 and x:max():item() == 1, 'pixel range')
      local counts = {}
      for k = 0, n - 1 do counts[y.i[k]] = (counts[y.i[k]] or 0) + 1 end
      for c = 0, 9 do H.assert(counts[c] == n / 10, ('%s class %d: %s'):format(split, c, tostring(counts[c]))) end
      local batches = 0
      for b in data.DataLoader(ds, { batch_size = 1000, shuffle = true, seed = 1 }):iter() do
        batches = batches + 1
        H.assert(table.concat(b.x.shape, ',') == '1000,1,28,28' and b.y:numel() == 1000)
      end
      H.assert(batches == n / 1000)
    end
  end)

  H.test('SpamAssassin: 6046 messages split 4807 / 599 / 640 by MD5, about 31% spam in each', function()
    local sizes = { train = { 4807, 1508 }, val = { 599, 193 }, test = { 640, 195 } }
    local seen = {}
    for split, want in pairs(sizes) do
      local ds = data.spam(split)
      local spam, groups = 0, {}
      for i = 1, ds:len() do
        local ex = ds:get(i)
        spam = spam + ex.label
        groups[ex.group] = true
        H.assert(ex.text:sub(1, 9) == 'Subject: ' and #ex.text > 12, 'cleaned text')
        H.assert((ex.label == 1) == (ex.group == 'spam'), 'label follows group')
        local key = ex.source .. '/' .. ex.id
        H.assert(not seen[key], 'in two splits: ' .. key)
        seen[key] = true
      end
      H.assert(ds:len() == want[1], ('%s: %d messages'):format(split, ds:len()))
      H.assert(spam == want[2], ('%s: %d spam'):format(split, spam))
      H.assert(groups.easy_ham and groups.hard_ham and groups.spam, split .. ': every group present')
    end
    local ids = data.bytes.batch(data.spam('test'):column('text'), 512)
    H.assert(table.concat(ids.shape, ',') == '640,512')
  end)

  H.test('Moby Dick: chapters split 111 / 14 / 13 by chapter number, none empty', function()
    local sizes = { train = 111, val = 14, test = 13 }
    for split, n in pairs(sizes) do
      local ds = data.moby_dick(split)
      H.assert(ds:len() == n, ('%s: %d chapters'):format(split, ds:len()))
      for i = 1, n do H.assert(#ds:get(i).text > 100, 'empty chapter') end
    end
    local test = data.moby_dick('test')
    H.assert(test:get(1).chapter == 10 and test:get(1).text:find('^CHAPTER 10%.'))
    local lm = data.bytes.lm_dataset(data.moby_dick('val'):text(), 128)
    H.assert(lm:len() > 1000, 'windows: ' .. lm:len())
  end)

  H.test('State of the Union: 233 addresses split 186 / 23 / 24 by year, none empty', function()
    local sizes = { train = 186, val = 23, test = 24 }
    for split, n in pairs(sizes) do
      local ds = data.sotu(split)
      H.assert(ds:len() == n, ('%s: %d addresses'):format(split, ds:len()))
      for i = 1, n do H.assert(#ds:get(i).text > 1000, 'empty address') end
    end
    local t = data.sotu('test'):get(1)
    H.assert(t.year == 1790 and t.president == 'george_washington' and t.party == 'none')
    H.assert(#data.sotu('all'):text() > 10e6)
  end)
end

H.finish()
