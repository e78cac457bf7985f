-- Softmax, log-softmax, cross-entropy, layer norm and batch norm: finite differences, PyTorch
-- parity, running statistics and error messages.
local H = require 'harness'
local lat = require 'lat'

-- logits scaled by 50: a naive exp would overflow float32
local big = lat.randn({ 4, 9 }, { rng = lat.Generator(5) }):mul(50)
-- labels with some positions ignored (-100, the default ignore_index)
local lab3 = lat.tensor({ { 0, 3, -100, 4 }, { 2, -100, 1, 1 }, { 4, 0, 0, -100 } }, 'int32')
local lab1 = lat.tensor({ 6, 0, 3, 3, 1, 5, 2 }, 'int32')
local lab_ign = lat.tensor({ 6, 2, 3, 2, 1, 5, 2 }, 'int32') -- ignore_index = 2 below

H.ops{
  { name = 'softmax last dim', inputs = { { 'x', { { 4, 7 } } } }, lat = function(x) return x:softmax() end, torch = 'x.softmax(-1)' },
  { name = 'softmax last dim 3-D odd', inputs = { { 'x', { { 3, 5, 13 } } } }, lat = function(x) return x:softmax(3) end, torch = 'x.softmax(2)' },
  { name = 'softmax middle dim', inputs = { { 'x', { { 3, 5, 7 } } } }, lat = function(x) return x:softmax(2) end, torch = 'x.softmax(1)' },
  { name = 'softmax first dim', inputs = { { 'x', { { 6, 3 } } } }, lat = function(x) return x:softmax(1) end, torch = 'x.softmax(0)' },
  { name = 'softmax middle dim wide inner (> 256 columns)', inputs = { { 'x', { { 2, 3, 261 } } } }, lat = function(x) return x:softmax(2) end, torch = 'x.softmax(1)' },
  { name = 'log_softmax last dim', inputs = { { 'x', { { 5, 11 } } } }, lat = function(x) return x:log_softmax(-1) end, torch = 'x.log_softmax(-1)' },
  { name = 'log_softmax middle dim', inputs = { { 'x', { { 2, 7, 3, 2 } } } }, lat = function(x) return x:log_softmax(2) end, torch = 'x.log_softmax(1)' },
  { name = 'softmax large logits (x50)', inputs = { { 'x', { { 4, 9 }, 'const', big } } }, lat = function(x) return x:softmax() end, torch = 'x.softmax(-1)', fd = { eps = 1e-3 } },
  { name = 'log_softmax large logits (x50)', inputs = { { 'x', { { 4, 9 }, 'const', big } } }, lat = function(x) return x:log_softmax() end, torch = 'x.log_softmax(-1)', fd = { eps = 1e-3 } },
  { name = 'log_softmax large logits middle dim', inputs = { { 'x', { { 4, 9 }, 'const', big } } }, lat = function(x) return x:log_softmax(1) end, torch = 'x.log_softmax(0)', fd = { eps = 1e-3 } },
  { name = 'cross_entropy mean', inputs = { { 'x', { { 7, 8 } } }, { 'y', { { 7 }, 'const', lab1 } } },
    lat = function(x, y) return lat.cross_entropy(x, y) end, torch = 'F.cross_entropy(x, y)' },
  { name = 'cross_entropy sum', inputs = { { 'x', { { 7, 8 } } }, { 'y', { { 7 }, 'const', lab1 } } },
    lat = function(x, y) return lat.cross_entropy(x, y, { reduction = 'sum' }) end, torch = 'F.cross_entropy(x, y, reduction="sum")' },
  { name = 'cross_entropy none', inputs = { { 'x', { { 7, 8 } } }, { 'y', { { 7 }, 'const', lab1 } } },
    lat = function(x, y) return lat.cross_entropy(x, y, { reduction = 'none' }) end, torch = 'F.cross_entropy(x, y, reduction="none")' },
  { name = 'cross_entropy mean ignore_index', inputs = { { 'x', { { 7, 8 } } }, { 'y', { { 7 }, 'const', lab_ign } } },
    lat = function(x, y) return lat.cross_entropy(x, y, { ignore_index = 2 }) end, torch = 'F.cross_entropy(x, y, ignore_index=2)' },
  { name = 'cross_entropy none ignore_index', inputs = { { 'x', { { 7, 8 } } }, { 'y', { { 7 }, 'const', lab_ign } } },
    lat = function(x, y) return lat.cross_entropy(x, y, { ignore_index = 2, reduction = 'none' }) end, torch = 'F.cross_entropy(x, y, ignore_index=2, reduction="none")' },
  { name = 'cross_entropy [B, T, C] mean', inputs = { { 'x', { { 3, 4, 5 } } }, { 'y', { { 3, 4 }, 'const', lab3 } } },
    lat = function(x, y) return lat.cross_entropy(x, y) end, torch = 'F.cross_entropy(x.permute(0, 2, 1), y)' },
  { name = 'cross_entropy [B, T, C] sum', inputs = { { 'x', { { 3, 4, 5 } } }, { 'y', { { 3, 4 }, 'const', lab3 } } },
    lat = function(x, y) return lat.cross_entropy(x, y, { reduction = 'sum' }) end, torch = 'F.cross_entropy(x.permute(0, 2, 1), y, reduction="sum")' },
  { name = 'cross_entropy [B, T, C] none', inputs = { { 'x', { { 3, 4, 5 } } }, { 'y', { { 3, 4 }, 'const', lab3 } } },
    lat = function(x, y) return lat.cross_entropy(x, y, { reduction = 'none' }) end, torch = 'F.cross_entropy(x.permute(0, 2, 1), y, reduction="none")' },
  { name = 'cross_entropy large logits (x50)', inputs = { { 'x', { { 4, 9 }, 'const', big } }, { 'y', { { 4 }, 'const', lat.tensor({ 8, 0, 3, 5 }, 'int32') } } },
    lat = function(x, y) return lat.cross_entropy(x, y, { reduction = 'none' }) end, torch = 'F.cross_entropy(x, y, reduction="none")', fd = { eps = 1e-3 } },
  -- one input reaching the op twice: the second backward adds to the first's gradient
  { name = 'softmax times log_softmax of one input (gradients accumulate)', inputs = { { 'x', { { 3, 4, 5 } } } },
    lat = function(x) return x:softmax(2) * x:log_softmax(-1) end, torch = 'x.softmax(1) * x.log_softmax(-1)' },
  { name = 'cross_entropy twice on one input (gradients accumulate)', inputs = { { 'x', { { 7, 8 } } }, { 'y', { { 7 }, 'const', lab_ign } } },
    lat = function(x, y) return lat.cross_entropy(x, y) + lat.cross_entropy(x, y, { reduction = 'sum', ignore_index = 2 }) end,
    torch = 'F.cross_entropy(x, y) + F.cross_entropy(x, y, reduction="sum", ignore_index=2)' },
  { name = 'layer_norm twice with shared weight and bias (gradients accumulate)', inputs = { { 'x', { { 4, 6 } } }, { 'w', { { 6 } } }, { 'b', { { 6 } } } },
    lat = function(x, w, b) return lat.layer_norm(x, w, b) * lat.layer_norm(x * x, w, b) end,
    torch = 'F.layer_norm(x, (6,), w, b) * F.layer_norm(x * x, (6,), w, b)' },
  { name = 'batch_norm twice with shared weight and bias (gradients accumulate)', inputs = { { 'x', { { 4, 3, 2, 2 } } }, { 'w', { { 3 } } }, { 'b', { { 3 } } } },
    lat = function(x, w, b) return lat.batch_norm(x, w, b, nil, nil, { training = true }) * lat.batch_norm(x * x, w, b, nil, nil, { training = true }) end,
    torch = 'F.batch_norm(x, None, None, w, b, training=True) * F.batch_norm(x * x, None, None, w, b, training=True)' },
  -- sizes above LAT_PAR_MIN (the rows named "threaded size") run the OpenMP paths
  { name = 'softmax last dim, threaded size', inputs = { { 'x', { { 64, 600 } } } }, lat = function(x) return x:softmax() end, torch = 'x.softmax(-1)' },
  { name = 'log_softmax middle dim, threaded size', inputs = { { 'x', { { 4, 40, 300 } } } }, lat = function(x) return x:log_softmax(2) end, torch = 'x.log_softmax(1)' },
  { name = 'cross_entropy mean, threaded size', inputs = { { 'x', { { 100, 400 } } }, { 'y', { { 100 }, 'int', 0, 400 } } },
    lat = function(x, y) return lat.cross_entropy(x, y) end, torch = 'F.cross_entropy(x, y)' },
  { name = 'layer_norm with weight and bias', inputs = { { 'x', { { 3, 4, 10 } } }, { 'w', { { 10 } } }, { 'b', { { 10 } } } },
    lat = function(x, w, b) return lat.layer_norm(x, w, b) end, torch = 'F.layer_norm(x, (10,), w, b)' },
  { name = 'layer_norm without weight and bias', inputs = { { 'x', { { 5, 7 } } } },
    lat = function(x) return lat.layer_norm(x) end, torch = 'F.layer_norm(x, (7,))' },
  { name = 'layer_norm weight only, eps 1e-3', inputs = { { 'x', { { 6, 9 } } }, { 'w', { { 9 } } } },
    lat = function(x, w) return lat.layer_norm(x, w, nil, 1e-3) end, torch = 'F.layer_norm(x, (9,), w, None, 1e-3)' },
  { name = 'layer_norm bias only', inputs = { { 'x', { { 2, 3, 5 } } }, { 'b', { { 5 } } } },
    lat = function(x, b) return lat.layer_norm(x, nil, b) end, torch = 'F.layer_norm(x, (5,), None, b)' },
  { name = 'layer_norm, threaded size (several column blocks)', inputs = { { 'x', { { 40, 1000 } } }, { 'w', { { 1000 } } }, { 'b', { { 1000 } } } },
    lat = function(x, w, b) return lat.layer_norm(x, w, b) end, torch = 'F.layer_norm(x, (1000,), w, b)' },
  { name = 'batch_norm training [N, C]', inputs = { { 'x', { { 6, 4 } } }, { 'w', { { 4 } } }, { 'b', { { 4 } } } },
    lat = function(x, w, b) return lat.batch_norm(x, w, b, nil, nil, { training = true }) end, torch = 'F.batch_norm(x, None, None, w, b, training=True)' },
  { name = 'batch_norm training [N, C, H, W]', inputs = { { 'x', { { 3, 4, 2, 3 } } }, { 'w', { { 4 } } }, { 'b', { { 4 } } } },
    lat = function(x, w, b) return lat.batch_norm(x, w, b, nil, nil, { training = true, eps = 1e-3 }) end, torch = 'F.batch_norm(x, None, None, w, b, training=True, eps=1e-3)' },
  { name = 'batch_norm training without weight and bias', inputs = { { 'x', { { 5, 3, 2, 2 } } } },
    lat = function(x) return lat.batch_norm(x, nil, nil, nil, nil, { training = true }) end, torch = 'F.batch_norm(x, None, None, training=True)' },
  { name = 'batch_norm training with running stats (output)', inputs = { { 'x', { { 6, 4 } } }, { 'w', { { 4 } } }, { 'b', { { 4 } } }, { 'rm', { { 4 } } }, { 'rv', { { 4 }, 'pos' } } },
    grad = { 'x', 'w', 'b' }, lat = function(x, w, b, rm, rv) return lat.batch_norm(x, w, b, rm:clone(), rv:clone(), { training = true }) end,
    torch = 'F.batch_norm(x, rm.clone(), rv.clone(), w, b, training=True)' },
  { name = 'batch_norm eval [N, C]', inputs = { { 'x', { { 5, 4 } } }, { 'w', { { 4 } } }, { 'b', { { 4 } } }, { 'rm', { { 4 } } }, { 'rv', { { 4 }, 'pos' } } },
    grad = { 'x', 'w', 'b' }, lat = function(x, w, b, rm, rv) return lat.batch_norm(x, w, b, rm, rv) end,
    torch = 'F.batch_norm(x, rm, rv, w, b, training=False)' },
  { name = 'batch_norm eval [N, C, H, W]', inputs = { { 'x', { { 3, 4, 2, 3 } } }, { 'w', { { 4 } } }, { 'b', { { 4 } } }, { 'rm', { { 4 } } }, { 'rv', { { 4 }, 'pos' } } },
    grad = { 'x', 'w', 'b' }, lat = function(x, w, b, rm, rv) return lat.batch_norm(x, w, b, rm, rv, { training = false, eps = 1e-3 }) end,
    torch = 'F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3)' },
  { name = 'batch_norm training, threaded size', inputs = { { 'x', { { 20, 8, 16, 16 } } }, { 'w', { { 8 } } }, { 'b', { { 8 } } } },
    lat = function(x, w, b) return lat.batch_norm(x, w, b, nil, nil, { training = true }) end, torch = 'F.batch_norm(x, None, None, w, b, training=True)' },
  { name = 'batch_norm running stats after one step (momentum 0.3) match PyTorch', inputs = { { 'x', { { 5, 3, 2, 2 } } }, { 'rm', { { 3 } } }, { 'rv', { { 3 }, 'pos' } } },
    grad = {}, lat = function(x, rm, rv)
      rm, rv = rm:clone(), rv:clone()
      lat.batch_norm(x, nil, nil, rm, rv, { training = true, momentum = 0.3 })
      return lat.cat({ rm, rv }, 1)
    end,
    torch = '(lambda m, v: (F.batch_norm(x, m, v, training=True, momentum=0.3), torch.cat([m, v]))[1])(rm.clone(), rv.clone())' },
  -- one tensor as several inputs of one op: each gradient write must respect whether the shared
  -- buffer already holds the other inputs' part (attention once overwrote dV with dQ + dK)
  { name = 'attention q = k = v (one tensor, gradients add up)', inputs = { { 'x', { { 2, 5, 8 } } } },
    lat = function(x) return lat.attention(x, x, x, 2) end, torch = 'attention(x, x, x, 2)' },
  { name = 'attention q = k, causal', inputs = { { 'x', { { 2, 5, 8 } } }, { 'v', { { 2, 5, 8 } } } },
    lat = function(x, v) return lat.attention(x, x, v, 2, { causal = true }) end, torch = 'attention(x, x, v, 2, causal=True)' },
  { name = 'attention q = v', inputs = { { 'x', { { 2, 5, 8 } } }, { 'k', { { 2, 5, 8 } } } },
    lat = function(x, k) return lat.attention(x, k, x, 4) end, torch = 'attention(x, k, x, 4)' },
  { name = 'attention k = v', inputs = { { 'q', { { 2, 5, 8 } } }, { 'x', { { 2, 5, 8 } } } },
    lat = function(q, x) return lat.attention(q, x, x, 1) end, torch = 'attention(q, x, x, 1)' },
  { name = 'attention q = k = v, threaded size', inputs = { { 'x', { { 2, 128, 64 } } } },
    lat = function(x) return lat.attention(x, x, x, 2, { causal = true }) end, torch = 'attention(x, x, x, 2, causal=True)' },
  { name = 'layer_norm(x, x, x) on one row', inputs = { { 'x', { { 6 } } } },
    lat = function(x) return lat.layer_norm(x, x, x) end, torch = 'F.layer_norm(x, (6,), x, x)' },
  { name = 'layer_norm with weight = bias', inputs = { { 'x', { { 3, 6 } } }, { 'w', { { 6 } } } },
    lat = function(x, w) return lat.layer_norm(x, w, w) end, torch = 'F.layer_norm(x, (6,), w, w)' },
  { name = 'batch_norm with weight = bias', inputs = { { 'x', { { 4, 3, 2, 2 } } }, { 'w', { { 3 } } } },
    lat = function(x, w) return lat.batch_norm(x, w, w, nil, nil, { training = true }) end, torch = 'F.batch_norm(x, None, None, w, w, training=True)' },
}

H.test('cross_entropy mean with every label ignored is nan with zero gradient, as PyTorch', function()
  local x = lat.randn({ 3, 4 }):requires_grad_(true)
  local loss = lat.cross_entropy(x, lat.tensor({ -100, -100, -100 }, 'int32'))
  H.assert(loss:item() ~= loss:item(), 'expected nan, got ' .. loss:item())
  local g = lat.grad(loss, { x })[1]
  H.near(g, lat.zeros(3, 4), 0)
end)

H.test('cross_entropy rejects labels that are not int32', function()
  H.raises(function() lat.cross_entropy(lat.randn(3, 4), lat.tensor({ 0, 1, 2 })) end,
    'cross_entropy', 'labels must be int32', 'float32')
end)

H.test('cross_entropy rejects a label out of range, naming position and value', function()
  H.raises(function() lat.cross_entropy(lat.randn(2, 3, 4), lat.tensor({ { 0, 1, 2 }, { 3, 4, 0 } }, 'int32')) end,
    'cross_entropy', 'label 4', 'position [1, 1]', '[0, 4)')
  H.raises(function() lat.cross_entropy(lat.randn(3, 4), lat.tensor({ 0, -1, 2 }, 'int32')) end,
    'label -1', 'position [1]')
end)

H.test('cross_entropy rejects labels of the wrong shape', function()
  H.raises(function() lat.cross_entropy(lat.randn(3, 4), lat.tensor({ 0, 1 }, 'int32')) end,
    'cross_entropy', 'logits [3, 4]', 'labels of shape [3]', 'got labels [2]')
  H.raises(function() lat.cross_entropy(lat.randn(2, 3, 4), lat.zeros({ 6 }, 'int32')) end,
    'labels of shape [2, 3]', 'got labels [6]')
end)

H.test('batch_norm updates running_mean and running_var in place as PyTorch does', function()
  local N, C, Hh, W, mom = 4, 3, 2, 5, 0.2
  local x = lat.randn({ N, C, Hh, W }, { rng = lat.Generator(7) })
  local rm, rv = lat.tensor({ 0.5, -1, 2 }), lat.tensor({ 1.5, 0.25, 3 })
  local rm0, rv0 = rm:clone(), rv:clone()
  lat.batch_norm(x, nil, nil, rm, rv, { training = true, momentum = mom })
  local m = N * Hh * W
  for c = 1, C do
    local s, ss = 0, 0
    for n = 1, N do for i = 1, Hh do for j = 1, W do s = s + x:get(n, c, i, j) end end end
    local mean = s / m
    for n = 1, N do for i = 1, Hh do for j = 1, W do ss = ss + (x:get(n, c, i, j) - mean) ^ 2 end end end
    local unbiased = ss / (m - 1)
    H.near(rm:get(c), (1 - mom) * rm0:get(c) + mom * mean, 1e-6, 'running_mean[' .. c .. ']')
    H.near(rv:get(c), (1 - mom) * rv0:get(c) + mom * unbiased, 1e-6, 'running_var[' .. c .. ']')
  end
  -- evaluation mode leaves them alone
  local rm1, rv1 = rm:clone(), rv:clone()
  lat.batch_norm(x, nil, nil, rm, rv, { training = false })
  H.near(rm, rm1, 0, 'running_mean after eval')
  H.near(rv, rv1, 0, 'running_var after eval')
end)

H.test('batch_norm and layer_norm report bad arguments', function()
  H.raises(function() lat.batch_norm(lat.randn(4, 3), nil, nil, nil, nil, { training = false }) end,
    'batch_norm', 'evaluation mode needs the running mean and variance')
  H.raises(function() lat.batch_norm(lat.randn(1, 3), nil, nil, nil, nil, { training = true }) end,
    'batch_norm', 'more than one value per channel', '[1, 3]')
  H.raises(function() lat.batch_norm(lat.randn(2, 3, 4), nil, nil, nil, nil, { training = true }) end,
    'batch_norm', '[N, C] or [N, C, H, W]', '[2, 3, 4]')
  H.raises(function() lat.batch_norm(lat.randn(4, 3, 2, 2), lat.ones(4), nil, nil, nil, { training = true }) end,
    'batch_norm', 'weight must be [3]', 'got [4]')
  H.raises(function() lat.layer_norm(lat.randn(4, 3), lat.ones(4)) end, 'layer_norm', 'weight must be [3]', 'got [4]')
  H.raises(function() lat.layer_norm(lat.randn(4, 3), nil, lat.ones(3, 1)) end, 'layer_norm', 'bias must be [3]', 'got [3, 1]')
end)

-- Short rows (3 features) and channels with mean/std = 100: lat's error against float64 must be no
-- worse than PyTorch's float32 on the same inputs, forward and backward (layer_norm was 2.4x worse)
local TORCH_NORMS = [[
import json, sys, torch
import torch.nn.functional as F
case = json.load(sys.stdin)
x32 = torch.tensor(case["x"], dtype=torch.float32).reshape(case["shape"])
g32 = torch.tensor(case["g"], dtype=torch.float32).reshape(case["shape"])
def run(dt):
    x = x32.to(dt).detach().clone().requires_grad_(True)
    y = F.layer_norm(x, x.shape[-1:]) if case["op"] == "layer_norm" else F.batch_norm(x, None, None, training=True)
    y.backward(g32.to(dt))
    return y.detach().double(), x.grad.double()
y32, gx32 = run(torch.float32)
y64, gx64 = run(torch.float64)
json.dump({"y": y64.reshape(-1).tolist(), "gx": gx64.reshape(-1).tolist(),
           "err_y": (y32 - y64).abs().max().item(), "err_gx": (gx32 - gx64).abs().max().item()}, sys.stdout)
]]
H.test('layer_norm and batch_norm with mean/std = 100: no worse than PyTorch float32 against float64', function()
  local cjson = require 'cjson'
  local g = lat.Generator(11)
  local cases = {
    { 'layer_norm', { 2000, 3 }, function(x) return lat.layer_norm(x) end },
    { 'layer_norm', { 500, 8 }, function(x) return lat.layer_norm(x) end },
    { 'batch_norm', { 64, 3, 4, 4 }, function(x) return lat.batch_norm(x, nil, nil, nil, nil, { training = true }) end },
    { 'batch_norm', { 3, 5 }, function(x) return lat.batch_norm(x, nil, nil, nil, nil, { training = true }) end },
  }
  for _, c in ipairs(cases) do
    local x = (lat.randn(c[2], { rng = g }) + 100):detach():requires_grad_(true)
    local gy = lat.randn(c[2], { rng = g })
    local y = c[3](x)
    local gx = lat.grad(y, { x }, gy)[1]
    local script, tmp = H.write(os.tmpname(), TORCH_NORMS), os.tmpname()
    H.write(tmp, cjson.encode({ op = c[1], shape = c[2], x = H.flat(x), g = H.flat(gy) }))
    local p = assert(io.popen(('/usr/bin/python3 %s < %s'):format(script, tmp)))
    local ref = cjson.decode(p:read('*a'))
    p:close()
    os.remove(tmp)
    os.remove(script)
    local function err(t, want)
      local e = 0
      for k = 0, t:numel() - 1 do e = math.max(e, math.abs(t.f[k] - want[k + 1])) end
      return e
    end
    local what = ('%s %s'):format(c[1], table.concat(c[2], 'x'))
    local ey, eg = err(y, ref.y), err(gx, ref.gx)
    H.assert(ey <= ref.err_y, ('%s forward: error %.3g, PyTorch float32 %.3g'):format(what, ey, ref.err_y))
    H.assert(eg <= ref.err_gx, ('%s backward: error %.3g, PyTorch float32 %.3g'):format(what, eg, ref.err_gx))
  end
end)

H.finish()
