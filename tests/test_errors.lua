-- Misuse raises a Lua error that names the op, the shapes (or dtype, position, value) and what
-- was expected, and points at the caller's line; afterwards the library keeps working.
local H = require 'harness'
local lat = require 'lat'

local THIS = 'test_errors.lua'

-- H.raises, and also: the message starts at this file's line where fn was written (so each fn
-- below is written on one line and calls the library without a tail call).
local function raises(fn, ...)
  local err = H.raises(fn, ...)
  local line = debug.getinfo(fn, 'S').linedefined
  H.assert(err:find(THIS .. ':' .. line .. ': ', 1, true), ("error does not point at %s:%d: %s"):format(THIS, line, err), 2)
  return err
end

local function ids(t) return lat.tensor(t, 'int32') end

H.test('add with shapes that do not broadcast', function()
  raises(function() local _ = lat.ones(2, 3) + lat.ones(4) end, 'add', '[2, 3]', '[4]', 'do not broadcast')
  raises(function() local _ = lat.ones(5, 2) - lat.ones(3, 2) end, 'sub', '[5, 2]', '[3, 2]', 'dimension 1: 5 vs 3')
end)

H.test('matmul with different inner sizes', function()
  raises(function() local _ = lat.ones(2, 3):matmul(lat.ones(4, 5)) end, 'matmul', '[2, 3]', '[4, 5]', 'inner sizes differ (3 vs 4)')
  raises(function() local _ = lat.ones(3):matmul(lat.ones(3, 2)) end, 'matmul', '[3]', 'at least 2 dimensions')
end)

H.test('linear with a feature mismatch', function()
  raises(function() local _ = lat.linear(lat.ones(2, 3), lat.ones(5, 4)) end, 'linear', '[2, 3]', '[5, 4]', 'expects 4')
  raises(function() local _ = lat.linear(lat.ones(2, 4), lat.ones(5, 4), lat.ones(3)) end, 'linear', 'bias', '[5]', '[3]')
end)

H.test('reshape to a wrong element count', function()
  raises(function() local _ = lat.ones(2, 3):reshape(4, 2) end, 'reshape', '[2, 3]', '6 elements', '[4, 2]', '8 elements')
  raises(function() local _ = lat.ones(2, 3):reshape(4, -1) end, 'reshape', '[2, 3]', '-1')
end)

H.test('narrow out of range', function()
  raises(function() local _ = lat.ones(2, 3):narrow(2, 3, 2) end, 'narrow', 'elements 3 to 4', 'dimension 2', 'size 3', '[2, 3]')
  raises(function() local _ = lat.ones(2, 3):narrow(2, 0, 1) end, 'narrow', 'start 0')
  raises(function() local _ = lat.ones(2, 3):select(1, 3) end, 'select', 'position 3', '[2, 3]', '1 to 2')
end)

H.test('cat with mismatched shapes or dtypes', function()
  raises(function() local _ = lat.cat({ lat.ones(2, 3), lat.ones(3, 4) }, 1) end, 'cat', 'tensor 2', '[3, 4]', '[2, 3]', 'except in dimension 1')
  raises(function() local _ = lat.cat({ lat.ones(2, 3), lat.ones(2, 3, 'int32') }, 2) end, 'cat', 'int32', 'float32')
end)

H.test('a float op on an int32 tensor', function()
  raises(function() local _ = lat.ones(2, 'int32'):exp() end, 'exp', 'must be float32', 'int32')
  raises(function() local _ = lat.ones(2, 'int32') + lat.ones(2) end, 'add', 'first input must be float32', 'int32')
  raises(function() local _ = lat.ones(2, 2):matmul(lat.ones(2, 2, 'uint8')) end, 'matmul', 'second input must be float32', 'uint8')
  raises(function() local _ = lat.ones(2, 'int32'):sum() end, 'sum', 'float32', 'int32')
end)

H.test('requires_grad on an int32 tensor', function()
  raises(function() local _ = lat.ones(2, 'int32'):requires_grad_() end, 'requires_grad', 'float32', 'int32')
  raises(function() local _ = lat.zeros(2, { dtype = 'int32', requires_grad = true }) end, 'requires_grad', 'int32')
end)

H.test('backward on a non-scalar', function()
  local x = lat.randn(2, 3):requires_grad_()
  local y = x * 2
  raises(function() y:backward() end, 'backward', 'shape [2, 3]', 'single number')
  raises(function() y:backward(lat.ones(4)) end, 'backward', '[4]', '[2, 3]')
end)

H.test('backward on a tensor that does not require grad', function()
  local y = lat.ones(3):sum()
  raises(function() y:backward() end, 'backward', 'does not require gradients')
  local x = lat.ones(3):requires_grad_()
  local z = lat.no_grad(function() return (x * 2):sum() end)
  raises(function() z:backward() end, 'backward', 'no_grad')
end)

H.test('lat.grad with respect to an unused tensor or one without gradients', function()
  local x, w = lat.randn(3):requires_grad_(), lat.randn(4):requires_grad_()
  local loss = (x * x):sum()
  raises(function() local _ = lat.grad(loss, w) end, 'grad', 'input 1', '[4]', 'not used')
  raises(function() local _ = lat.grad(loss, { x, w }) end, 'grad', 'input 2', '[4]', 'not used')
  raises(function() local _ = lat.grad(loss, { x, lat.ones(5) }) end, 'grad', 'input 2', '[5]', 'does not require gradients')
end)

H.test('embedding id out of range, or ids not int32', function()
  local w = lat.randn(5, 3)
  raises(function() local _ = lat.embedding(w, ids{ { 0, 1, 2 }, { 3, 4, 5 } }) end,
    'embedding', 'ids[2, 3] = 5', '0..4', '[5, 3]')
  raises(function() local _ = lat.embedding(w, ids{ 1, -1 }) end, 'embedding', 'ids[2] = -1', '0..4')
  raises(function() local _ = lat.embedding(w, lat.tensor{ 1, 2 }) end, 'embedding', 'ids', 'int32', 'float32')
  raises(function() local _ = lat.embedding(lat.randn(5), ids{ 1 }) end, 'embedding', 'weight', '[5]')
end)

H.test('gather and index_select index out of range, wrong dtype or shape', function()
  local x = lat.randn(3, 4)
  raises(function() local _ = x:gather(2, ids{ { 0, 7 } }) end, 'gather', 'index[1, 2] = 7', 'dimension 2', '[3, 4]', '0..3')
  raises(function() local _ = x:gather(1, ids{ { -1, 0 } }) end, 'gather', 'index[1, 1] = -1', 'dimension 1', '0..2')
  raises(function() local _ = x:gather(1, ids{ 0, 1 }) end, 'gather', '[2]', '[3, 4]')
  raises(function() local _ = x:gather(1, ids{ { 0, 1, 2, 0, 1 } }) end, 'gather', '[1, 5]', '[3, 4]')
  raises(function() local _ = x:gather(1, lat.zeros(1, 2, 'uint8')) end, 'gather', 'index', 'int32', 'uint8')
  raises(function() local _ = x:index_select(1, ids{ 0, 3 }) end, 'index_select', 'index[2] = 3', 'dimension 1', '0..2')
  raises(function() local _ = x:index_select(2, ids{ { 1 } }) end, 'index_select', 'one dimension', '[1, 1]')
  raises(function() local _ = x:index_select(2, lat.tensor{ 1 }) end, 'index_select', 'int32', 'float32')
end)

H.test('wrong dimension number: 0 or beyond ndim', function()
  local x = lat.randn(2, 3)
  raises(function() local _ = x:sum(0) end, 'sum', 'dimension 0', '1-based')
  raises(function() local _ = x:sum(3) end, 'sum', 'dimension 3', '[2, 3]', '2 dimensions')
  raises(function() local _ = x:sum(-3) end, 'sum', 'dimension -3', '[2, 3]')
  raises(function() local _ = x:mean(3) end, 'sum', 'dimension 3', '[2, 3]')
  raises(function() local _ = x:transpose(1, 3) end, 'transpose', 'dimension 3', '[2, 3]')
  raises(function() local _ = x:narrow(0, 1, 1) end, 'narrow', 'dimension 0')
  raises(function() local _ = x:narrow(5, 1, 1) end, 'narrow', 'dimension 5', '[2, 3]')
  raises(function() local _ = lat.cat({ x, x }, 3) end, 'cat', 'dimension 3', '[2, 3]')
  raises(function() local _ = x:argmax(3) end, 'argmax', 'dimension 3', '[2, 3]')
  raises(function() local _ = x:gather(3, ids{ { 0 } }) end, 'gather', 'dimension 3', '[2, 3]')
  raises(function() local _ = x:index_select(0, ids{ 0 }) end, 'index_select', 'dimension 0')
  raises(function() local _ = x:unsqueeze(4) end, 'unsqueeze', 'dimension 4', '[2, 3]')
  raises(function() local _ = x:select(3, 1) end, 'select', 'dimension 3', '[2, 3]')
  raises(function() local _ = x:sum({ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) end, 'sum', '9 dimensions')
end)

H.test('lat.args.list: items as strings or numbers; a non-number item names itself', function()
  local t = lat.args.list('0.1,0.3', 'number')
  assert(#t == 2 and t[1] == 0.1 and t[2] == 0.3)
  local s = lat.args.list('stem,layer2')
  assert(#s == 2 and s[1] == 'stem' and s[2] == 'layer2')
  assert(lat.args.list(5, 'number')[1] == 5)
  raises(function() local _ = lat.args.list('0.1,big', 'number') end, 'list of numbers', "'big'", "'0.1,big'")
end)

H.test('lat.args: unknown option and a non-number for a number option', function()
  local defaults = { lr = 0.1, epochs = 3, quick = false }
  raises(function() local _ = lat.args(defaults, { '--lrr=3' }) end, "unknown option '--lrr'", '--epochs --lr --quick')
  raises(function() local _ = lat.args(defaults, { '--lr=fast' }) end, '--lr', 'expects a number', "'fast'")
  raises(function() local _ = lat.args(defaults, { '--epochs', 'x3' }) end, '--epochs', 'expects a number', "'x3'")
  raises(function() local _ = lat.args(defaults, { '--quick=maybe' }) end, '--quick', 'true or false', "'maybe'")
  raises(function() local _ = lat.args(defaults, { '--lr' }) end, '--lr', 'needs a value')
  local opt = lat.args(defaults, { '--lr=0.5', '--quick' })
  H.assert(opt.lr == 0.5 and opt.quick == true and opt.epochs == 3, 'good arguments parsed wrongly')
end)

H.test('lat.tensor with a ragged table', function()
  raises(function() local _ = lat.tensor({ { 1, 2 }, { 3 } }) end, 'tensor', 'ragged', 'entry [2] has 1 entries', 'dimension 2 has 2')
  raises(function() local _ = lat.tensor({ { 1, 2 }, 3 }) end, 'tensor', 'ragged', 'entry [2] is a number')
  raises(function() local _ = lat.tensor({ 1, { 2 } }) end, 'tensor', 'ragged', 'entry [2] is a table')
  raises(function() local _ = lat.tensor({ { { 1 }, { 2 } }, { { 3 }, { 4, 5 } } }) end, 'tensor', 'entry [2, 2] has 2 entries')
  raises(function() local _ = lat.tensor({ { 1, 'a' } }) end, 'tensor', 'entry [1, 2] is a string')
end)

H.test('the message carries the caller file:line', function()
  local line = debug.getinfo(1, 'l').currentline + 1
  local ok, err = pcall(function() local a, b = lat.ones(2), lat.ones(3); local _ = a + b end)
  H.assert(not ok, 'no error')
  local want = THIS .. ':' .. line .. ': add: shapes [2] and [3]'
  H.assert(tostring(err):find(want, 1, true), ("expected '%s' in: %s"):format(want, tostring(err)))
  -- also from inside a function of the caller's, through two library layers (mean -> sum -> C)
  local function f(x)
    local m = x:mean(2)
    return m
  end
  line = debug.getinfo(1, 'l').currentline - 3
  ok, err = pcall(f, lat.randn(2))
  want = THIS .. ':' .. line .. ': sum: dimension 2'
  H.assert(not ok and tostring(err):find(want, 1, true), ("expected '%s' in: %s"):format(want, tostring(err)))
end)

H.test('after errors the library keeps working', function()
  local x = lat.randn(3, 4):requires_grad_()
  local w = lat.randn(5, 4):requires_grad_()
  -- a failed op inside a recorded computation, a failed grad and a failed no_grad block
  local h = lat.linear(x, w)
  H.assert(not pcall(function() local _ = h + lat.ones(4) end))
  H.assert(not pcall(function() local _ = lat.grad(h:sum(), { x, lat.ones(2) }) end))
  H.assert(not pcall(lat.no_grad, function() local _ = x:gather(1, ids{ { 9 } }) end))
  H.assert(lat.is_grad_enabled(), 'gradient mode not restored after an error in no_grad')
  local loss = h:tanh():sum()
  local gx, gw = unpack(lat.grad(loss, { x, w }, { retain_graph = true }))
  local t = (1 - h:tanh() ^ 2):detach()        -- d loss / d h
  H.near(gx, t:matmul(w:detach()), 1e-5, 'gradient of x after errors')
  H.near(gw, t.T:matmul(x:detach()), 1e-5, 'gradient of w after errors')
  loss:backward()
  H.near(x.grad, gx, 0, 'backward after errors')
  -- many failing calls neither leak memory nor break later calls
  lat.collect()
  local live = lat.memory().live
  local e = lat.randn(10, 4)
  for _ = 1, 1000 do
    pcall(function() local _ = lat.embedding(e, ids{ 0, 10 }) end)
    pcall(function() local _ = e:reshape(3, 3) end)
    pcall(function() local _ = lat.dropout(e, 2, true) end)
  end
  lat.collect()
  H.assert(lat.memory().live <= live + 4096, ('live bytes grew from %d to %d'):format(live, lat.memory().live))
  local out = lat.embedding(e, lat.tensor({ 9, 0 }, 'int32'))
  H.near(out:select(1, 1), e:select(1, 10), 0, 'embedding after errors')
end)

H.finish()
