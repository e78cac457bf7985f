-- lm_parity.lua: the lat half of the language-model parity run (tests/bench/lm_parity.sh).
-- Trains the GPT of recipes/train_lm.lua on Moby Dick for a fixed number of steps and writes,
-- into the output folder, everything PyTorch needs to repeat the run exactly: the initial
-- weights (init.safetensors), the token streams, the batch of every step and the learning rate
-- of every step (data.safetensors), and lat's result (lat.json).
--   build/lat tests/bench/lm_parity.lua --out=DIR [--steps=300] [--dim=128] [--layers=4] ...
local lat = require 'lat'
local cjson = require 'cjson'

local opt = lat.args{ out = 'runs/lm_parity', steps = 300, batch = 32, len = 128, dim = 128, heads = 4,
  layers = 4, lr = 3e-3, weight_decay = 0.01, warmup = 30, clip = 1.0, val_windows = 128, seed = 1, threads = 0 }
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
local bytes = lat.data.bytes
lat.log.run_dir(opt.out, opt)

local train = bytes.lm_dataset(lat.data.moby_dick('train'):text(), opt.len)
local val_all = bytes.lm_dataset(lat.data.moby_dick('val'):text(), opt.len)
local nval = math.min(opt.val_windows, val_all:len())
local val = val_all:subset(lat.arange(nval, 'int32'))

local model = lat.models.GPT{ vocab = bytes.vocab_size, max_len = opt.len, dim = opt.dim, heads = opt.heads,
  layers = opt.layers, rng = lat.Generator(opt.seed) }
lat.models.save(model, opt.out .. '/init.safetensors')

local loader = lat.data.DataLoader(train, { batch_size = opt.batch, shuffle = true, seed = opt.seed, drop_last = true })
local optimizer = lat.optim.AdamW(model:named_parameters(), { lr = opt.lr, weight_decay = opt.weight_decay })
local schedule = lat.optim.schedule.warmup_cosine{ base = opt.lr, warmup = opt.warmup, total = opt.steps, min = opt.lr / 10 }
local cfg = { model = model, optimizer = optimizer, schedule = schedule, clip = opt.clip,
  loss = function(m, batch) return lat.cross_entropy(m(batch.x), batch.y) end }

local windows = lat.empty({ opt.steps, opt.batch }, 'int32')
local lrs = lat.empty({ opt.steps })
local losses = {}
local now = require('lat.core.sys').now
local t0, step = now(), 0
model:train()
while step < opt.steps do
  for batch in loader:iter() do
    step = step + 1
    lrs.f[step - 1] = schedule(step)
    for b = 0, opt.batch - 1 do windows.i[(step - 1) * opt.batch + b] = batch.index.i[b] end
    losses[step] = lat.train.step(cfg, batch)
    if step >= opt.steps then break end
  end
end
local seconds = now() - t0
local v = lat.eval.lm_loss(model, val, { batch_size = 64 })
lat.save(opt.out .. '/data.safetensors', {
  train_tokens = train.tokens, val_tokens = val_all.tokens, windows = windows, lrs = lrs,
})
local f = assert(io.open(opt.out .. '/lat.json', 'w'))
f:write(cjson.encode{ val_loss = v.loss, val_bits_per_byte = v.bits_per_token, train_losses = losses,
  seconds = seconds, threads = lat.get_num_threads(), val_windows = nval })
f:close()
print(('lat:     %d steps in %.1f s, final train loss %.4f, validation %.4f bits/byte'):format(
  opt.steps, seconds, losses[#losses], v.bits_per_token))
