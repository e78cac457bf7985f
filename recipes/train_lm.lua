-- train_lm.lua: trains the GPT-style byte-level language model on Moby Dick that the text
-- generation experiments start from.
--   build/lat recipes/train_lm.lua [--steps=N] [--out=runs/train_lm] [--quick]
-- Reports validation loss in bits per byte; writes config.json, metrics.jsonl,
-- model.safetensors and samples.txt (greedy and sampled continuations) to the run folder.
local lat = require 'lat'

local opt = lat.args{
  steps = 2000, batch = 32, len = 128, dim = 128, heads = 4, layers = 4, dropout = 0,
  lr = 3e-3, weight_decay = 0.01, warmup = 100, eval_every = 250, seed = 1, threads = 0,
  out = 'runs/train_lm', quick = false,
}
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
lat.manual_seed(opt.seed)
local bytes = lat.data.bytes
lat.args.check(opt, { count = { 'steps', 'batch', 'len', 'dim', 'heads', 'layers', 'eval_every' },
  natural = { 'warmup', 'seed', 'threads' }, positive = { 'lr' }, nonnegative = { 'weight_decay' }, fraction = { 'dropout' } })
if opt.quick then opt.steps, opt.eval_every, opt.warmup = 20, 10, 2 end

local train_text = lat.data.moby_dick('train'):text()
local val_text = lat.data.moby_dick('val'):text()
local train = bytes.lm_dataset(train_text, opt.len, { stride = opt.len / 2 })
local val = bytes.lm_dataset(val_text, opt.len)
if opt.quick then val = val:subset(lat.arange(16, 'int32')) end

local model = lat.models.GPT{ vocab = bytes.vocab_size, max_len = opt.len, dim = opt.dim, heads = opt.heads,
  layers = opt.layers, dropout = opt.dropout, rng = lat.Generator(opt.seed) }
local loader = lat.data.DataLoader(train, { batch_size = opt.batch, shuffle = true, seed = opt.seed, drop_last = true })
local optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.lr, weight_decay = opt.weight_decay })
local schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = opt.warmup, total = opt.steps, min = opt.lr / 10 }
local run = lat.log.run_dir(opt.out, opt)
local metrics = run:jsonl('metrics.jsonl')
print(('train_lm: GPT %d x %d, %d heads, context %d bytes (%d parameters); %d training bytes, %d validation bytes'):format(
  opt.layers, opt.dim, opt.heads, opt.len, model:num_parameters(), #train_text, #val_text))

-- the loop taken apart: a fixed number of steps across epochs, evaluation every eval_every
local cfg = { model = model, optimizer = optimizer, schedule = schedule, clip = 1.0,
  loss = function(m, batch) return lat.cross_entropy(m(batch.x), batch.y) end }
local now = require('lat.core.sys').now
local t0 = now()
local bar = lat.log.progress{ label = 'train_lm', total = opt.steps, unit = 'step' }
local history, step, running = {}, 0, nil
while step < opt.steps do
  model:train()
  for batch in loader:iter() do
    step = step + 1
    local loss = lat.train.step(cfg, batch)
    running = running and 0.98 * running + 0.02 * loss or loss
    bar:update(step, { loss = running, lr = optimizer.lr })
    if step % opt.eval_every == 0 or step == opt.steps then
      local v = lat.eval.lm_loss(model, val, { batch_size = 64 })
      local row = { step = step, train_loss = running, val_loss = v.loss, val_bits_per_byte = v.bits_per_token, time = now() - t0 }
      history[#history + 1] = row
      metrics:write(row)
      model:train()
    end
    if step >= opt.steps then break end
  end
end
bar:finish()
local seconds = now() - t0
lat.save(run:path('optimizer.safetensors'), optimizer:state_dict()) -- to resume training
lat.models.save(model, run:path('model.safetensors'), { dataset = 'moby-dick', val_bits_per_byte = history[#history].val_bits_per_byte })

local samples = assert(io.open(run:path('samples.txt'), 'w'))
for _, prompt in ipairs({ 'Call me ', 'The whale ', 'Queequeg ' }) do
  local ids = bytes.encode(prompt)
  local greedy = bytes.decode(model:generate(ids, 80))
  local sampled = bytes.decode(model:generate(ids, 80, { temperature = 0.8, rng = lat.Generator(opt.seed) }))
  samples:write(('%s|greedy: %s\n%s|sampled: %s\n\n'):format(prompt, greedy, prompt, sampled))
end
samples:close()

print(('%6s  %10s  %14s'):format('step', 'val loss', 'val bits/byte'))
for _, h in ipairs(history) do print(('%6d  %10.4f  %14.4f'):format(h.step, h.val_loss, h.val_bits_per_byte)) end
print(('trained %d steps in %.0f s; model saved to %s; samples in %s'):format(opt.steps, seconds,
  run:path('model.safetensors'), run:path('samples.txt')))
run:close()
