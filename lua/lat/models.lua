-- models.lua: the models experiments train and attack, built from lat.nn, each with named
-- blocks that serve as attack layers: an MLP, a small CNN, a ResNet for 28x28 images, a
-- transformer text classifier and a GPT-style decoder language model with generation.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local nn = require 'lat.nn'
local class, raise = nn.class, core.raise

local M = {}

-- Each model keeps the options it was built from (those that are plain data), so that a
-- checkpoint can rebuild it: lat.models.save(model, path) and lat.models.load(path).
local function remember(self, opts)
  local config = {}
  for k, v in pairs(opts or {}) do
    if type(v) == 'number' or type(v) == 'string' or type(v) == 'boolean' then config[k] = v
    elseif type(v) == 'table' then
      local list = {}
      for i, e in ipairs(v) do list[i] = e end
      config[k] = list
    end
  end
  rawset(self, 'config', config)
end

-- MLP{ sizes = {784, 256, 10} }: layers fc1, act1, fc2, ...; flattens its input
M.MLP = class('MLP')
function M.MLP:__init(opts)
  remember(self, opts)
  local sizes = opts.sizes
  self:add('flatten', nn.Flatten())
  for i = 1, #sizes - 1 do
    self:add('fc' .. i, nn.Linear(sizes[i], sizes[i + 1], opts))
    if i < #sizes - 1 then self:add('act' .. i, nn.ReLU()) end
  end
end
function M.MLP:forward(x)
  for _, n in ipairs(self._child_names) do x = self[n](x) end
  return x
end

-- SmallCNN{ channels = 1, classes = 10, width = 32 }: two conv blocks and a classifier
M.SmallCNN = class('SmallCNN')
function M.SmallCNN:__init(opts)
  remember(self, opts)
  opts = opts or {}
  local c, w = opts.channels or 1, opts.width or 32
  local function block(cin, cout)
    return nn.Sequential{ { 'conv', nn.Conv2d(cin, cout, 3, { padding = 1, rng = opts.rng }) }, { 'relu', nn.ReLU() }, { 'pool', nn.MaxPool2d(2) } }
  end
  self:add('block1', block(c, w))
  self:add('block2', block(w, 2 * w))
  self:add('flatten', nn.Flatten())
  self:add('fc', nn.Linear(2 * w * 7 * 7, opts.classes or 10, opts))
end
M.SmallCNN.forward = M.MLP.forward

-- ---------------------------------------------------------------- ResNet

-- BasicBlock: conv-bn-relu-conv-bn plus the input (through a 1x1 conv when the shape changes)
M.BasicBlock = class('BasicBlock')
function M.BasicBlock:__init(cin, cout, stride, opts)
  local r = { rng = opts and opts.rng }
  self:add('conv1', nn.Conv2d(cin, cout, 3, { stride = stride, padding = 1, bias = false, rng = r.rng }))
  self:add('bn1', nn.BatchNorm2d(cout))
  self:add('relu1', nn.ReLU())
  self:add('conv2', nn.Conv2d(cout, cout, 3, { padding = 1, bias = false, rng = r.rng }))
  self:add('bn2', nn.BatchNorm2d(cout))
  if stride ~= 1 or cin ~= cout then
    self:add('shortcut', nn.Sequential{
      { 'conv', nn.Conv2d(cin, cout, 1, { stride = stride, bias = false, rng = r.rng }) },
      { 'bn', nn.BatchNorm2d(cout) },
    })
  end
  self:add('relu2', nn.ReLU())
end
function M.BasicBlock:forward(x)
  local y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
  local s = rawget(self, 'shortcut')
  return self.relu2(y + (s and s(x) or x))
end

-- ResNet{ widths = {16, 32, 64}, blocks = {2, 2, 2}, channels = 1, classes = 10 }:
-- stem, layer1..layer3 (each a Sequential of BasicBlocks, the later ones halving the size),
-- global average pooling, fc.
M.ResNet = class('ResNet')
function M.ResNet:__init(opts)
  remember(self, opts)
  opts = opts or {}
  local widths, blocks = opts.widths or { 16, 32, 64 }, opts.blocks or { 2, 2, 2 }
  self:add('stem', nn.Sequential{
    { 'conv', nn.Conv2d(opts.channels or 1, widths[1], 3, { padding = 1, bias = false, rng = opts.rng }) },
    { 'bn', nn.BatchNorm2d(widths[1]) },
    { 'relu', nn.ReLU() },
  })
  local cin = widths[1]
  for s = 1, #widths do
    local list = {}
    for b = 1, blocks[s] do
      list[b] = M.BasicBlock(cin, widths[s], (b == 1 and s > 1) and 2 or 1, opts)
      cin = widths[s]
    end
    self:add('layer' .. s, nn.Sequential(list))
  end
  self:add('pool', nn.GlobalAvgPool2d())
  self:add('fc', nn.Linear(cin, opts.classes or 10, opts))
end
M.ResNet.forward = M.MLP.forward

-- ---------------------------------------------------------------- transformers

-- token + learned position embeddings; output [B, T, D]
M.Embed = class('Embed')
function M.Embed:__init(vocab, d, max_len, opts)
  self.max_len = max_len
  self:add('tok', nn.Embedding(vocab, d, { rng = opts.rng, std = 0.02 }))
  self:add('pos', nn.Embedding(max_len, d, { rng = opts.rng, std = 0.02 }))
  self._positions = {}
end
function M.Embed:forward(ids)
  local T = ids:size(2)
  if T > self.max_len then raise(('Embed: sequence of %d tokens is longer than the model\'s %d'):format(T, self.max_len)) end
  local pos = self._positions[T]
  if not pos then
    pos = lat.arange(T, 'int32')
    self._positions[T] = pos
  end
  return self.tok(ids) + self.pos(pos)
end

local function transformer_trunk(self, opts, causal)
  local d, heads = opts.dim or 128, opts.heads or 4
  self:add('embed', M.Embed(opts.vocab, d, opts.max_len, opts))
  self:add('drop', nn.Dropout(opts.dropout or 0, opts))
  local list = {}
  for i = 1, opts.layers or 4 do
    list[i] = nn.TransformerBlock(d, heads, { causal = causal, dropout = opts.dropout, rng = opts.rng, mlp_ratio = opts.mlp_ratio })
  end
  self:add('blocks', nn.Sequential(list))
  self:add('ln_f', nn.LayerNorm(d))
end


-- TransformerClassifier{ vocab=, max_len=, dim=, heads=, layers=, classes=, pad_id= }:
-- input ids [B, T] (int32); tokens equal to pad_id are masked out of attention and of the mean
-- pooling that feeds the classifier head.
M.TransformerClassifier = class('TransformerClassifier')
function M.TransformerClassifier:__init(opts)
  remember(self, opts)
  transformer_trunk(self, opts, false)
  self.pad_id = opts.pad_id
  self:add('head', nn.Linear(opts.dim or 128, opts.classes or 2, opts))
end
function M.TransformerClassifier:forward(ids)
  local mask = self.pad_id and ids:ne(self.pad_id) or nil
  local x = self.blocks(self.drop(self.embed(ids)), mask)
  x = self.ln_f(x)
  local pooled
  if mask then
    local m = mask:float():unsqueeze(3)                  -- [B, T, 1]
    pooled = (x * m):sum(2) / m:sum(2):clamp(1)
  else
    pooled = x:mean(2)
  end
  return self.head(pooled)
end

-- GPT{ vocab=, max_len=, dim=, heads=, layers= }: causal decoder; forward(ids [B, T]) gives
-- next-token logits [B, T, vocab].
M.GPT = class('GPT')
function M.GPT:__init(opts)
  remember(self, opts)
  transformer_trunk(self, opts, true)
  self:add('head', nn.Linear(opts.dim or 128, opts.vocab, { bias = false, rng = opts.rng }))
end
function M.GPT:forward(ids)
  return self.head(self.ln_f(self.blocks(self.drop(self.embed(ids)))))
end

-- generate(prompt ids (Lua array or int32 [T]), n, {temperature = 0 for greedy, top_k=, rng=})
-- -> Lua array of the new token ids. Runs without gradients, in evaluation mode.
function M.GPT:generate(prompt, n, opts)
  opts = opts or {}
  local ids = {}
  if type(n) ~= 'number' or n < 0 or n ~= math.floor(n) then raise(('generate: n must be an integer >= 0, got %s'):format(tostring(n))) end
  if lat.is_tensor(prompt) then for i = 0, prompt:numel() - 1 do ids[#ids + 1] = prompt.i[i] end
  elseif type(prompt) == 'table' then for i, v in ipairs(prompt) do ids[i] = v end
  else raise('generate: the prompt must be an int32 tensor or a table of token ids, got ' .. type(prompt)) end
  if #ids == 0 then raise('generate: the prompt is empty') end
  local g = opts.rng or lat.default_generator
  local max_len = self.embed.max_len
  local was_training = self.training
  self:eval()
  local out = {}
  lat.no_grad(function()
    for _ = 1, n do
      local start = math.max(1, #ids - max_len + 1)
      local ctx = lat.empty({ 1, #ids - start + 1 }, 'int32')
      for j = start, #ids do ctx.i[j - start] = ids[j] end
      local logits = self(ctx):select(2, -1):reshape(-1) -- [vocab]
      local V = logits:numel()
      local next_id
      if not opts.temperature or opts.temperature <= 0 then
        next_id = logits:argmax():item()
      else
        local probs = (logits * (1 / opts.temperature)):softmax(1)
        local pf, order = probs.f, {}
        for j = 0, V - 1 do order[#order + 1] = j end
        if opts.top_k and opts.top_k < V then
          table.sort(order, function(a, b) return pf[a] > pf[b] end)
          for j = #order, opts.top_k + 1, -1 do order[j] = nil end
        end
        local total = 0
        for _, j in ipairs(order) do total = total + pf[j] end
        local u = lat.rand({ 1 }, { rng = g }):item() * total
        next_id = order[#order]
        for _, j in ipairs(order) do
          u = u - pf[j]
          if u <= 0 then next_id = j; break end
        end
      end
      ids[#ids + 1] = next_id
      out[#out + 1] = next_id
    end
  end)
  self:train(was_training)
  return out
end

-- save(model, path[, metadata]): the parameters and buffers in the safetensors layout (zstd if
-- the name ends in .zst), with the model's class and options in the metadata
function M.save(model, path, metadata)
  local meta = {}
  for k, v in pairs(metadata or {}) do meta[k] = tostring(v) end
  meta.model = model.__name
  meta.config = require('lat.json').encode(model.config or {}) -- sorted keys, the same bytes each run
  return lat.save(path, model:state_dict(), { metadata = meta })
end

-- load(path) -> model (in evaluation mode), metadata: rebuilds the model saved by save
function M.load(path)
  local cjson = require 'cjson'
  local tensors, meta = lat.load(path)
  local cls = meta.model and M[meta.model]
  if not cls then raise(("checkpoint %s: no lat.models class recorded (metadata 'model' is %s)"):format(path, tostring(meta.model))) end
  local ok, config = pcall(cjson.decode, meta.config or '{}')
  if not ok then raise(('checkpoint %s: the model options are not valid JSON'):format(path)) end
  local model = cls(config)
  model:load_state_dict(tensors)
  model:eval()
  return model, meta
end

return M
