-- quickstart.lua: the paper's idea in about a minute, on real data (Fashion-MNIST).
-- 1. Train a small CNN on images of which a few carry a trojan: a 4x4 checkered patch in the
--    corner that turns any image into class 0 (T-shirt/top).
-- 2. A targeted latent attack (L2 PGD on the activations after the first conv block) toward each
--    class on clean test images: a trojan is a short path to its target class.
-- 3. Fine-tune three copies on clean data without the trigger: plain (clean fine-tune), under an
--    input-space adversary (AT) and under a latent one (LAT), and compare clean accuracy,
--    held-out robustness (attacks and corruptions none of them trained on) and the trojan's
--    attack success rate (ASR).
-- Writes results.csv, results.jsonl and quickstart.png to --out.
--   build/lat recipes/quickstart.lua [--threads=N] [--out=runs/quickstart] [--quick]
local lat = require 'lat'
local D = require 'lat.experiment.defences'
local HO = lat.eval.heldout
local now = require('lat.core.sys').now

local opt = lat.args{ train = 10000, epochs = 2, finetune = 3000, ft_epochs = 1, batch = 128, lr = 0.05,
  at_eps = 1.0, lat_layer = 'block1', lat_eps = 0.15, probe_layer = 'block2', probe_eps = 0.3, steps = 3, eval_examples = 400, test_examples = 5000, seed = 1,
  threads = 0, out = 'runs/quickstart', quick = false }
lat.args.check(opt, { count = { 'train', 'epochs', 'finetune', 'ft_epochs', 'batch', 'steps', 'eval_examples', 'test_examples' },
  natural = { 'seed', 'threads' }, positive = { 'lr', 'at_eps', 'lat_eps', 'probe_eps' } })
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
if opt.quick then
  opt.train, opt.epochs, opt.finetune, opt.eval_examples, opt.test_examples, opt.steps = 2048, 1, 512, 128, 1000, 2
  print('SMOKE TEST (--quick): exercises the code paths in seconds; the numbers are not results')
end
local t_start = now()
local run = lat.log.run_dir(opt.out, opt)

local function first(ds, skip, n) return ds:subset(lat.arange(skip + 1, skip + 1 + n, 'int32')) end
local train_full = lat.data.fashion_mnist('train')
local test = first(lat.data.fashion_mnist('test'), 0, opt.test_examples)
local train = first(train_full, 0, opt.train)
local ft_data = first(train_full, opt.train, opt.finetune) -- images the trojaned model never saw
local eval_set = first(test, 0, opt.eval_examples)
local trojan = lat.trojan.patch{ name = 'patch', target = 0, rate = 0.05, size = 4, pattern = 'checker',
  location = 'bottom_right', seed = opt.seed }

-- 1. the trojaned model
local model = lat.models.SmallCNN{ rng = lat.Generator(opt.seed) }
local loader = lat.data.DataLoader(train, { batch_size = opt.batch, shuffle = true, seed = opt.seed, drop_last = true,
  transform = lat.trojan.poison_all({ trojan }) })
lat.train.fit{ model = model, loader = loader, epochs = opt.epochs,
  optimizer = lat.optim.SGD(model:named_parameters(), { lr = opt.lr, momentum = 0.9 }),
  loss = function(m, b) return lat.cross_entropy(m(b.x), b.y) end }

local suite = { HO.spec.pgd{ norm = 'linf', eps = 8 / 255, steps = 10 }, HO.spec.pgd{ norm = 'l2', eps = 1.0, steps = 10 },
  HO.spec.corruption{ kind = 'fog', severity = 2 }, HO.spec.corruption{ kind = 'pixelate', severity = 2 },
  HO.spec.corruption{ kind = 'contrast', severity = 2 } }
local function evaluate(name, m)
  local held = HO.run(m, eval_set, suite, { seed = opt.seed })
  return { name = name, clean_accuracy = lat.eval.accuracy(m, test).accuracy, robustness = held.robustness,
    trojan_asr = lat.trojan.report(m, { trojan }, test).patch, families = held.families }
end
local rows = { evaluate('trojaned model', model) }
print(('trojaned model: clean accuracy %.1f%%, trojan ASR %.1f%% (chance 10%%)'):format(100 * rows[1].clean_accuracy, 100 * rows[1].trojan_asr))

-- 2. a targeted latent attack toward each class in turn, on clean test images of the other
-- classes: a trojan is a short path to its target, so the target should be the easiest to reach
local site = lat.threat{ where = opt.lat_layer, norm = 'l2', eps = opt.lat_eps, relative = true }
local probe = lat.threat{ where = opt.probe_layer, norm = 'l2', eps = opt.probe_eps, relative = true }
local all = eval_set:batch(lat.arange(0, eval_set:len(), 'int32')) -- batch() takes the loader's 0-based rows
local reach, labels = {}, all.y:tolist()
for c = 0, 9 do
  local rows_c = {}
  for i, y in ipairs(labels) do if y ~= c then rows_c[#rows_c + 1] = i - 1 end end
  local batch = eval_set:batch(lat.tensor(rows_c, 'int32'))
  reach[c + 1] = lat.attack.pgd(model, batch, probe, { steps = 10, objective = { target = lat.full({ #rows_c }, c, 'int32') } }).success
end
local rank = 1
for c = 1, 10 do if reach[c] > reach[trojan.target + 1] then rank = rank + 1 end end
local others = 0
for c = 1, 10 do if c ~= trojan.target + 1 then others = others + reach[c] / 9 end end
print(('targeted latent attack at %s (L2, %g x the activation norm): class %d, the trojan\'s target, reached on %.0f%% of images '
  .. '(rank %d of 10); the other classes on %.0f%% on average'):format(opt.probe_layer, opt.probe_eps, trojan.target,
  100 * reach[trojan.target + 1], rank, 100 * others))

-- 3. three fine-tunes from the same trojaned weights, on clean data
local state = {}
for k, v in pairs(model:state_dict()) do state[k] = v:clone() end
local configs = {
  { name = 'clean fine-tune', defence = 'none' },
  { name = ('AT (input, L2 %g)'):format(opt.at_eps), defence = 'at',
    threat = lat.threat{ where = 'input', norm = 'l2', eps = opt.at_eps, clamp = { 0, 1 } } },
  { name = ('LAT (%s, L2 %g%%)'):format(opt.lat_layer, 100 * opt.lat_eps), defence = 'lat', threat = site },
}
for _, c in ipairs(configs) do
  model:load_state_dict(state)
  local t0 = now()
  lat.train.fit{ model = model, epochs = opt.ft_epochs,
    loader = lat.data.DataLoader(ft_data, { batch_size = opt.batch, shuffle = true, seed = opt.seed + 1 }),
    optimizer = lat.optim.SGD(model:named_parameters(), { lr = opt.lr / 5, momentum = 0.9 }),
    loss = D.loss(c, c.threat, { weight = 1, steps = opt.steps, rng = lat.Generator(opt.seed + 2) }) }
  local row = evaluate(c.name, model)
  row.train_seconds = now() - t0
  rows[#rows + 1] = row
end

-- the table, the files, the plot
local title = opt.quick and 'SMOKE TEST (--quick), not results' or 'results'
print(('\n%s (%d test images; held-out: %d attacks and corruptions on %d of them)'):format(title, test:len(), #suite, eval_set:len()))
print(('%-24s %9s %10s %11s'):format('model', 'clean %', 'held-out %', 'trojan ASR %'))
local csv = run:csv('results.csv', { 'name', 'clean_accuracy', 'robustness', 'trojan_asr' })
local jsonl = run:jsonl('results.jsonl')
local points = {}
for i, row in ipairs(rows) do
  print(('%-24s %9.1f %10.1f %11.1f'):format(row.name, 100 * row.clean_accuracy, 100 * row.robustness, 100 * row.trojan_asr))
  csv:write(row)
  jsonl:write(row)
  points[i] = { x = 100 * row.clean_accuracy, y = 100 * row.robustness, group = row.name }
end
csv:close(); jsonl:close()

local base, ft, at, latr = rows[1], rows[2], rows[3], rows[4]
local function change(row, field) return 100 * (row[field] - ft[field]) end
print(('\nWhat it means: the trojan took (ASR %.0f%%; class %d by chance: 10%%). Against the clean fine-tune, '
  .. 'AT changed clean accuracy by %+.1f points, held-out robustness by %+.1f and the trojan\'s ASR by %+.1f; '
  .. 'LAT by %+.1f, %+.1f and %+.1f. One seed at toy scale: recipes/README.md has the paper-scale runs, and input-space '
  .. 'PGD, one of the held-out families, favours AT by construction.')
  :format(100 * base.trojan_asr, trojan.target, change(at, 'clean_accuracy'), change(at, 'robustness'), change(at, 'trojan_asr'),
    change(latr, 'clean_accuracy'), change(latr, 'robustness'), change(latr, 'trojan_asr')))

local ok, why = lat.plot.scatter{ path = run:path('quickstart.png'), title = 'Fashion-MNIST quickstart',
  xlabel = 'clean accuracy (%)', ylabel = 'held-out robustness (%)', points = points }
print(ok and ('plot: %s'):format(run:path('quickstart.png')) or ('no plot: %s'):format(why))
print(('results: %s (%.0f s in all)'):format(run:path('results.csv'), now() - t_start))
