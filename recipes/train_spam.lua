-- train_spam.lua: trains the transformer spam classifier that the text experiments attack, on
-- the SpamAssassin corpus (byte tokens: the subject and the start of the body of each message).
--   build/lat recipes/train_spam.lua [--epochs=N] [--len=512] [--out=runs/train_spam] [--quick]
-- Writes config.json, metrics.jsonl and model.safetensors to the run folder and prints a table.
local lat = require 'lat'

local opt = lat.args{
  epochs = 8, batch = 32, len = 512, dim = 64, heads = 4, layers = 2, dropout = 0.1,
  lr = 1e-3, weight_decay = 0.01, warmup = 100, seed = 1, threads = 0,
  out = 'runs/train_spam', quick = false,
}
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)
local bytes = lat.data.bytes

-- messages to a tensor data set: x int32 [N, len] byte ids (padded), y int32 [N]
local function encode(split, limit)
  local ds = lat.data.spam(split)
  local n = limit and math.min(limit, ds:len()) or ds:len()
  local texts, labels = {}, lat.empty({ n }, 'int32')
  for i = 1, n do
    local e = ds:get(i)
    texts[i] = e.text
    labels.i[i - 1] = e.label
  end
  local ids = bytes.batch(texts, opt.len)
  return lat.data.TensorDataset{ x = ids, y = labels }
end

local limit = opt.quick and 96 or nil
if opt.quick then opt.epochs, opt.warmup = 1, 2 end
local train, val, test = encode('train', limit), encode('val', limit), encode('test', limit)

local model = lat.models.TransformerClassifier{
  vocab = bytes.vocab_size, max_len = opt.len, dim = opt.dim, heads = opt.heads, layers = opt.layers,
  classes = 2, pad_id = bytes.PAD, dropout = opt.dropout, rng = lat.Generator(opt.seed),
}
local loader = lat.data.DataLoader(train, { batch_size = opt.batch, shuffle = true, seed = opt.seed })
local optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.lr, weight_decay = opt.weight_decay })
local run = lat.log.run_dir(opt.out, opt)
print(('train_spam: transformer %d x %d, %d heads, first %d bytes (%d parameters); %d / %d / %d messages'):format(
  opt.layers, opt.dim, opt.heads, opt.len, model:num_parameters(), train:len(), val:len(), test:len()))

local now = require('lat.sys').now
local t0 = now()
local history = {}
lat.train.fit{
  model = model, loader = loader, optimizer = optimizer, epochs = opt.epochs, log = run, clip = 1.0,
  schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = opt.warmup, total = opt.epochs * loader:len(), min = 0 },
  loss = function(m, batch) return lat.cross_entropy(m(batch.x), batch.y) end,
  evaluate = function(m, epoch)
    local r = lat.eval.accuracy(m, val, { batch_size = 64 })
    history[#history + 1] = { epoch = epoch, val_accuracy = r.accuracy, val_loss = r.loss }
    return { val_accuracy = r.accuracy, val_loss = r.loss }
  end,
}
local final = lat.eval.accuracy(model, test, { batch_size = 64 })
local seconds = now() - t0
local line = run:jsonl('metrics.jsonl')
line:write{ final = true, test_accuracy = final.accuracy, test_loss = final.loss, time = seconds }
lat.models.save(model, run:path('model.safetensors'), { dataset = 'spam-assassin', len = opt.len, test_accuracy = final.accuracy })

print(('%6s  %9s  %8s'):format('epoch', 'val loss', 'val acc'))
for _, h in ipairs(history) do print(('%6d  %9.4f  %7.2f%%'):format(h.epoch, h.val_loss, 100 * h.val_accuracy)) end
print(('test accuracy %.2f%% (%d messages); trained in %.0f s; model saved to %s'):format(
  100 * final.accuracy, final.n, seconds, run:path('model.safetensors')))
run:close()
