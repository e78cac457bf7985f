-- models/init.lua: the models experiments train and attack, built from lat.nn, each with named
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

-- BasicBlock: conv-bn-relu-conv-bn plus the input (through downsample, a 1x1 conv and its
-- batch norm, when the shape changes), named as torchvision's
M.BasicBlock = class('BasicBlock')
function M.BasicBlock:__init(cin, cout, stride, opts)
  local r = { rng = opts and opts.rng }
  self:add('conv1', nn.Conv2d(cin, cout, 3, { stride = stride, padding = 1, bias = false, rng = r.rng }))
  self:add('bn1', nn.BatchNorm2d(cout))
  self:add('relu1', nn.ReLU())
  self:add('conv2', nn.Conv2d(cout, cout, 3, { padding = 1, bias = false, rng = r.rng }))
  self:add('bn2', nn.BatchNorm2d(cout))
  if stride ~= 1 or cin ~= cout then
    self:add('downsample', nn.Sequential{ nn.Conv2d(cin, cout, 1, { stride = stride, bias = false, rng = r.rng }), nn.BatchNorm2d(cout) })
  end
  self:add('relu2', nn.ReLU())
end
function M.BasicBlock:forward(x)
  local y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
  local s = rawget(self, 'downsample')
  return self.relu2(y + (s and s(x) or x))
end

-- torchvision's depths: BasicBlocks per stage
local DEPTHS = { [18] = { 2, 2, 2, 2 }, [34] = { 3, 4, 6, 3 } }

-- ResNet{ widths = {16, 32, 64}, blocks = {2, 2, 2}, channels = 1, classes = 10, stem = 'small' }
-- or ResNet{ depth = 18 | 34 } (torchvision's resnet18/resnet34: widths 64..512, 3 channels,
-- 1000 classes, stem 'imagenet'): conv1, bn1, relu (the stem: a 3x3 stride-1 conv for small
-- images, or with stem = 'imagenet' a 7x7 stride-2 conv and maxpool), layer1..layerN (each a
-- Sequential of BasicBlocks counted from 0, the later ones halving the size), avgpool, fc. The
-- parameter and buffer names are torchvision's, so its state_dict loads as it is.
M.ResNet = class('ResNet')
function M.ResNet:__init(opts)
  remember(self, opts)
  opts = opts or {}
  local depth = opts.depth
  if depth ~= nil and not DEPTHS[depth] then raise(('ResNet: depth must be 18 or 34, got %s'):format(tostring(depth))) end
  local widths = opts.widths or (depth and { 64, 128, 256, 512 } or { 16, 32, 64 })
  local blocks = opts.blocks or (depth and DEPTHS[depth] or { 2, 2, 2 })
  local stem = opts.stem or (depth and 'imagenet' or 'small')
  if stem ~= 'small' and stem ~= 'imagenet' then raise(("ResNet: stem must be 'small' or 'imagenet', got %s"):format(tostring(stem))) end
  local channels = opts.channels or (depth and 3 or 1)
  if stem == 'imagenet' then
    self:add('conv1', nn.Conv2d(channels, widths[1], 7, { stride = 2, padding = 3, bias = false, rng = opts.rng }))
  else
    self:add('conv1', nn.Conv2d(channels, widths[1], 3, { padding = 1, bias = false, rng = opts.rng }))
  end
  self:add('bn1', nn.BatchNorm2d(widths[1]))
  self:add('relu', nn.ReLU())
  if stem == 'imagenet' then self:add('maxpool', nn.MaxPool2d(3, { stride = 2, padding = 1 })) end
  local cin = widths[1]
  for s = 1, #widths do
    local list = {}
    for b = 1, blocks[s] do
      list[b] = M.BasicBlock(cin, widths[s], (b == 1 and s > 1) and 2 or 1, opts)
      cin = widths[s]
    end
    self:add('layer' .. s, nn.Sequential(list))
  end
  self:add('avgpool', nn.GlobalAvgPool2d())
  self:add('fc', nn.Linear(cin, opts.classes or (depth and 1000 or 10), opts))
end
M.ResNet.forward = M.MLP.forward

-- ---------------------------------------------------------------- transformers

-- Transformer (Hugging Face's GPT2Model): token and position embeddings wte and wpe, dropout,
-- the blocks h.0, h.1, ... and the final LayerNorm ln_f; forward(ids [B, T], mask) gives the
-- hidden states [B, T, D]. The residual stream at the input of block i is the output of h.(i-1)
-- (of drop for i = 0).
M.Transformer = class('Transformer')
function M.Transformer:__init(opts, causal)
  local d, heads = opts.dim or 128, opts.heads or 4
  self.max_len = opts.max_len
  self:add('wte', nn.Embedding(opts.vocab, d, { rng = opts.rng, std = 0.02 }))
  self:add('wpe', nn.Embedding(opts.max_len, d, { rng = opts.rng, std = 0.02 }))
  self:add('drop', nn.Dropout(opts.dropout or 0, opts))
  local list = {}
  for i = 1, opts.layers or 4 do
    list[i] = { tostring(i - 1), nn.TransformerBlock(d, heads, { causal = causal, dropout = opts.dropout, rng = opts.rng,
      mlp_ratio = opts.mlp_ratio, eps = opts.eps, activation = opts.activation }) }
  end
  self:add('h', nn.Sequential(list))
  self:add('ln_f', nn.LayerNorm(d, { eps = opts.eps }))
  self._positions = {}
end
function M.Transformer:forward(ids, mask)
  local T = ids:size(2)
  if T > self.max_len then raise(('Transformer: sequence of %d tokens is longer than the model\'s %d'):format(T, self.max_len)) end
  local pos = self._positions[T]
  if not pos then
    pos = lat.arange(T, 'int32')
    self._positions[T] = pos
  end
  return self.ln_f(self.h(self.drop(self.wte(ids) + self.wpe(pos)), mask))
end

-- a layer of the trunk may be named without its 'transformer.' prefix: 'h.0' is 'transformer.h.0'
local function module_or_short(self, name)
  local ok, m = pcall(nn.Module.module, self, name)
  if ok then return m end
  local short_ok, short = pcall(nn.Module.module, self, 'transformer.' .. tostring(name))
  if short_ok then return short end
  raise(tostring(m):gsub('^.-(no layer named)', '%1'))
end

-- TransformerClassifier{ vocab=, max_len=, dim=, heads=, layers=, classes=, pad_id=, eps=, activation= }:
-- input ids [B, T] (int32); tokens equal to pad_id are masked out of attention and of the mean
-- pooling that feeds the head. The trunk is GPT-2's (transformer.*), the head is named score as
-- in Hugging Face's GPT2ForSequenceClassification and has no bias either (under mean pooling the
-- bias of ln_f gives one); unlike it, attention is bidirectional and the pooling is a mean.
M.TransformerClassifier = class('TransformerClassifier')
function M.TransformerClassifier:__init(opts)
  remember(self, opts)
  self:add('transformer', M.Transformer(opts, false))
  self.pad_id = opts.pad_id
  self:add('score', nn.Linear(opts.dim or 128, opts.classes or 2, { bias = false, rng = opts.rng }))
end
function M.TransformerClassifier:forward(ids)
  local mask = self.pad_id and ids:ne(self.pad_id) or nil
  local x = self.transformer(ids, mask)
  local pooled
  if mask then
    local m = mask:float():unsqueeze(3)                  -- [B, T, 1]
    pooled = (x * m):sum(2) / m:sum(2):clamp(1)
  else
    pooled = x:mean(2)
  end
  return self.score(pooled)
end
M.TransformerClassifier.module = module_or_short

-- GPT{ vocab=, max_len=, dim=, heads=, layers=, mlp_ratio = 4, eps = 1e-5, activation = 'gelu',
-- tie = true }: Hugging Face's GPT2LMHeadModel (transformer.*, lm_head; lm_head.weight is
-- transformer.wte.weight unless tie = false); forward(ids [B, T]) gives next-token logits
-- [B, T, vocab]. lat.models.gpt2 reads GPT-2's config.json and checkpoints.
M.GPT = class('GPT')
function M.GPT:__init(opts)
  remember(self, opts)
  self:add('transformer', M.Transformer(opts, true))
  self:add('lm_head', nn.Linear(opts.dim or 128, opts.vocab, { bias = false, rng = opts.rng }))
  if opts.tie ~= false then self.lm_head:param('weight', self.transformer.wte.weight) end
end
function M.GPT:forward(ids)
  return self.lm_head(self.transformer(ids))
end
M.GPT.module = module_or_short

-- generate(prompt ids (Lua array or int32 [T]), n, {temperature = 0 for greedy, top_k=, rng=})
-- -> Lua array of the new token ids. Runs without gradients, in evaluation mode.
function M.GPT:generate(prompt, n, opts)
  opts = opts or {}
  local ids = {}
  if not core.natural(n) then raise(('generate: n must be an integer >= 0, got %s'):format(tostring(n))) end
  if lat.is_tensor(prompt) then for i = 0, prompt:numel() - 1 do ids[#ids + 1] = prompt.i[i] end
  elseif type(prompt) == 'table' then for i, v in ipairs(prompt) do ids[i] = v end
  else raise('generate: the prompt must be an int32 tensor or a table of token ids, got ' .. type(prompt)) end
  if #ids == 0 then raise('generate: the prompt is empty') end
  local g = opts.rng or lat.default_generator
  local max_len = self.transformer.max_len
  local out = {}
  self:in_eval(lat.no_grad, function()
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
  return out
end

-- save(model, path[, metadata]): the parameters and buffers in the safetensors layout (zstd if
-- the name ends in .zst), with the model's class and options in the metadata
function M.save(model, path, metadata)
  local meta = {}
  for k, v in pairs(metadata or {}) do meta[k] = tostring(v) end
  meta.model = model.__name
  meta.config = require('lat.io.json').encode(model.config or {}) -- sorted keys, the same bytes each run
  local tensors = {} -- a tied tensor once, under its first name, as Hugging Face saves GPT-2
  for _, e in ipairs(model:named_parameters()) do tensors[e[1]] = e[2] end
  for _, e in ipairs(model:named_buffers()) do tensors[e[1]] = e[2] end
  return require('lat.io').save(path, tensors, { metadata = meta })
end

-- ---------------------------------------------------------------- checking a saved config

-- The options each class reads, by kind. A checkpoint's config comes from a file: it is checked
-- field by field before anything is built from it (a 156-byte file could ask for a Linear of
-- 2^31 x 2^31), and only these fields reach the constructors.
local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end
local TRANSFORMER = { vocab = 'count', max_len = 'count', dim = 'count', heads = 'count', layers = 'count',
                      mlp_ratio = 'count', dropout = 'probability', eps = 'epsilon', activation = 'activation' }
local FIELDS = {
  MLP = { sizes = 'counts', bias = 'boolean' },
  SmallCNN = { channels = 'count', classes = 'count', width = 'count', bias = 'boolean' },
  ResNet = { widths = 'counts', blocks = 'counts', channels = 'count', classes = 'count', bias = 'boolean', depth = 'count', stem = 'stem' },
  TransformerClassifier = with(TRANSFORMER, { classes = 'count', pad_id = 'integer' }),
  GPT = with(TRANSFORMER, { tie = 'boolean' }),
}
local REQUIRED = { MLP = { 'sizes' }, TransformerClassifier = { 'vocab', 'max_len' }, GPT = { 'vocab', 'max_len' } }
local MAX_COUNT = 2^31 - 1 -- any size, width or count of layers

local function is_int(v, lo, hi) return type(v) == 'number' and v == math.floor(v) and v >= lo and v <= hi end

local KINDS = {
  count = function(v) return is_int(v, 1, MAX_COUNT) end,
  integer = function(v) return is_int(v, -MAX_COUNT, MAX_COUNT) end,
  probability = function(v) return type(v) == 'number' and v >= 0 and v < 1 end,
  boolean = function(v) return type(v) == 'boolean' end,
  epsilon = function(v) return type(v) == 'number' and v > 0 and v < 1 end,
  activation = function(v) return nn.activations[v] ~= nil end,
  stem = function(v) return v == 'small' or v == 'imagenet' end,
  counts = function(v)
    if type(v) ~= 'table' or #v == 0 or #v > 64 then return false end
    local n = 0
    for _, e in pairs(v) do
      n = n + 1
      if not is_int(e, 0, MAX_COUNT) then return false end
    end
    return n == #v
  end,
}
local KIND_NAMES = { count = 'an integer from 1 to 2^31 - 1', integer = 'an integer of magnitude below 2^31',
                     probability = 'a number in [0, 1)', boolean = 'true or false', epsilon = 'a number in (0, 1)',
                     activation = "'gelu', 'gelu_new' or 'gelu_pytorch_tanh'", stem = "'small' or 'imagenet'",
                     counts = 'a list of 1 to 64 integers from 0 to 2^31 - 1' }

-- a lower bound on the parameters (float32 values) the class builds from config c, with its defaults
local function transformer_params(c, head)
  local d = c.dim or 128
  return (c.vocab + c.max_len) * d + (c.layers or 4) * (4 + 2 * (c.mlp_ratio or 4)) * d * d + head * d
end
local PARAMS = {
  MLP = function(c)
    local n = 0
    for i = 1, #c.sizes - 1 do n = n + c.sizes[i] * c.sizes[i + 1] end
    return n
  end,
  SmallCNN = function(c)
    local ch, w = c.channels or 1, c.width or 32
    return 9 * ch * w + 18 * w * w + 98 * w * (c.classes or 10)
  end,
  ResNet = function(c)
    local widths = c.widths or (c.depth and { 64, 128, 256, 512 } or { 16, 32, 64 })
    local blocks = c.blocks or (c.depth and DEPTHS[c.depth]) or { 2, 2, 2 }
    local n, last = 9 * (c.channels or (c.depth and 3 or 1)) * widths[1], widths[1]
    for s = 1, #widths do
      n = n + 9 * (blocks[s] or 0) * widths[s] * widths[s]
      if (blocks[s] or 0) > 0 then last = widths[s] end
    end
    return n + last * (c.classes or (c.depth and 1000 or 10))
  end,
  TransformerClassifier = function(c) return transformer_params(c, c.classes or 2) end,
  GPT = function(c) return transformer_params(c, c.tie == false and c.vocab or 0) end,
}

local function cjson_text(v) -- a config value as it reads in the file, for messages
  local ok, s = pcall(require('cjson').encode, v)
  s = ok and s or tostring(v)
  return #s > 60 and s:sub(1, 57) .. '...' or s
end

-- the checked config (known fields only), or an error naming the field
local function checked_config(path, name, config, tensors)
  local function bad(msg, ...) raise(('checkpoint %s: model options (%s): ' .. msg):format(path, name, ...)) end
  if type(config) ~= 'table' then bad('the options are a %s, not a JSON object', type(config)) end
  local fields, out = FIELDS[name], {}
  for key, kind in pairs(fields) do
    local v = config[key]
    if v ~= nil then
      if not KINDS[kind](v) then bad("field '%s' is %s; it must be %s", key, cjson_text(v), KIND_NAMES[kind]) end
      out[key] = v
    end
  end
  for _, key in ipairs(REQUIRED[name] or {}) do
    if out[key] == nil then bad("the field '%s' is missing", key) end
  end
  if name == 'ResNet' and out.widths and #(out.blocks or { 2, 2, 2 }) ~= #out.widths then
    bad("fields 'widths' and 'blocks' have %d and %d entries; they must have as many", #out.widths, #(out.blocks or { 2, 2, 2 }))
  end
  local held = 0
  for _, t in pairs(tensors) do held = held + t:numel() end
  local need = PARAMS[name](out)
  if need > held then
    bad('they describe at least %.0f parameters, but the file holds %d values in all', need, held)
  end
  return out
end

-- load(path) -> model (in evaluation mode), metadata: rebuilds the model saved by save
-- architectures lat builds for checkpoints that carry no lat metadata (PyTorch's own)
local ARCHS = {
  resnet18 = function() return M.ResNet{ depth = 18 } end,
  resnet34 = function() return M.ResNet{ depth = 34 } end,
}
-- 'resnet': any ResNet of torchvision's layout, its shape read off the file's tensors (channels
-- and stem from conv1, blocks and widths from layerN.i, classes from fc)
function ARCHS.resnet(tensors, path)
  local conv1, fc = tensors['conv1.weight'], tensors['fc.weight']
  if not (conv1 and fc and conv1:dim() == 4 and fc:dim() == 2) then
    raise(("checkpoint %s: arch 'resnet' needs conv1.weight [out, in, k, k] and fc.weight [classes, in]"):format(path))
  end
  local widths, blocks = {}, {}
  for s = 1, 64 do
    local n = 0
    while tensors[('layer%d.%d.conv1.weight'):format(s, n)] do n = n + 1 end
    if n == 0 then break end
    blocks[s], widths[s] = n, tensors[('layer%d.0.conv1.weight'):format(s)].shape[1]
  end
  if #blocks == 0 then raise(("checkpoint %s: arch 'resnet' found no layer1.0.conv1.weight"):format(path)) end
  return M.ResNet{ widths = widths, blocks = blocks, channels = conv1.shape[2], classes = fc.shape[1],
    stem = conv1.shape[3] == 7 and 'imagenet' or 'small' }
end

local function renamed(tensors, map, path)
  if map == nil then return tensors end
  local out = {}
  for name, t in pairs(tensors) do
    local new
    if type(map) == 'function' then new = map(name, t)
    elseif type(map) == 'table' then new = map[name]; if new == nil then new = name end
    else raise('models.load: map must be a function(name, tensor) -> new name (or false to drop) or a table') end
    if new ~= false and new ~= nil then
      if type(new) ~= 'string' then raise(("models.load: %s: the map gave %s for '%s'; expected a name or false"):format(path, type(new), name)) end
      if out[new] then raise(("models.load: %s: the map sends two tensors to '%s'"):format(path, new)) end
      out[new] = t
    end
  end
  return out
end

-- load(path[, { arch =, config =, map =, strict = true }]) -> model, report, metadata
-- path: a lat checkpoint (its class and options in the metadata), a PyTorch state_dict saved as
-- safetensors or a sharded one (model.safetensors.index.json), or a folder holding either (a
-- Hugging Face GPT-2 folder goes to lat.models.gpt2.load). arch: 'resnet18', 'resnet34', 'resnet'
-- (any torchvision-layout ResNet, its shape read off the tensors), a
-- lat.models class name (with config = its options) or a model already built; map renames the
-- file's keys (a table old -> new, or function(name, tensor) -> new name, false to drop). The
-- report lists missing and unexpected keys and shape mismatches, all of them, as PyTorch's
-- load_state_dict does; strict raises an error listing every one, leaving nothing half-loaded.
function M.load(path, opts)
  opts = opts or {}
  if type(path) ~= 'string' then raise('models.load: expected a path, got ' .. type(path)) end
  if type(opts) ~= 'table' then raise('models.load: the options must be a table') end
  local files = require 'lat.data.files'
  if files.is_dir(path) then
    if files.exists(path .. '/config.json') then -- gpt2.load checks every key itself (strict)
      local model, meta = M.gpt2.load(path)
      return model, { missing = {}, unexpected = {}, mismatched = {} }, meta
    end
    local p = path .. '/model.safetensors'
    path = files.exists(p) and p or p .. '.index.json'
  end
  local tensors, meta = require('lat.io').load(path)
  local model = opts.arch
  if model == nil then
    local cjson = require 'cjson'
    local cls = meta.model and FIELDS[meta.model] and M[meta.model]
    if not cls then raise(("checkpoint %s: no lat.models class recorded (metadata 'model' is %s); name one with {arch = 'resnet18' | 'ResNet' | ...}"):format(path, tostring(meta.model))) end
    local ok, config = pcall(cjson.decode, meta.config or '{}')
    if not ok then raise(('checkpoint %s: the model options are not valid JSON'):format(path)) end
    model = cls(checked_config(path, meta.model, config, tensors))
  elseif type(model) == 'string' then
    if ARCHS[model] then model = ARCHS[model](tensors, path)
    elseif FIELDS[model] then model = M[model](opts.config or {})
    else raise(("models.load: unknown arch '%s' (resnet18, resnet34, resnet, or a lat.models class: MLP, SmallCNN, ResNet, TransformerClassifier, GPT)"):format(model)) end
  elseif type(model) ~= 'table' or not model._child_names then
    raise('models.load: arch must be a name or a lat.nn model')
  end
  local ok, _, report = pcall(model.load_state_dict, model, renamed(tensors, opts.map, path), opts.strict ~= false)
  if not ok then raise(('checkpoint %s: %s'):format(path, tostring(_):gsub('^.-load_state_dict: ', ''))) end
  model:eval()
  return model, report, meta
end

M.gpt2 = require 'lat.models.gpt2'

return M
