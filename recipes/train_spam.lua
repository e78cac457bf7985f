-- train_spam.lua: trains the transformer spam classifier that the text experiments attack, on
-- the SpamAssassin corpus: the subject and the start of the body of each message, as word tokens
-- (a vocabulary trained on the training split, rarer words hashed into buckets) or as bytes.
--   build/lat recipes/train_spam.lua [--epochs=N] [--len=512] [--tokenizer=words|bytes] [--quick]
-- Writes config.json, metrics.jsonl and model.safetensors to the run folder and prints a table.
local lat = require 'lat'

local opt = lat.args{
  epochs = 8, batch = 32, len = 512, tokenizer = 'words', vocab = 16384, buckets = 2048,
  dim = 64, heads = 4, layers = 2, dropout = 0.1,
  lr = 1e-3, weight_decay = 0.01, warmup = 100, seed = 1, threads = 0,
  out = 'runs/train_spam', quick = false,
}
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)
if opt.tokenizer ~= 'words' and opt.tokenizer ~= 'bytes' then lat.core.raise("option --tokenizer must be 'words' or 'bytes'") end
lat.args.check(opt, { count = { 'epochs', 'batch', 'len', 'vocab', 'buckets', 'dim', 'heads', 'layers' },
  natural = { 'warmup', 'seed', 'threads' }, positive = { 'lr' }, nonnegative = { 'weight_decay' }, fraction = { 'dropout' } })

-- the messages of a split (every k-th with --quick, so that both classes appear)
local function messages(split)
  local ds = lat.data.spam(split)
  local texts, labels = {}, {}
  local every = opt.quick and 40 or 1
  for i = 1, ds:len(), every do
    local e = ds:get(i)
    texts[#texts + 1], labels[#labels + 1] = e.text, e.label
  end
  return texts, labels
end
if opt.quick then opt.epochs, opt.warmup = 1, 2 end

local splits = {}
for _, name in ipairs({ 'train', 'val', 'test' }) do
  local texts, labels = messages(name)
  splits[name] = { texts = texts, labels = labels }
end
local tok = opt.tokenizer == 'words'
  and lat.data.words.train(splits.train.texts, { vocab = opt.vocab, buckets = opt.buckets })
  or lat.data.bytes
-- x int32 [N, len] token ids (padded), y int32 [N]
local function tensors(split)
  local ids = opt.tokenizer == 'words' and tok:batch(split.texts, opt.len) or tok.batch(split.texts, opt.len)
  return lat.data.TensorDataset{ x = ids, y = lat.tensor(split.labels, 'int32') }
end
local train, val, test = tensors(splits.train), tensors(splits.val), tensors(splits.test)

local model = lat.models.TransformerClassifier{
  vocab = tok.vocab_size, max_len = opt.len, dim = opt.dim, heads = opt.heads, layers = opt.layers,
  classes = 2, pad_id = tok.PAD, dropout = opt.dropout, rng = lat.Generator(opt.seed),
}
local loader = lat.data.DataLoader(train, { batch_size = opt.batch, shuffle = true, seed = opt.seed })
local optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.lr, weight_decay = opt.weight_decay })
local run = lat.log.run_dir(opt.out, opt)
print(('train_spam: transformer %d x %d, %d heads, first %d %s (%d parameters); %d / %d / %d messages'):format(
  opt.layers, opt.dim, opt.heads, opt.len, opt.tokenizer, model:num_parameters(), train:len(), val:len(), test:len()))

local now = require('lat.core.sys').now
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
lat.save(run:path('optimizer.safetensors'), optimizer:state_dict()) -- to resume training
lat.models.save(model, run:path('model.safetensors'), { dataset = 'spam-assassin', len = opt.len,
  tokenizer = opt.tokenizer == 'words' and tok:to_string() or 'bytes', test_accuracy = final.accuracy })

print(('%6s  %9s  %8s'):format('epoch', 'val loss', 'val acc'))
for _, h in ipairs(history) do print(('%6d  %9.4f  %7.2f%%'):format(h.epoch, h.val_loss, 100 * h.val_accuracy)) end
print(('test accuracy %.2f%% (%d messages); trained in %.0f s; model saved to %s'):format(
  100 * final.accuracy, final.n, seconds, run:path('model.safetensors')))
run:close()
