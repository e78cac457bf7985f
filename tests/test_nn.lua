-- lat.nn: layers against PyTorch, names, hooks (read, add, replace, pre), capture, state dicts,
-- freezing, summary, and errors that name the layer.
local H = require 'harness'
local lat = require 'lat'
local nn = lat.nn

-- a module whose parameters are replaced by the test's inputs
local function with_params(m, params)
  for name, t in pairs(params) do
    local owner, leaf = m, name
    local prefix, last = name:match('^(.*)%.([^.]+)$')
    if prefix then owner, leaf = m:module(prefix), last end
    rawset(owner, leaf, t)
  end
  return m
end

H.ops{
  { name = 'Linear module', inputs = { { 'x', { { 3, 5 } } }, { 'w', { { 4, 5 } } }, { 'b', { { 4 } } } },
    lat = function(x, w, b) return with_params(nn.Linear(5, 4), { weight = w, bias = b })(x) end,
    torch = 'F.linear(x, w, b)' },
  { name = "GELU{approximate = 'tanh'} module", inputs = { { 'x', { { 3, 7 } } } },
    lat = function(x) return nn.GELU{ approximate = 'tanh' }(x) end, torch = "F.gelu(x, approximate='tanh')" },
  { name = 'GELU module (exact by default)', inputs = { { 'x', { { 3, 7 } } } },
    lat = function(x) return nn.GELU()(x) end, torch = 'F.gelu(x)' },
  { name = 'attention, bidirectional', inputs = { { 'x', { { 2, 5, 8 } } }, { 'wqkv', { { 8, 24 } } }, { 'bqkv', { { 24 } } }, { 'wo', { { 8, 8 } } }, { 'bo', { { 8 } } } },
    lat = function(x, wqkv, bqkv, wo, bo)
      return with_params(nn.MultiheadSelfAttention(8, 2), { ['c_attn.weight'] = wqkv, ['c_attn.bias'] = bqkv, ['c_proj.weight'] = wo, ['c_proj.bias'] = bo })(x)
    end,
    torch = 'mhsa(x, wqkv.t(), bqkv, wo.t(), bo, 2)' },
  { name = 'attention, causal', inputs = { { 'x', { { 2, 6, 8 } } }, { 'wqkv', { { 8, 24 } } }, { 'bqkv', { { 24 } } }, { 'wo', { { 8, 8 } } }, { 'bo', { { 8 } } } },
    lat = function(x, wqkv, bqkv, wo, bo)
      return with_params(nn.MultiheadSelfAttention(8, 4, { causal = true }), { ['c_attn.weight'] = wqkv, ['c_attn.bias'] = bqkv, ['c_proj.weight'] = wo, ['c_proj.bias'] = bo })(x)
    end,
    torch = 'mhsa(x, wqkv.t(), bqkv, wo.t(), bo, 4, causal=True)' },
  { name = 'attention, padding mask', inputs = { { 'x', { { 2, 5, 8 } } }, { 'wqkv', { { 8, 24 } } }, { 'bqkv', { { 24 } } }, { 'wo', { { 8, 8 } } }, { 'bo', { { 8 } } },
      { 'pad', { {}, 'const', lat.tensor({ { 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1 } }, 'int32') } } },
    grad = { 'x', 'wqkv', 'bqkv', 'wo', 'bo' },
    lat = function(x, wqkv, bqkv, wo, bo, pad)
      return with_params(nn.MultiheadSelfAttention(8, 2), { ['c_attn.weight'] = wqkv, ['c_attn.bias'] = bqkv, ['c_proj.weight'] = wo, ['c_proj.bias'] = bo })(x, pad)
    end,
    torch = 'mhsa(x, wqkv.t(), bqkv, wo.t(), bo, 2, pad=pad)' },
  { name = 'attention op, causal, large enough to run threaded', inputs = { { 'q', { { 2, 128, 64 } } }, { 'k', { { 2, 128, 64 } } }, { 'v', { { 2, 128, 64 } } } },
    lat = function(q, k, v) return lat.attention(q, k, v, 2, { causal = true }) end,
    torch = 'attention(q, k, v, 2, causal=True)' },
}

local function mlp()
  return nn.Sequential{ { 'fc1', nn.Linear(4, 8) }, { 'act', nn.ReLU() }, { 'fc2', nn.Linear(8, 3) } }
end

H.test('named modules and parameters have stable dotted names', function()
  local m = lat.models.ResNet{ widths = { 4, 8, 16 }, blocks = { 1, 2, 1 } }
  local names = {}
  for _, e in ipairs(m:named_modules()) do names[e[1]] = e[2].__name end
  H.assert(names['layer2.1.conv1'] == 'Conv2d', 'layer2.1.conv1 (blocks count from 0, as in torchvision)')
  H.assert(names['layer2.0.downsample.0'] == 'Conv2d' and names['layer2.0.downsample.1'] == 'BatchNorm2d', 'downsample')
  H.assert(names['layer2.2'] == nil, 'no third block')
  H.assert(names['fc'] == 'Linear' and names[''] == 'ResNet', 'root and head')
  local pn = {}
  for _, e in ipairs(m:named_parameters()) do pn[#pn + 1] = e[1] end
  H.assert(pn[1] == 'conv1.weight' and pn[2] == 'bn1.weight' and pn[#pn] == 'fc.bias', table.concat(pn, ' '))
  local g = lat.models.GPT{ vocab = 20, max_len = 8, dim = 8, heads = 2, layers = 3 }
  H.assert(g:module('h.2.attn.v').__name == 'Identity', 'q/k/v hook points')
  H.raises(function() g:module('h.8') end, "no layer named 'h.8'", 'h.2.attn')
end)

H.test('hooks read, add to and replace activations; handles remove them', function()
  local m = mlp()
  local x = lat.randn(2, 4)
  local clean = m(x)
  local acts, h = m:capture('act')
  m(x)
  H.assert(acts.act and acts.act:size(2) == 8, 'captured')
  H.near(acts.act:clamp(-math.huge, 0):sum():item(), 0, 0, 'relu output is non-negative')
  h.remove()
  local zero = m:hook('act', function(a) return a * 0 end)
  local out = m(x)
  H.near(out, m.fc2.bias:reshape(1, 3):expand(2, 3), 1e-6, 'replacing the activation with zeros leaves the bias')
  zero.remove()
  H.near(m(x), clean, 0, 'removed hook changes nothing')
  local pre = m:hook('fc2', function(a) return a * 2 end, { pre = true })
  local doubled = m(x)
  pre.remove()
  H.near(doubled - m.fc2.bias, (clean - m.fc2.bias) * 2, 1e-5, 'pre-hook scales the input')
end)

H.test('the gradient with respect to a latent perturbation is one backward away', function()
  local m = mlp()
  local x = lat.randn(5, 4)
  local delta = lat.zeros(5, 8):requires_grad_()
  local h = m:hook('act', function(a) return a + delta end)
  local y = lat.randint(0, 3, { 5 })
  local loss = lat.cross_entropy(m(x), y)
  local g = lat.grad(loss, delta)
  h.remove()
  H.assert(m.fc1.weight.grad == nil, 'parameters untouched')
  -- the same gradient by hand: dL/d(act) = dL/dlogits @ W2
  local logits = lat.no_grad(function() return m(x) end)
  local p = logits:softmax(2)
  local onehot = lat.zeros(5, 3)
  for i = 0, 4 do onehot.f[i * 3 + y.i[i]] = 1 end
  local expect = ((p - onehot) * (1 / 5)):matmul(m.fc2.weight:detach())
  H.near(g, expect, 1e-6)
end)

H.test('several hooks at once on a transformer: residual stream and values', function()
  local g = lat.models.GPT{ vocab = 30, max_len = 8, dim = 8, heads = 2, layers = 2, rng = lat.Generator(5) }
  local ids = lat.randint(0, 30, { 2, 6 })
  local d1 = lat.zeros(2, 6, 8):requires_grad_()
  local d2 = lat.zeros(2, 6, 8):requires_grad_()
  local h = g:hooks({ ['h.1'] = function(r) return r + d1 end }, { pre = true })
  local hv = g:hook('h.0.attn.v', function(v) return v + d2 end)
  local loss = g(ids):sum()
  local g1, g2 = unpack(lat.grad(loss, { d1, d2 }))
  H.assert(g1:abs():sum():item() > 0 and g2:abs():sum():item() > 0, 'both perturbations receive gradient')
  h.remove(); hv.remove()
  -- causality: perturbing position 4 of the residual stream cannot change earlier logits
  local d = lat.zeros(2, 6, 8)
  for k = 0, 7 do d.f[(0 * 6 + 3) * 8 + k] = k - 3 end -- not constant: LayerNorm removes a shift
  local base = g(ids)
  local hh = g:hook('h.1', function(r) return r + d end, { pre = true })
  local moved = g(ids)
  hh.remove()
  local diff = (moved - base):abs():sum(3) -- [2, 6]
  H.near(diff:narrow(2, 1, 3), lat.zeros(2, 3), 1e-5, 'earlier positions unchanged')
  H.assert(diff:get(1, 4) > 1e-4, 'the perturbed position changes')
end)

H.test('train/eval reach every layer; batch norm uses running statistics in eval', function()
  local m = lat.models.ResNet{ widths = { 4, 8, 8 }, blocks = { 1, 1, 1 } }
  m:eval()
  for _, mod in ipairs(m:modules()) do H.assert(mod.training == false, 'eval everywhere') end
  local x = lat.randn(3, 1, 28, 28)
  H.near(m(x), m(x), 0, 'deterministic in eval')
  m:train()
  local before = m.bn1.running_mean:clone()
  m(x)
  H.assert(m.bn1.num_batches_tracked:item() == 1, 'num_batches_tracked counts training batches')
  H.assert((m.bn1.running_mean - before):abs():sum():item() > 0, 'training updates running stats')
end)

H.test('state_dict round trip, strict loading errors, freezing', function()
  local a, b = mlp(), mlp()
  b:load_state_dict(a:state_dict())
  local x = lat.randn(2, 4)
  H.near(a(x), b(x), 0)
  H.raises(function() b:load_state_dict({}) end, "missing 'fc1.weight'")
  local sd = a:state_dict(); sd.extra = lat.zeros(1)
  H.raises(function() b:load_state_dict(sd) end, "unexpected 'extra'")
  sd.extra = nil; sd['fc1.weight'] = lat.zeros(3, 3)
  H.raises(function() b:load_state_dict(sd) end, "'fc1.weight' is float32 8x4 in the model but float32 3x3")
  a:freeze('fc1')
  H.assert(not a.fc1.weight.requires_grad and a.fc2.weight.requires_grad, 'freeze by prefix')
  a(x):sum():backward()
  H.assert(a.fc1.weight.grad == nil and a.fc2.weight.grad ~= nil, 'frozen weights get no gradient')
  a:unfreeze()
  H.assert(a.fc1.weight.requires_grad, 'unfreeze')
end)

H.test('summary lists names, output shapes and parameter counts', function()
  local m = lat.models.SmallCNN{ width = 4 }
  local text = m:summary(lat.randn(2, 1, 28, 28))
  H.assert(text:find('block1.conv', 1, true) and text:find('{2, 4, 28, 28}', 1, true), text)
  H.assert(text:find('total parameters: ' .. m:num_parameters(), 1, true), text)
end)

H.test("GELU's approximate is 'none' or 'tanh'", function()
  H.raises(function() nn.GELU{ approximate = 'erf' } end, "GELU: approximate must be 'none' or 'tanh', got erf")
end)

H.test('an error inside a layer names the layer', function()
  local m = mlp()
  H.raises(function() m(lat.randn(2, 5)) end, "in layer 'fc1' (Linear)", 'linear: input [2, 5]')
  local r = lat.models.ResNet{ widths = { 4, 8, 8 }, blocks = { 1, 1, 1 } }
  H.raises(function() r(lat.randn(2, 3, 28, 28)) end, "in layer 'conv1' (Conv2d)", '3 channels')
end)

H.test('GPT generation: greedy is deterministic, sampling follows the seed', function()
  local g = lat.models.GPT{ vocab = 12, max_len = 6, dim = 8, heads = 2, layers = 1, rng = lat.Generator(2) }
  local a, b = g:generate({ 1, 2 }, 8), g:generate({ 1, 2 }, 8)
  H.assert(#a == 8 and table.concat(a, ',') == table.concat(b, ','), 'greedy repeats')
  local s1 = g:generate({ 1 }, 10, { temperature = 1, rng = lat.Generator(9) })
  local s2 = g:generate({ 1 }, 10, { temperature = 1, rng = lat.Generator(9) })
  H.assert(table.concat(s1, ',') == table.concat(s2, ','), 'same seed, same sample')
  for _, t in ipairs(s1) do H.assert(t >= 0 and t < 12, 'token in range') end
end)

H.finish()
