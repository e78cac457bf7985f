-- Wrong calls through the public Lua API and the recipes' options, each in a fresh lat process:
-- each must end within a time limit with a non-zero exit (not a signal, not a timeout) and a Lua
-- error whose message names the problem. A case is { name, code, expected substring[, env =,
-- script = recipe and options instead of code] }; code runs after PRELUDE, on line 21 of its file
-- ($FILE in the expected text is that file's name).
local H = require 'harness'

local LAT = arg[-1]
local tmpdir = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/misuse'
os.execute('mkdir -p ' .. tmpdir)
local LIMIT = 30 -- seconds per case

-- what every snippet may use: a small model, a batch, a loader over it, a threat model
local PRELUDE = [[
local nn = lat.nn
local function mlp() return nn.Sequential{ { 'fc1', nn.Linear(3, 4) }, { 'fc2', nn.Linear(4, 2) } } end
local x, y = lat.randn(8, 3), lat.zeros({ 8 }, 'int32')
local batch = { x = x, y = y }
local function loader(b)
  return { len = function() return 2 end,
    iter = function() local i = 0; return function() i = i + 1; if i <= 2 then return b end end end }
end
local function ce(m, b) return lat.cross_entropy(m(b.x), b.y) end
local function fit(cfg)
  local m = cfg.model or mlp()
  local base = { model = m, loader = loader(cfg.batch or batch), epochs = 1, progress = false, loss = ce,
    optimizer = lat.optim.SGD(m:named_parameters(), { lr = cfg.lr or 0.1 }) }
  for k, v in pairs(cfg) do if k ~= 'batch' and k ~= 'lr' then base[k] = v end end
  return lat.train.fit(base)
end
local tm = lat.threat{ where = 'fc1', eps = 0.5 }
local function nan_batch() local b = lat.randn(8, 3); b:set(0 / 0, 2, 2); return { x = b, y = y } end
local TMP = os.getenv('MISUSE_TMP')
]]

local cases = {
  -- tensors: shapes, dtypes, sizes, positions
  { 'zeros with a negative size', [[lat.zeros(-1)]], 'negative size' },
  { 'ones with a negative size among others', [[lat.ones(2, -3)]], 'negative size' },
  { 'randn with a negative size', [[lat.randn(-3)]], 'negative size' },
  { 'zeros with an unknown dtype', [[lat.zeros(3, 'float64')]], "unknown dtype 'float64'" },
  { 'zeros with a string size', [[lat.zeros('a')]], "unknown dtype 'a'" },
  { 'full with a string value', [[lat.full({ 2 }, 'x')]], 'full' },
  { 'tensor of a string', [[lat.tensor('abc')]], 'tensor' },
  { 'tensor of ragged rows', [[lat.tensor({ { 1, 2 }, { 3 } })]], 'tensor' },
  { 'get with a string position', [[lat.zeros(3):get('a')]], 'position' },
  { 'get with position 0', [[lat.zeros(3):get(0)]], 'position 0 out of range 1..3' },
  { 'get past the end', [[lat.zeros(3):get(4)]], 'position 4 out of range 1..3' },
  { 'get before the start', [[lat.zeros(3):get(-4)]], 'out of range' },
  { 'get with a fractional position', [[lat.zeros(3):get(1.5)]], 'position 1.5' },
  { 'get with too many positions', [[lat.zeros(3):get(1, 1)]], '2 positions given for a 1-dimensional tensor' },
  { 'set with a string value', [[lat.zeros(3):set('v', 1)]], 'set: the value must be a number' },
  { 'set out of range', [[lat.zeros(2, 2):set(1, 3, 1)]], 'out of range' },
  { 'item of many elements', [[lat.zeros(3):item()]], 'item: the tensor has 3 elements' },
  { 'size of a dimension out of range', [[lat.zeros(3):size(5)]], 'dimension 5 out of range' },
  { 'setting an unknown field', [[local t = lat.zeros(3); t.foo = 1]], "cannot set field 'foo'" },
  { 'reshape to another count', [[lat.zeros(2, 3):reshape(4)]], 'cannot reshape [2, 3]' },
  { 'to an unknown dtype', [[lat.zeros(3):to('float64')]], "unknown dtype 'float64'" },
  { 'adding a string', [[local _ = lat.zeros(3) + 'a']], 'add' },
  { 'adding shapes that do not broadcast', [[local _ = lat.zeros(3) + lat.zeros(4)]], 'broadcast' },
  { 'matmul of mismatched shapes', [[lat.zeros(2, 3):matmul(lat.zeros(4, 5))]], 'matmul' },
  { 'sum over a dimension out of range', [[lat.zeros(2, 3):sum(7)]], 'out of range' },
  { 'cat of mismatched shapes', [[lat.cat({ lat.zeros(2, 3), lat.zeros(2, 4) }, 1)]], 'cat' },
  { 'cross_entropy with float labels', [[lat.cross_entropy(lat.zeros(2, 3), lat.zeros(2))]], 'cross_entropy' },
  { 'cross_entropy with a label out of range', [[lat.cross_entropy(lat.zeros(2, 3), lat.tensor({ 0, 7 }, { dtype = 'int32' }))]], 'cross_entropy' },
  { 'gather with an index out of range', [[lat.zeros(2, 3):gather(2, lat.tensor({ { 5 }, { 0 } }, { dtype = 'int32' }))]], 'gather' },
  { 'conv2d of a 2-d input', [[lat.conv2d(lat.zeros(3, 3), lat.zeros(1, 1, 3, 3))]], 'conv2d' },
  { 'randint with an empty range', [[lat.randint(5, 1, { 3 })]], 'randint' },
  { 'permute with too few dimensions', [[lat.zeros(2, 3):permute({ 1 })]], 'permute' },

  -- autograd
  { 'backward on a non-scalar', [[local a = lat.randn(3):requires_grad_(); (a * 2):backward()]], 'backward without a gradient needs a single number' },
  { 'backward on a tensor without gradients', [[lat.randn(3):sum():backward()]], 'does not require gradients' },
  { 'backward with a gradient of another shape', [[local a = lat.randn(3):requires_grad_(); (a * 2):backward(lat.ones(4))]], 'backward' },
  { 'requires_grad_ on an int tensor', [[lat.zeros({ 3 }, 'int32'):requires_grad_()]], 'requires_grad' },
  { 'lat.grad of a non-tensor', [[lat.grad(5, { lat.randn(3) })]], 'grad' },
  { 'lat.grad with respect to a tensor outside the graph', [[local a = lat.randn(3):requires_grad_(); lat.grad((a * 2):sum(), { lat.randn(3):requires_grad_() })]], 'grad' },
  { 'no_grad of a non-function', [[lat.no_grad(5)]], 'no_grad: expected a function to run, got number' },

  -- layers and models
  { 'Linear with a negative size', [[nn.Linear(-1, 2)]], 'Linear' },
  { 'Linear with a string size', [[nn.Linear('a', 2)]], 'Linear' },
  { 'a layer called with nil', [[nn.Linear(3, 2)(nil)]], 'input must be a tensor, got nil' },
  { 'a model called with nil', [[mlp()(nil)]], 'input must be a tensor, got nil' },
  { 'a model called with a number', [[mlp()(5)]], 'Sequential: the input must be a tensor, got number' },
  { 'a GPT called with nil', [[lat.models.GPT{ vocab = 8, max_len = 4, dim = 8, heads = 2, layers = 1 }(nil)]], 'GPT: the input must be a tensor, got nil' },
  { 'an MLP called with a string', [[lat.models.MLP{ sizes = { 3, 2 } }('x')]], 'MLP: the input must be a tensor, got string' },
  { "a model's error names the caller's line", [[mlp()(lat.zeros(2, 5))]], "$FILE:21: in layer 'fc1' (Linear)" },
  { 'generate from a nil prompt', [[lat.models.GPT{ vocab = 8, max_len = 4, dim = 8, heads = 2, layers = 1 }:generate(nil, 3)]], 'generate: the prompt must be' },
  { 'generate a negative number of tokens', [[lat.models.GPT{ vocab = 8, max_len = 4, dim = 8, heads = 2, layers = 1 }:generate({ 1 }, -3)]], 'generate: n must be an integer >= 0, got -3' },
  { 'generate an infinite number of tokens', [[lat.models.GPT{ vocab = 8, max_len = 4, dim = 8, heads = 2, layers = 1 }:generate({ 1 }, math.huge)]], 'generate: n must be an integer >= 0, got inf' },
  { 'a layer given too many features', [[nn.Linear(3, 2)(lat.zeros(4, 5))]], 'weight [2, 3] expects 3' },
  { 'a layer given int32 input', [[nn.Linear(3, 2)(lat.zeros({ 4, 3 }, 'int32'))]], 'linear' },
  { 'Conv2d given the wrong channels', [[nn.Conv2d(3, 4, 3)(lat.zeros(1, 1, 8, 8))]], 'channels' },
  { 'Sequential called with parentheses', [[nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))]], 'Sequential{ a, b }' },
  { 'Sequential of a non-module', [[nn.Sequential{ 5 }]], 'entry 1 is not a module' },
  { 'hook on an unknown layer', [[mlp():hook('fc9', function() end)]], "no layer named 'fc9' (layers: fc1, fc2)" },
  { 'hook with a non-function', [[mlp():hook('fc1', 5)]], 'hook: the second argument must be a function' },
  { 'module by an unknown name', [[mlp():module('nope')]], "no layer named 'nope'" },
  { 'load_state_dict with a wrong shape', [[local m = mlp(); m:load_state_dict({ ['fc1.weight'] = lat.zeros(9, 9) })]], 'fc1.weight' },
  { 'Embedding given float ids', [[nn.Embedding(10, 4)(lat.zeros(2, 3))]], 'embedding' },
  { 'Embedding given an id out of range', [[nn.Embedding(10, 4)(lat.tensor({ { 12 } }, { dtype = 'int32' }))]], 'embedding' },
  { 'LayerNorm of another width', [[nn.LayerNorm(4)(lat.zeros(2, 5))]], 'layer_norm' },
  { 'ResNet called on the wrong image shape', [[lat.models.ResNet{ widths = { 4, 4, 4 }, blocks = { 1, 1, 1 }, channels = 1, classes = 3 }(lat.zeros(2, 3, 8, 8))]], 'channels' },
  { 'GPT fed more tokens than its context', [[lat.models.GPT{ vocab = 8, max_len = 4, dim = 8, heads = 2, layers = 1 }(lat.zeros({ 1, 9 }, 'int32'))]], "sequence of 9 tokens is longer than the model's 4" },
  { 'a checkpoint of another architecture', [[local m = mlp(); lat.models.save(m, TMP .. '/mlp.safetensors')
    local r = lat.models.ResNet{ widths = { 4, 4, 4 }, blocks = { 1, 1, 1 }, channels = 1, classes = 3 }
    r:load_state_dict((lat.load(TMP .. '/mlp.safetensors')))]], "missing 'conv1.weight'" },
  { 'models.load of a missing file', [[lat.models.load(TMP .. '/nothing.safetensors')]], 'nothing.safetensors' },

  -- optimisers
  { 'SGD of nil', [[lat.optim.SGD(nil, { lr = 0.1 })]], 'params must be a table' },
  { 'SGD with a negative lr', [[lat.optim.SGD(mlp():named_parameters(), { lr = -1 })]], 'lr must be a number >= 0' },
  { 'SGD with a NaN lr', [[lat.optim.SGD(mlp():named_parameters(), { lr = 0 / 0 })]], 'lr must be a number >= 0' },
  { 'clip_grad_norm to zero', [[lat.optim.clip_grad_norm(mlp():parameters(), 0)]], 'max_norm must be a number > 0' },

  -- training
  { 'fit without a model', [[lat.train.fit{ loader = loader(batch), epochs = 1, loss = ce, optimizer = {} }]], "train.fit: 'model' is required" },
  { 'fit without epochs', [[local m = mlp(); lat.train.fit{ model = m, loader = loader(batch), loss = ce, optimizer = lat.optim.SGD(m:named_parameters(), { lr = 0.1 }) }]], "'epochs' is required" },
  { 'fit of a non-table', [[lat.train.fit('go')]], 'train.fit: expected a configuration table, got string' },
  { 'fit with negative epochs', [[fit{ epochs = -1 }]], 'train.fit: epochs must be an integer >= 0, got -1' },
  { 'fit with fractional epochs', [[fit{ epochs = 1.5 }]], 'epochs must be an integer >= 0, got 1.5' },
  { 'fit with a number for the loader', [[fit{ loader = 5 }]], 'train.fit: loader must be a lat.data.DataLoader' },
  { 'fit with a string for the loss', [[fit{ loss = 'ce' }]], 'train: loss must be a function' },
  { 'fit with clip 0', [[fit{ clip = 0 }]], 'train.fit: clip must be a number > 0, got 0' },
  { 'step without an optimizer', [[lat.train.step({ model = mlp(), loss = ce }, batch)]], 'train: optimizer must be a lat.optim optimizer, got nil' },
  { 'a loss function returning a number', [[fit{ loss = function() return 1 end }]], 'the loss function must return a tensor with one element, got number' },
  { 'a loss function returning a vector', [[fit{ loss = function(m, b) return m(b.x):sum(2) end }]], 'got shape [8]' },
  { 'training on a NaN input', [[fit{ batch = nan_batch() }]], 'train: step 1: the loss is nan' },
  { 'training on a NaN input names the first layer', [[fit{ batch = nan_batch() }]], "the model's input" },
  { 'training with an exploding learning rate', [[fit{ lr = 1e30, epochs = 3 }]], 'the loss is' },
  { 'training with an Inf weight names the layer', [[local m = mlp(); lat.no_grad(function() m.fc2.weight:set(1 / 0, 1, 1) end); fit{ model = m }]], "layer 'fc2' (Linear)" },
  { 'training with a NaN gradient names the parameter', [[fit{ loss = function(m, b) return ce(m, b) + (m.fc1.weight * 0):sqrt():sum() end }]], "the gradient of parameter 'fc1.weight' is not finite" },
  { 'adversarial training on a NaN input', [[fit{ batch = nan_batch(), loss = lat.train.adversarial{ threat = tm, attack = { steps = 2 } } }]], "train: step 1: attack: the clean activation at 'fc1' is not finite" },

  -- threat models
  { 'threat with eps NaN', [[lat.threat{ where = 'fc1', eps = 0 / 0 }]], 'eps must be a finite number >= 0, got nan' },
  { 'threat with eps Inf', [[lat.threat{ where = 'fc1', eps = 1 / 0 }]], 'eps must be a finite number >= 0, got inf' },
  { 'threat with a negative eps', [[lat.threat{ where = 'fc1', eps = -1 }]], 'eps must be a finite number >= 0, got -1' },
  { 'threat with a string eps', [[lat.threat{ where = 'fc1', eps = 'big' }]], 'eps must be a finite number' },
  { 'threat without eps', [[lat.threat{ where = 'fc1' }]], 'eps must be a finite number' },
  { 'threat without where', [[lat.threat{ eps = 1 }]], 'where is required' },
  { 'threat with an empty where', [[lat.threat{ where = {}, eps = 1 }]], 'where must name at least one place' },
  { 'threat with a numeric where', [[lat.threat{ where = 5, eps = 1 }]], 'where[1] must be a non-empty string' },
  { 'threat with an unknown norm', [[lat.threat{ where = 'fc1', eps = 1, norm = 'l3' }]], "norm must be 'l2', 'linf' or 'l1', got 'l3'" },
  { 'threat with an unknown granularity', [[lat.threat{ where = 'fc1', eps = 1, granularity = 'pixel' }]], 'granularity must be' },
  { 'threat with a one-number clamp', [[lat.threat{ where = 'fc1', eps = 1, clamp = { 1 } }]], 'clamp must be {lo, hi}' },
  { 'threat with a reversed clamp', [[lat.threat{ where = 'fc1', eps = 1, clamp = { 1, 0 } }]], 'lo <= hi' },
  { 'threat with a misspelt setting', [[lat.threat{ where = 'fc1', eps = 1, epsilon = 2 }]], "unknown setting 'epsilon'" },
  { 'threat with a string mask', [[lat.threat{ where = 'fc1', eps = 1, mask = 'first' }]], 'mask must be a tensor or a function' },
  { 'threat of a non-table', [[lat.threat('fc1')]], 'threat: expected a table of settings' },

  -- attacks
  { 'pgd with negative steps', [[lat.attack.pgd(mlp(), batch, tm, { steps = -3 })]], 'steps must be an integer >= 0, got -3' },
  { 'pgd with fractional steps', [[lat.attack.pgd(mlp(), batch, tm, { steps = 2.5 })]], 'steps must be an integer >= 0, got 2.5' },
  { 'pgd with NaN steps', [[lat.attack.pgd(mlp(), batch, tm, { steps = 0 / 0 })]], 'steps must be an integer >= 0, got nan' },
  { 'pgd with a zero step size', [[lat.attack.pgd(mlp(), batch, tm, { step_size = 0 })]], 'step_size must be a finite number > 0, got 0' },
  { 'pgd with a negative step size', [[lat.attack.pgd(mlp(), batch, tm, { step_size = -1 })]], 'step_size must be a finite number > 0' },
  { 'pgd with an unknown rule', [[lat.attack.pgd(mlp(), batch, tm, { rule = 'newton' })]], "unknown step rule 'newton'" },
  { 'pgd with an unknown init', [[lat.attack.pgd(mlp(), batch, tm, { init = 'gauss' })]], "unknown initialisation 'gauss'" },
  { 'pgd with a bad objective', [[lat.attack.pgd(mlp(), batch, tm, { objective = 'confuse' })]], 'objective must be' },
  { 'pgd with a table for a threat', [[lat.attack.pgd(mlp(), batch, { where = 'fc1', eps = 1 })]], 'the third argument must be a lat.threat' },
  { 'pgd on a nil model', [[lat.attack.pgd(nil, batch, tm)]], 'the first argument must be a lat.nn model, got nil' },
  { 'pgd on a nil batch', [[lat.attack.pgd(mlp(), nil, tm)]], 'the second argument must be a batch table' },
  { 'pgd at an unknown layer', [[lat.attack.pgd(mlp(), batch, lat.threat{ where = 'fc7', eps = 1 })]], "no layer named 'fc7'" },
  { 'pgd on a NaN input', [[lat.attack.pgd(mlp(), nan_batch(), tm, { steps = 2 })]], "attack: the clean activation at 'fc1' is not finite" },
  { 'pgd at the input on a NaN input', [[lat.attack.pgd(mlp(), nan_batch(), lat.threat{ where = 'input', eps = 1 }, { steps = 2 })]], "the clean activation at 'input' is not finite" },
  { 'pgd with a NaN loss', [[lat.attack.pgd(mlp(), batch, tm, { steps = 2, objective = function(out) return (out * (0 / 0)):sum() end })]], "attack: step 1: the adversary's loss (nan) is not finite" },
  { 'the random control with negative steps is still checked', [[lat.attack.random(mlp(), batch, tm, { init = 'gauss' })]], "unknown initialisation 'gauss'" },
  { 'a universal perturbation with negative steps', [[lat.eval.heldout.universal.fit_uap(mlp(), batch, { steps = -1 })]], 'fit_uap: steps must be an integer >= 0, got -1' },
  { 'a patch of size 0', [[lat.eval.heldout.universal.fit_patch(mlp(), batch, { size = 0 })]], 'fit_patch: size must be an integer >= 1, got 0' },
  { 'a universal perturbation with step size NaN', [[lat.eval.heldout.universal.fit_uap(mlp(), batch, { step_size = 0 / 0 })]], 'fit_uap: step_size must be a finite number > 0, got nan' },
  { 'a universal perturbation on a model with a NaN bias', [[local m = mlp(); lat.no_grad(function() m.fc2.bias:set(0 / 0, 1) end)
    lat.eval.heldout.universal.fit_uap(m, batch, { steps = 2 })]], "universal: step 1: the loss is nan; the first non-finite value appears at layer 'fc2'" },
  { 'adversarial with a NaN weight', [[lat.train.adversarial{ threat = tm, weight = 0 / 0 }]], 'weight must be in [0, 1]' },
  { 'adversarial with weight 2', [[lat.train.adversarial{ threat = tm, weight = 2 }]], 'weight must be in [0, 1]' },
  { 'adversarial without a threat', [[lat.train.adversarial{}]], 'threat is required' },
  { 'adversarial with a number for the attack', [[lat.train.adversarial{ threat = tm, attack = 5 }]], 'attack must be a table' },

  -- evaluation
  { 'accuracy of a nil model', [[lat.eval.accuracy(nil, loader(batch))]], 'the first argument must be a lat.nn model' },
  { 'accuracy on a nil data set', [[lat.eval.accuracy(mlp(), nil)]], 'the second argument must be a data set' },
  { 'accuracy with NaN logits', [[lat.eval.accuracy(mlp(), loader(nan_batch()))]], 'eval.accuracy: batch 1: the logits are not finite' },
  { 'accuracy with NaN logits names the layer', [[local m = mlp(); lat.no_grad(function() m.fc2.bias:set(0 / 0, 1) end); lat.eval.accuracy(m, loader(batch))]], "layer 'fc2' (Linear)" },

  -- data
  { 'fashion_mnist with a missing data folder', [[lat.data.fashion_mnist('train')]], '/nonexistent', env = 'LAT_DATA=/nonexistent' },
  { 'moby_dick with a missing data folder', [[lat.data.moby_dick()]], '/nonexistent', env = 'LAT_DATA=/nonexistent' },
  { 'fashion_mnist of an unknown split', [[lat.data.fashion_mnist('validation')]], 'validation' },
  { 'DataLoader with batch size 0', [[lat.data.DataLoader(lat.data.TensorDataset{ x = x }, { batch_size = 0 })]], 'batch_size' },
  { 'DataLoader of nil', [[lat.data.DataLoader(nil, { batch_size = 2 })]], 'DataLoader' },

  -- checkpoints and logs
  { 'save to a nil path', [[lat.save(nil, { a = x })]], 'save: path must be a string, got nil' },
  { 'save a number as a tensor', [[lat.save(TMP .. '/a.safetensors', { a = 5 })]], "'a' is a number, not a tensor" },
  { 'save into a missing folder', [[lat.save('/nonexistent/dir/a.safetensors', { a = x })]], '/nonexistent/dir' },
  { 'load a checkpoint whose header is cut short', [[local f = io.open(TMP .. '/cut.safetensors', 'wb'); f:write('\255\255\0\0\0\0\0\0{"a":'); f:close(); lat.load(TMP .. '/cut.safetensors')]], 'cut.safetensors' },
  { 'load a missing file', [[lat.load(TMP .. '/missing.safetensors')]], 'missing.safetensors' },
  { 'run_dir with an empty path', [[lat.log.run_dir('', {})]], 'run_dir: path must be a non-empty string' },
  { 'csv without columns', [[lat.log.csv(TMP .. '/a.csv', {})]], 'csv: columns must be a non-empty array' },
  { 'read_csv of a missing file', [[lat.log.read_csv(TMP .. '/missing.csv')]], 'read_csv: cannot open' },
  { 'encode a table containing itself', [[local t = {}; t.t = t; lat.log.encode(t)]], 'nesting deeper than 64' },

  -- options
  { 'an unknown option', [[lat.args({ lr = 0.1 }, { '--rate=2' })]], "unknown option '--rate'" },
  { 'a NaN number option', [[lat.args({ lr = 0.1 }, { '--lr=nan' })]], "option --lr expects a number (finite), got 'nan'" },
  { 'an Inf number option', [[lat.args({ lr = 0.1 }, { '--lr=-inf' })]], "got '-inf'" },
  { 'a bad boolean option', [[lat.args({ quick = false }, { '--quick=maybe' })]], 'expects true or false' },
  { 'a negative count', [[lat.args.check(lat.args({ steps = 1 }, { '--steps=-5' }), { count = { 'steps' } })]], 'option --steps expects a positive integer, got -5' },
  { 'a fractional count', [[lat.args.check({ steps = 1.5 }, { count = { 'steps' } })]], 'expects a positive integer, got 1.5' },
  { 'a list with a word in it', [[lat.args.list('16,abc', 'count', 'widths')]], "option --widths: expected a comma-separated list of positive integers, got 'abc' in '16,abc'" },
  { 'check of an option that does not exist', [[lat.args.check({}, { count = { 'steps' } })]], "no option 'steps'" },
  { 'lat.core.raise is public', [[lat.core.raise('from a recipe')]], 'from a recipe' },

  -- recipes: a bad option fails at once, before data or training
  { 'train_fashion --widths=16,abc', nil, "option --widths: expected a comma-separated list of positive integers, got 'abc'", script = 'train_fashion.lua --widths=16,abc' },
  { 'train_fashion --lr=nan', nil, "option --lr expects a number (finite), got 'nan'", script = 'train_fashion.lua --lr=nan' },
  { 'train_fashion --epochs=-5', nil, 'option --epochs expects a positive integer, got -5', script = 'train_fashion.lua --epochs=-5' },
  { 'train_fashion --batch=0', nil, 'option --batch expects a positive integer, got 0', script = 'train_fashion.lua --batch=0' },
  { 'train_fashion --momentum=2', nil, 'option --momentum expects a number in [0, 1], got 2', script = 'train_fashion.lua --momentum=2' },
  { 'train_fashion with a missing data folder', nil, '/nonexistent', script = 'train_fashion.lua', env = 'LAT_DATA=/nonexistent' },
  { 'train_lm --steps=-5', nil, 'option --steps expects a positive integer, got -5', script = 'train_lm.lua --steps=-5' },
  { 'train_lm --dropout=2', nil, 'option --dropout expects a number in [0, 1], got 2', script = 'train_lm.lua --dropout=2' },
  { 'train_spam --tokenizer=chars', nil, "option --tokenizer must be 'words' or 'bytes'", script = 'train_spam.lua --tokenizer=chars' },
  { 'train_spam --lr=0', nil, 'option --lr expects a finite number > 0, got 0', script = 'train_spam.lua --lr=0' },
  { 'demo --steps=0', nil, 'option --steps expects a positive integer, got 0', script = 'demo.lua --steps=0' },
  { 'attack_universal --eps=-1', nil, 'option --eps expects a finite number >= 0, got -1', script = 'attack_universal.lua --eps=-1' },
  { 'attack_universal --layer=layer7', nil, "option --layer: no layer named 'layer7'", script = 'attack_universal.lua --layer=layer7' },
  { 'vision_trojans --lat_eps=0.1,x', nil, "option --lat_eps: expected a comma-separated list of finite numbers >= 0, got 'x'", script = 'vision_trojans.lua --lat_eps=0.1,x' },
  { 'vision_trojans --widths=16,abc', nil, "option --widths: expected a comma-separated list of positive integers, got 'abc'", script = 'vision_trojans.lua --widths=16,abc' },
  { 'text_trojans --seeds=1,x', nil, "option --seeds: expected a comma-separated list of integers >= 0, got 'x'", script = 'text_trojans.lua --seeds=1,x' },
  { 'text_trojans --typo_rates=1.5', nil, "option --typo_rates: expected a comma-separated list of numbers in [0, 1], got '1.5'", script = 'text_trojans.lua --typo_rates=1.5' },
  { 'lm_trojans --lat=h.0 (no radius)', nil, "lm_trojans: --lat takes layer:radius pairs (a radius >= 0), got 'h.0'", script = 'lm_trojans.lua --lat=h.0' },
  { 'lm_trojans --lat=h.0:nan', nil, "got 'h.0:nan'", script = 'lm_trojans.lua --lat=h.0:nan' },
  { 'lm_trojans --steps=-5', nil, 'option --steps expects a positive integer, got -5', script = 'lm_trojans.lua --steps=-5' },
  { 'lm_trojans --headline names nothing', nil, "--headline names 'AT embedding 9', which is not in the grid", script = 'lm_trojans.lua --headline=AT embedding 9' },
  { 'lm_trojans --lat=h.8:0.1 (no such layer)', nil, "option --lat: no layer named 'h.8'", script = 'lm_trojans.lua --lat=h.8:0.1' },
  { 'lm_trojans --rlp_layer=h.6', nil, "option --rlp_layer: no layer named 'h.6'", script = 'lm_trojans.lua --rlp_layer=h.6' },
  { 'targeted_lat --lat_layer=h.7', nil, "option --lat_layer: no layer named 'h.7'", script = 'targeted_lat.lua --lat_layer=h.7' },
  { 'vision_trojans --lat_layers=layer9', nil, "option --lat_layers: no layer named 'layer9'", script = 'vision_trojans.lua --lat_layers=layer2,layer9' },
  { 'text_trojans --lat_layers=h.4', nil, "option --lat_layers: no layer named 'h.4'", script = 'text_trojans.lua --lat_layers=h.4' },
  { 'targeted_lat --prompt_share=2', nil, 'option --prompt_share expects a number in [0, 1], got 2', script = 'targeted_lat.lua --prompt_share=2' },
  { 'targeted_lat --seeds=0', nil, 'option --seeds expects a positive integer, got 0', script = 'targeted_lat.lua --seeds=0' },
  { 'an in-place change of a saved tensor before backward', [[local a = lat.randn(3):requires_grad_(); local b = a:exp(); local s = b:sum(); lat.no_grad(function() b:mul_(2) end); s:backward()]], 'was modified in place after it was used' },
  { 'an in-place op on a tensor that requires gradients', [[local a = lat.randn(3):requires_grad_(); local b = a:exp(); b:mul_(2)]], 'requires gradients' },
  { 'backward twice', [[local a = lat.randn(3):requires_grad_(); local s = (a * a):sum(); s:backward(); s:backward()]], 'freed by an earlier backward pass' },
  -- a size whose byte count overflows
  { 'a tensor of 2^62 elements', [[lat.ones(2 ^ 31, 2 ^ 31)]], 'would take more than 2^48 bytes' },
  -- a JSON integer beyond 2^64 in a checkpoint header (it used to wrap: [2^64 + 2] read as [2])
  { 'a checkpoint with a shape beyond 2^64', [[local h = '{"a":{"dtype":"F32","shape":[18446744073709551618],"data_offsets":[0,8]}}'
    local f = io.open(TMP .. '/wrap.safetensors', 'wb'); f:write(string.char(#h, 0, 0, 0, 0, 0, 0, 0), h, string.rep('\0', 8)); f:close()
    lat.load(TMP .. '/wrap.safetensors')]], 'an integer too large for a size or offset' },
}

local repo = debug.getinfo(1, 'S').source:match('^@(.*/)tests/') or '../'

local function command(c, i)
  local env = 'MISUSE_TMP=' .. tmpdir .. ' LAT_NUM_THREADS=1 LAT_PROGRESS=plain ' .. (c.env or '')
  local target
  if c.script then
    local name, opts = c.script:match('^(%S+)%s*(.*)$')
    target = ("%srecipes/%s --quick --out=%s/run%d '%s'"):format(repo, name, tmpdir, i, opts)
    if opts == '' then target = ('%srecipes/%s --quick --out=%s/run%d'):format(repo, name, tmpdir, i) end
  else
    target = H.write(('%s/case%d.lua'):format(tmpdir, i), 'local lat = require "lat"\n' .. PRELUDE .. c[2] .. '\n')
  end
  return ('%s timeout -k 2 %d %s %s'):format(env, LIMIT, LAT, target)
end

local function check(c, out, i)
  local code = tonumber(out:match('%[exit (%d+)%]\n?$'))
  H.assert(code, 'no exit status in: ' .. out)
  H.assert(code ~= 0, 'the process succeeded (a silent result):\n' .. out)
  H.assert(code ~= 124 and code ~= 137, ('timed out after %d s:\n%s'):format(LIMIT, out))
  H.assert(code < 128, ('killed by signal %d:\n%s'):format(code - 128, out))
  local msg = out:match('lat: (.-)\nstack traceback') or out:match('lat: (.*)')
  H.assert(msg, 'not a Lua error:\n' .. out)
  local expected = c[3]:gsub('%$FILE', ('case%d.lua'):format(i))
  H.assert(msg:find(expected, 1, true), ("the message lacks '%s':\n%s"):format(expected, out))
end

-- two cases at a time: popen starts both before either is read
local t0 = os.time()
for i = 1, #cases, 2 do
  local running = {}
  for k = i, math.min(i + 1, #cases) do
    running[#running + 1] = { c = cases[k], i = k, p = assert(io.popen(command(cases[k], k) .. ' 2>&1; echo "[exit $?]"')) }
  end
  for _, r in ipairs(running) do
    local out = r.p:read('*a')
    r.p:close()
    H.test(r.c[1], function() check(r.c, out, r.i) end)
  end
end
-- the one switch that turns the finite check off: training on a NaN input then runs to the end
H.test('LAT_CHECK_FINITE=0 and lat.check_finite(false) turn the NaN check off', function()
  local code = 'local lat = require "lat"\n' .. PRELUDE .. 'fit{ batch = nan_batch() }\nprint("trained")\n'
  local script = H.write(tmpdir .. '/switch.lua', code)
  local out = H.run('LAT_CHECK_FINITE=0 ' .. LAT .. ' ' .. script)
  H.assert(out:find('trained', 1, true) and out:find('[exit 0]', 1, true), out)
  script = H.write(tmpdir .. '/switch2.lua', code:gsub('fit{', 'assert(lat.check_finite(false) == true); fit{'))
  out = H.run(LAT .. ' ' .. script)
  H.assert(out:find('trained', 1, true) and out:find('[exit 0]', 1, true), out)
end)
H.test(('at least 100 cases (%d, run in %d s)'):format(#cases, os.time() - t0), function()
  H.assert(#cases >= 100)
end)
H.finish()
