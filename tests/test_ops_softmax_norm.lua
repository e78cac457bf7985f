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

H.finish()
