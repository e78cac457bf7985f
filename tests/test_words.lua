-- The word-level tokenizer: training, ids, hashing of rare words, batches, saving.
local H = require 'harness'
local lat = require 'lat'
local W = lat.data.words

H.test('frequent words get ids in order of frequency; rare ones are hashed into buckets', function()
  local tok = W.train({ 'the cat sat. The cat ran!', 'the end' }, { vocab = 3, buckets = 16, min_count = 1 })
  H.assert(tok.vocab_size == 2 + 3 + 16, 'vocab size')
  local ids = tok:encode('The CAT zebra.')
  H.assert(ids[1] == 2 and ids[2] == 3, 'the and cat are the two most frequent: ' .. table.concat(ids, ','))
  H.assert(ids[3] >= 5 and ids[3] < 21, 'zebra hashed into a bucket')
  H.assert(tok:encode('zebra')[1] == ids[3], 'hashing is stable')
  H.assert(tok:decode(tok:encode('the cat')) == 'the cat', 'decode')
end)

H.test('training is deterministic (ties broken alphabetically)', function()
  local texts = { 'b a c', 'c a b', 'd' }
  local a, b = W.train(texts, { min_count = 1 }), W.train(texts, { min_count = 1 })
  H.assert(table.concat(a.words, ' ') == 'a b c d' and table.concat(b.words, ' ') == 'a b c d', table.concat(a.words, ' '))
end)

H.test('batches pad with 0 and mask real tokens', function()
  local tok = W.train({ 'x y z' }, { min_count = 1 })
  local ids, mask = tok:batch({ 'x y', 'x y z x y z' }, 4)
  H.assert(table.concat(ids.shape, 'x') == '2x4', 'shape')
  H.near(mask, { 1, 1, 0, 0, 1, 1, 1, 1 }, 0, 'mask')
  H.assert(ids:get(1, 3) == W.PAD and ids:get(2, 4) ~= W.PAD, 'padding')
end)

H.test('a tokenizer with Latin-1 words survives a UTF-8 checkpoint', function()
  local tok = W.train({ 'caf\233 100% caf\233 100%' }, { min_count = 1, buckets = 4 })
  local path = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/tok.safetensors'
  lat.save(path, { x = lat.zeros(1) }, { metadata = { tokenizer = tok:to_string() } })
  local _, meta = lat.load(path)
  local back = W.from_string(meta.tokenizer)
  H.assert(table.concat(back:encode('caf\233 100%'), ',') == table.concat(tok:encode('caf\233 100%'), ','), 'same ids')
  H.raises(function() W.from_string('{') end, 'not a saved tokenizer')
end)

H.test('a saved tokenizer is the same text in every process (its keys in sorted order)', function()
  local tok = W.train({ 'b a c a' }, { min_count = 1, buckets = 4 })
  local s = tok:to_string()
  H.assert(s:find('^{"buckets":4,"words":%[') ~= nil, 'keys not in sorted order: ' .. s)
end)

H.test('the bucket hash is 32-bit FNV-1a', function()
  -- reference values of FNV-1a 32 (computed independently)
  H.assert(W.hash('a') == 3826002220 and W.hash('foobar') == 3214735720, 'FNV-1a test vectors')
end)

H.finish()
