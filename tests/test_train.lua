-- lat.train: fit reaches low loss, its pieces (step, epoch), metrics that Python's json reads,
-- bit-identical loss curves from two processes, a bounded progress log off a terminal.
local H = require 'harness'
local lat = require 'lat'
local S = require 'standin'

local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local LAT = arg[-1]
local tmp = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/test_train'
os.execute('rm -rf ' .. tmp)
assert(require('lat.core.sys').mkdir_p(tmp))

local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

local function lines(s)
  local out = {}
  for l in s:gmatch('[^\n]+') do out[#out + 1] = l end
  return out
end

local function setup(seed)
  local g = lat.Generator(seed)
  local model = S.mlp({ 2, 32, 3 }, g, 0.1)
  local x, y = S.blobs(384, 3, g)
  local vx, vy = S.blobs(192, 3, g)
  return model, S.loader(x, y, 32, g), vx, vy
end

H.test('fit trains the stand-in model to low loss, train() and eval() at the right times', function()
  local model, loader, vx, vy = setup(1)
  local run = lat.log.run_dir(tmp .. '/fit', { seed = 1 })
  local modes = {}
  local history = lat.train.fit{
    model = model, loader = loader, epochs = 4, progress = false, log = run,
    optimizer = lat.optim.AdamW(model:parameters(), { lr = 0.02 }),
    loss = function(m, batch)
      modes.train = modes.train or (m.training and 'train' or 'eval')
      return S.loss(m, batch)
    end,
    evaluate = function(m, epoch)
      modes.eval = modes.eval or (m.training and 'train' or 'eval')
      local loss, extra = lat.no_grad(function() return S.loss(m, { x = vx, y = vy }) end)
      return { val_loss = loss, val_acc = extra.acc, odd = epoch == 2 and 0 / 0 or 1 }
    end,
  }
  run:close()
  H.assert(modes.train == 'train' and modes.eval == 'eval', 'modes ' .. modes.train .. ', ' .. modes.eval)
  local last = history[#history]
  H.assert(#history == 4 and last.epoch == 4 and last.steps == 4 * loader:len())
  H.assert(last.train_loss < 0.05 and last.val_loss < 0.05 and last.val_acc > 0.99,
    ('train loss %g, val loss %g, val acc %g'):format(last.train_loss, last.val_loss, last.val_acc))
  H.assert(history[1].train_loss > 5 * last.train_loss, 'loss fell')
end)

H.test('metrics.jsonl: one line per epoch that Python json parses, with the expected keys', function()
  local p = assert(io.popen(PYTHON .. [[ -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = {"epoch", "train_loss", "train_acc", "lr", "steps", "time", "train_time", "val_loss", "val_acc", "odd"}
print(len(rows), all(set(r) == keys for r in rows), [r["epoch"] for r in rows], rows[1]["odd"])
' ]] .. tmp .. '/fit/metrics.jsonl 2>&1'))
  local out = p:read('*a')
  p:close()
  H.assert(out == '4 True [1, 2, 3, 4] None\n', out)
end)

H.test('step and epoch: the loop taken apart, with a schedule, clipping and on_step', function()
  local model, loader = setup(2)
  local seen = {}
  local cfg = {
    model = model, loader = loader, loss = S.loss, clip = 0.5, progress = false,
    optimizer = lat.optim.SGD(model:named_parameters(), { lr = 1, momentum = 0.9 }),
    schedule = lat.optim.schedule.step{ base = 0.1, every = 3, gamma = 0.5 },
    on_step = function(info) seen[#seen + 1] = info end,
  }
  local it = loader:iter()
  local loss, extra, gnorm = lat.train.step(cfg, it())
  H.assert(type(loss) == 'number' and extra.acc and gnorm > 0 and cfg.optimizer.steps == 1)
  H.assert(cfg.optimizer.lr == 0.1)
  local r = lat.train.epoch(cfg, 1)
  H.assert(r.steps == loader:len() and #seen == r.steps and r.extra.acc and r.time >= 0)
  H.assert(seen[1].step == 2 and seen[1].lr == 0.1 and seen[3].step == 4 and seen[3].lr == 0.05, 'lr per step')
  local g2 = 0
  for _, p in ipairs(model:parameters()) do g2 = g2 + p.grad:pow(2):sum():item() end
  H.assert(math.sqrt(g2) <= 0.5 + 1e-5, 'gradients clipped to 0.5: ' .. math.sqrt(g2))
  H.raises(function() lat.train.step(setmetatable({ loss = function(m, b) return m(b.x) end }, { __index = cfg }), it()) end,
    'the loss function must return a tensor with one element, got shape [32, 3]')
  H.raises(function() lat.train.fit{ model = model } end, "train.fit: 'loader' is required")
end)

-- two processes with the same seed and thread count
local function child(seed, log)
  local err = tmp .. '/child_' .. seed .. '.err'
  local cmd = ('env -u LAT_PROGRESS LAT_NUM_THREADS=2 %s train_child.lua --seed=%d --epochs=3%s 2> %s')
    :format(LAT, seed, log and (' --log=' .. log) or '', err)
  local p = assert(io.popen(cmd))
  local out = p:read('*a')
  p:close()
  return out, read(err)
end

H.test('the same seed and thread count give bit-identical loss curves in two processes', function()
  local a, err = child(5, tmp .. '/child_run')
  local b = child(5)
  local c = child(6)
  local la = lines(a)
  H.assert(#la == 3 * 16, ('%d steps logged; stderr: %s'):format(#la, err))
  H.assert(la[1]:match('^1 %-?0x[%x.]+p[-+]%d+ 0x'), la[1])
  H.assert(a == b, 'the two runs differ')
  H.assert(a ~= c, 'another seed gives the same curve')
  local first, last = tonumber(la[1]:match('^%d+ (%S+)')), tonumber(la[#la]:match('^%d+ (%S+)'))
  H.assert(last < first / 10, ('loss %g -> %g'):format(first, last))
  -- off a terminal, the progress log stays small: one line per fast epoch plus the evaluation
  local el = lines(err)
  H.assert(#el >= 3 and #el <= 3 * 12 and not err:find('\r', 1, true), err)
  H.assert(read(tmp .. '/child_run/config.json'):find('"seed":5', 1, true))
end)

H.finish()
