-- In-place ops and autograd: with gradients enabled an in-place change to a tensor that requires
-- gradients (as target or source) raises an error that says what to write instead; under no_grad
-- it is allowed, and every write counts in the storage's version (shared by views), so that
-- backward raises instead of giving a stale gradient when a tensor an op kept was changed.
-- Shapes of copy_/add_ must match, and writes into a copy that narrow made raise.
local H = require 'harness'
local lat = require 'lat'
local C = require('lat.core').C

local function leaf(...) return lat.randn(...):requires_grad_() end

H.test('add_ of a source that requires gradients raises and says to write h = h + d', function()
  local h, d = lat.zeros(2, 3), leaf(2, 3)
  H.raises(function() h:add_(d) end, 'add_: the source requires gradients', 'cannot pass on',
    'write t = t + alpha * x')
  H.near(h, lat.zeros(2, 3), 0, 'h untouched')
  H.raises(function() h:copy_(d) end, 'copy_: the source requires gradients')
  lat.no_grad(function() h:add_(d) end)
  H.near(h, d, 0, 'allowed under no_grad')
end)

H.test('y = 2 * x; y:mul_(3) raises instead of giving gradient 2', function()
  local x = leaf(3)
  local y = x * 2
  H.raises(function() y:mul_(3) end, 'mul_: the target requires gradients', 'write t = t * s', 'lat.no_grad')
  y:sum():backward()
  H.near(x.grad, { 2, 2, 2 }, 0, 'the graph is unharmed')
end)

H.test('every in-place method refuses a leaf that requires gradients, and allows it under no_grad', function()
  local g = lat.Generator(1)
  local cases = {
    fill_ = function(t) t:fill_(1) end, zero_ = function(t) t:zero_() end,
    copy_ = function(t) t:copy_(lat.ones(2, 3)) end, add_ = function(t) t:add_(1) end,
    mul_ = function(t) t:mul_(2) end, clamp_ = function(t) t:clamp_(0, 1) end,
    normal_ = function(t) t:normal_(0, 1, g) end, uniform_ = function(t) t:uniform_(0, 1, g) end,
    bernoulli_ = function(t) t:bernoulli_(0.5, g) end, set = function(t) t:set(5, 1, 2) end,
    mark_written = function(t) t:mark_written() end,
  }
  for name, write in pairs(cases) do
    local x = leaf(2, 3)
    local before, v0 = x:clone(), x._version
    H.raises(function() write(x) end, 'requires gradients')
    H.near(x, before, 0, name .. ': refused writes change nothing')
    H.assert(x._version == v0, name .. ': a refused write is not counted')
    lat.no_grad(write, x)
    H.assert(x._version == v0 + 1, name .. ': counted once under no_grad, version ' .. x._version)
  end
  local x = leaf(2, 3)
  lat.no_grad(function() x:set(5, 1, 2) end)
  H.assert(x:get(1, 2) == 5, 'set writes under no_grad')
end)

H.test('a leaf changed in place after use makes backward raise, leaving .grad alone', function()
  local x, w = lat.zeros(2, 3):requires_grad_(), lat.randn(2, 3)
  local loss = (x * w):sum()
  lat.no_grad(function() x:add_(1) end)
  H.raises(function() loss:backward() end, 'backward of mul: an input of shape [2, 3] was modified in place ' ..
    'after it was used (version 0, now 1); use an out-of-place op or clone it first')
  H.assert(x.grad == nil, 'no gradient accumulated')
end)

H.test('a tensor without gradients changed after use (the stale-gradient case) makes backward raise', function()
  local x, w = leaf(2, 3), lat.randn(2, 3)
  local loss = (x * w):sum()
  w:mul_(2) -- allowed with gradients on: w requires none, but x's gradient is w as it was
  H.raises(function() loss:backward() end, 'backward of mul', 'version 1, now 2')
  H.raises(function() lat.grad(loss, x) end, 'backward of mul', 'modified in place')
end)

H.test('a saved output changed in place makes backward raise', function()
  local x = leaf(4)
  local y = x:exp()
  local loss = y:sum()
  lat.no_grad(function() y:mul_(2) end)
  H.raises(function() loss:backward() end, 'backward of exp: its output of shape [4] was modified in place', 'version 0, now 1')
  local s = x:softmax(1)
  local l2 = (s * lat.randn(4)):sum()
  lat.no_grad(function() s:clamp_(0, 0.5) end)
  H.raises(function() l2:backward() end, 'its output', 'modified in place')
end)

H.test('changes that nothing kept sees leave backward working', function()
  local x = leaf(3)
  local y = x * 2
  local other = lat.ones(3)
  other:mul_(3)
  local z = (y + other):sum()
  lat.no_grad(function() z:mul_(1) end) -- the root itself is not kept by any node
  z:backward()
  H.near(x.grad, { 2, 2, 2 }, 0, 'gradient of 2 * x')
end)

H.test('an input whose values backward does not read may change after use, as in PyTorch', function()
  local w = leaf(3)
  local x = lat.ones(3)
  local parts = { w + x, w - x, (w * 2):sum():reshape(1), lat.cat({ w, x }, 1):narrow(1, 1, 3), -w }
  local loss = lat.cat(parts, 1):sum()
  lat.no_grad(function() x:fill_(5) end)
  loss:backward() -- add, sub, cat, narrow and sum need only the shapes of what they were given
  H.near(w.grad, { 4, 4, 4 }, 0, 'gradient through add, sub, sum, cat, narrow and neg') -- 1 + 1 + 2 + 1 - 1
  local u = leaf(3)
  local v = lat.ones(3)
  local prod = (u * v):sum()
  lat.no_grad(function() v:fill_(5) end)
  H.raises(function() prod:backward() end, 'backward of mul', 'modified in place')
end)

H.test('views share the version: reshape, detach, narrow along dimension 1', function()
  local x = lat.zeros(4, 3)
  local views = { x:reshape(12), x:detach(), x:narrow(1, 2, 2), x:select(1, 1) }
  H.assert(x._version == 0, 'fresh')
  views[1]:add_(lat.ones(12))
  for i, v in ipairs(views) do H.assert(v._version == 1, 'view ' .. i .. ' sees the write, version ' .. v._version) end
  views[3]:fill_(2)
  H.assert(x._version == 2 and x:get(2, 1) == 2, 'a narrow along dimension 1 writes through')
  local copy = x:clone()
  H.assert(copy._version == 0, 'a clone has its own count')
  local p, w = leaf(12), lat.randn(4, 3)
  local loss = (p * w:reshape(12)):sum()
  w:detach():mul_(2)
  H.raises(function() loss:backward() end, 'backward of mul', 'modified in place')
end)

H.test('copy_ and add_ of a [3, 2] into a [2, 3] raise', function()
  local t, s = lat.zeros(2, 3), lat.ones(3, 2)
  H.raises(function() t:copy_(s) end, 'copy_', '[2, 3]', '[3, 2]')
  H.raises(function() t:add_(s) end, 'add_', '[2, 3]', '[3, 2]')
  H.raises(function() t:add_(lat.ones(6)) end, 'add_', '[6]')
  H.near(t, lat.zeros(2, 3), 0, 'untouched')
  H.assert(t._version == 0, 'not counted')
  t:copy_(lat.ones(2, 3)):add_(lat.ones(2, 3), 2)
  H.near(t, lat.full({ 2, 3 }, 3), 0, 'same shapes work')
end)

H.test('writes into a copy that narrow made raise; clone() writes into a copy on purpose', function()
  local x = lat.zeros(2, 3)
  local c = x:narrow(2, 2, 2)
  H.raises(function() c:fill_(1) end, 'fill_', 'copy that narrow made', 'would not change the tensor it was narrowed from', 'clone()')
  H.raises(function() c:reshape(4):add_(1) end, 'add_', 'copy that narrow made')
  H.raises(function() x:select(2, 1):mul_(2) end, 'mul_', 'copy that narrow made')
  H.raises(function() c:set(1, 1, 1) end, 'set', 'copy that narrow made')
  H.near(x, lat.zeros(2, 3), 0, 'x untouched')
  local own = c:clone():fill_(7)
  H.near(own, lat.full({ 2, 2 }, 7), 0, 'the clone is writable')
  H.near(c + 1, lat.ones(2, 2), 0, 'reading the copy still works')
end)

H.test('the optimisers and an attack loop still work with gradients on', function()
  local g = lat.Generator(3)
  local n = 64
  local x = lat.randn({ n, 4 }, { rng = g })
  local y = lat.empty({ n }, 'int32')
  for i = 0, n - 1 do y.i[i] = x.f[4 * i] > 0 and 1 or 0 end
  for _, make in ipairs({
    function(ps) return lat.optim.SGD(ps, { lr = 0.5, momentum = 0.9 }) end,
    function(ps) return lat.optim.AdamW(ps, { lr = 0.05 }) end,
  }) do
    local m = lat.models.MLP{ sizes = { 4, 16, 2 }, rng = g }
    local opt = make(m:parameters())
    local first, last
    for _ = 1, 30 do
      opt:zero_grad()
      local loss = lat.cross_entropy(m(x), y)
      loss:backward()
      opt:step()
      first, last = first or loss:item(), loss:item()
    end
    H.assert(lat.is_grad_enabled(), 'gradients back on after the step')
    H.assert(last < first * 0.5, ('training lowers the loss: %g -> %g'):format(first, last))
    lat.optim.clip_grad_norm(m:parameters(), 1e-3)
    local r = lat.attack.pgd(m, { x = x, y = y }, lat.threat{ where = 'act1', norm = 'l2', eps = 2 }, { steps = 5 })
    H.assert(r.final_loss < r.losses[1], 'the attack moves its loss')
  end
  local p, grad = leaf(3), lat.ones(3)
  H.assert(C.lat_sgd_step_(p.ptr, grad.ptr, nil, 0.1, 0, 0, 0, 0, 1) ~= 0, 'a raw optimiser step with gradients on is refused')
end)

H.finish()
