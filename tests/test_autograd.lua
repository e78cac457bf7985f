-- Autograd: reuse of a tensor, gradients of intermediates, no-grad, accumulation, long chains.
local H = require 'harness'
local lat = require 'lat'

H.test('a tensor used twice gets both contributions', function()
  local x = lat.tensor({ 1, -2, 3 }):requires_grad_()
  local y = (x * x + x):sum()
  y:backward()
  H.near(x.grad, { 3, -3, 7 }, 1e-6)
end)

H.test('gradient with respect to an intermediate value leaves .grad untouched', function()
  local x = lat.tensor({ 0.5, 1.5 }):requires_grad_()
  local w = lat.tensor({ 2, 3 }):requires_grad_()
  local h = x * w
  local y = (h * h):sum()
  local gh = lat.grad(y, h, { retain_graph = true })
  H.near(gh, { 2 * 1, 2 * 4.5 }, 1e-6)
  H.assert(x.grad == nil and w.grad == nil, 'lat.grad must not touch .grad')
  local gx, gw = unpack(lat.grad(y, { x, w }))
  H.near(gx, { 2 * 1 * 2, 2 * 4.5 * 3 }, 1e-5)
  H.near(gw, { 2 * 1 * 0.5, 2 * 4.5 * 1.5 }, 1e-5)
  H.assert(x.grad == nil and w.grad == nil, 'lat.grad must not touch .grad')
end)

H.test('gradient with respect to an input only skips parameter gradients', function()
  local x = lat.randn(4, 3):requires_grad_()
  local w = lat.randn(2, 3):requires_grad_()
  local loss = lat.linear(x, w):tanh():sum()
  local gx = lat.grad(loss, x, { retain_graph = true })
  H.assert(w.grad == nil, 'weight gradient must stay empty')
  -- compare with full backward
  loss:backward()
  H.near(gx, x.grad, 1e-6)
  H.assert(w.grad ~= nil, 'backward fills the weight gradient')
end)

H.test('a pass frees the graph it used: a second pass raises, unless the first retained it', function()
  local x = lat.tensor({ 1, 2 }):requires_grad_()
  local y = (x * x):sum()
  y:backward()
  H.near(x.grad, { 2, 4 }, 1e-6)
  H.raises(function() y:backward() end, 'freed by an earlier backward pass')
  H.raises(function() lat.grad(y, x) end, 'freed by an earlier backward pass')
  H.near(x.grad, { 2, 4 }, 1e-6) -- the refused passes added nothing
  local z = (x * x):sum()
  z:backward({ retain_graph = true })
  z:backward()
  H.near(x.grad, { 6, 12 }, 1e-6)
  -- a wanted intermediate value's own graph is not used by a pass that stops at it
  local h = x * 3
  local s = (h * h):sum()
  lat.grad(s, h)
  local u = h:sum()
  u:backward()
  H.near(x.grad, { 9, 15 }, 1e-6)
end)

H.test('a pass lets go of the buffers it used at once', function()
  local x = lat.randn(256, 256):requires_grad_()
  lat.collect()
  local before = lat.memory().live
  local loss = (x:tanh():exp() * 2):sum()
  loss:backward()
  x.grad = nil
  lat.collect() -- the temporaries' Lua handles; the loss is still alive
  -- the loss still holds its node, but no longer the 256x256 buffers of tanh and exp
  H.assert(lat.memory().live - before < 256 * 256 * 4, ('%d bytes still live'):format(lat.memory().live - before))
end)

H.test('no_grad records nothing and restores the mode', function()
  local x = lat.randn(3):requires_grad_()
  local y = lat.no_grad(function() return x * 2 end)
  H.assert(not y.requires_grad, 'result under no_grad must not require grad')
  H.assert(lat.is_grad_enabled(), 'mode restored')
  H.raises(function() lat.no_grad(function() error('boom') end) end, 'boom')
  H.assert(lat.is_grad_enabled(), 'mode restored after an error')
  H.assert((x * 2).requires_grad, 'recording again after no_grad')
end)

H.test('gradients accumulate until zeroed', function()
  local x = lat.tensor({ 1, 2 }):requires_grad_()
  for _ = 1, 3 do (x * 5):sum():backward() end
  H.near(x.grad, { 15, 15 }, 1e-6)
  x:zero_grad()
  H.near(x.grad, { 0, 0 }, 0)
  x.grad = nil
  H.assert(x.grad == nil, 'grad dropped')
end)

H.test('backward with an explicit output gradient', function()
  local x = lat.tensor({ { 1, 2 }, { 3, 4 } }):requires_grad_()
  local y = x * 3
  y:backward(lat.tensor({ { 1, 0 }, { 0, 2 } }))
  H.near(x.grad, { 3, 0, 0, 6 }, 1e-6)
end)

H.test('detach stops the gradient', function()
  local x = lat.tensor({ 2 }):requires_grad_()
  local y = (x * x:detach()):sum()
  y:backward()
  H.near(x.grad, { 2 }, 1e-6)
end)

H.test('a chain of 20000 ops backpropagates (no recursion limit)', function()
  local x = lat.tensor({ 1 }):requires_grad_()
  local y = x
  for _ = 1, 20000 do y = y * 1.0001 end
  y:sum():backward()
  H.near(x.grad:item(), 1.0001 ^ 20000, 1e-2 * 1.0001 ^ 20000)
end)

H.test('views (reshape, narrow) carry gradients to their base', function()
  local x = lat.arange(6):reshape(2, 3):requires_grad_()
  local y = x:reshape(6):narrow(1, 2, 3):sum() + x:narrow(1, 2, 1):sum() * 10
  y:backward()
  H.near(x.grad, { 0, 1, 1, 11, 10, 10 }, 1e-6)
end)

H.test('the same seed gives the same numbers at any thread count', function()
  local n = 200000
  lat.set_num_threads(1)
  local a = lat.randn(n, { rng = lat.Generator(7) })
  lat.set_num_threads(2)
  local b = lat.randn(n, { rng = lat.Generator(7) })
  H.near(a, b, 0)
  local c = lat.randn(n, { rng = lat.Generator(8) })
  H.assert(a:sub(c):abs():sum():item() > 1, 'another seed gives other numbers')
  local m, v = a:mean():item(), (a * a):mean():item()
  H.assert(math.abs(m) < 0.01 and math.abs(v - 1) < 0.02, ('normal moments %g %g'):format(m, v))
end)

H.finish()
