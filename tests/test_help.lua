-- help() and help(x) (lat.tools.help), print(model) as a module tree, and summary without an
-- example input.
local H = require 'harness'
local lat = require 'lat'
local help = require 'lat.tools.help'
_G.lat = lat -- as in the REPL and the notebook kernel

-- 12345 -> '12,345'
local function commas(n)
  local s = tostring(n)
  while true do
    local t = s:gsub('^(%d+)(%d%d%d)', '%1,%2')
    if t == s then return s end
    s = t
  end
end

local function has(text, ...)
  for _, s in ipairs({ ... }) do H.assert(text:find(s, 1, true), ('missing %q in:\n%s'):format(s, text), 2) end
end

H.test('help() lists every namespace of lat with one line each', function()
  local text = help.text(nil, false)
  for k, v in pairs(lat) do
    if type(v) == 'table' and package.loaded['lat.' .. k] == v then has(text, '\n  lat.' .. k .. ' ') end
  end
  has(text, 'lat.attack      one projected-gradient attack', 'lat.Tensor')
  for line in text:gmatch('[^\n]+') do H.assert(#line <= 120, 'a long line: ' .. line) end
end)

H.test('help(function) prints the comment above its definition and where it is', function()
  local text = help.text(lat.attack.pgd, true)
  has(text, 'pgd(model, batch, threat, opts)', 'lua/lat/attack/init.lua:')
  H.assert(help.text('lat.attack.pgd', true) == text, 'a dotted name is looked up')
  has(help.text(function() end, true), 'no documentation above its definition')
end)

H.test('help(class) prints how to call it, its doc, its methods and what it inherits', function()
  local text = help.text(lat.models.ResNet, true)
  has(text, 'ResNet(opts) (class', 'ResNet{ widths = {16, 32, 64}', ':forward', 'inherited:', 'summary', 'named_parameters')
  has(help.text(lat.nn.Linear, true), 'Linear(n_in, n_out, opts)', ':extra_repr')
  local model = lat.models.MLP{ sizes = { 2, 3, 1 } }
  has(help.text(model, true), 'MLP(', '(class', ':forward')
end)

H.test('help(module) prints its header comment and its members by kind', function()
  local text = help.text(lat.attack, true)
  has(text, 'attack/init.lua: one projected-gradient attack', 'functions: ', 'pgd', 'modules: universal')
  has(help.text(lat, true), 'lat: tensors with autograd', 'modules: args, attack')
  has(help.text(lat.ones(2), true), 'tensor({1., 1.}', 'tensor/init.lua')
  has(help.text(3, true), '3 (a number)')
  has(help.text('lat.nosuch', true), "no value named 'lat.nosuch'")
end)

H.test('print(model): the module tree with names, settings and parameter counts', function()
  local net = lat.nn.Sequential{
    { 'conv', lat.nn.Conv2d(1, 4, 3, { stride = 2, padding = 1 }) },
    { 'bn', lat.nn.BatchNorm2d(4) },
    { 'act', lat.nn.ReLU() },
    { 'flat', lat.nn.Flatten() },
    { 'fc', lat.nn.Linear(4 * 14 * 14, 10, { bias = false }) },
  }
  local text = tostring(net)
  local conv, fc = 4 * 1 * 3 * 3 + 4, 4 * 14 * 14 * 10
  local want = table.concat({
    ('Sequential(  -- %s parameters'):format(commas(conv + 8 + fc)),
    '  (conv): Conv2d(1, 4, kernel_size=(3, 3), stride=2, padding=1, bias=true)  -- 40 parameters',
    '  (bn): BatchNorm2d(4, eps=1e-05, momentum=0.1)  -- 8 parameters',
    '  (act): ReLU()',
    '  (flat): Flatten(first=2)',
    '  (fc): Linear(784, 10, bias=false)  -- 7,840 parameters',
    ')',
  }, '\n')
  H.assert(text == want, 'got:\n' .. text .. '\nexpected:\n' .. want)
  H.assert(net:num_parameters() == conv + 8 + fc)
  -- a nested model: every container's count is the sum of its layers'
  local resnet = lat.models.ResNet{}
  local shown = tostring(resnet)
  has(shown, ('ResNet(  -- %s parameters'):format(commas(resnet:num_parameters())),
    '  (layer1): Sequential(', '      (conv1): Conv2d(16, 16, kernel_size=(3, 3)', '  (fc): Linear(64, 10, bias=true)  -- 650 parameters')
  H.assert(lat.repr(resnet) == shown, 'the REPL shows the same tree')
end)

H.test('summary without an example input says what it needs; with one it runs', function()
  local model = lat.models.ResNet{}
  H.raises(function() model:summary() end, 'summary: needs an example input', 'lat.zeros(1, 1, 28, 28)', 'print(model)')
  local text = model:summary(lat.zeros(1, 1, 28, 28))
  has(text, 'layer1', '{1, 16, 28, 28}', 'total parameters: ' .. model:num_parameters())
  local tc = lat.models.TransformerClassifier{ vocab = 50, max_len = 16, dim = 8, heads = 2, layers = 1, classes = 2 }
  has(tc:summary(lat.zeros({ 1, 16 }, 'int32')), 'total parameters:')
end)

H.finish()
