-- attention.lua: multi-head self-attention (causal or bidirectional, with a padding mask) and
-- the pre-norm transformer block. Queries, keys and values pass through Identity layers named
-- q, k and v, so hooks can read or perturb them like any other layer.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local Module = require 'lat.nn.module'
local L = require 'lat.nn.layers'
local class, raise = Module.class, core.raise

local A = {}

-- additive masks: 0 where attention is allowed, a large negative number where it is not
local NEG = -1e9
local causal_cache = {}
local function causal_mask(T)
  local m = causal_cache[T]
  if not m then
    m = lat.zeros(T, T)
    local f = m.f
    for i = 0, T - 1 do for j = i + 1, T - 1 do f[i * T + j] = NEG end end
    causal_cache[T] = m
  end
  return m
end

-- pad: [B, T] with nonzero (or true) at real tokens; returns [B, 1, 1, T] additive mask
local function padding_mask(pad)
  local keep = pad:float()
  local B, T = keep:size(1), keep:size(2)
  return ((keep - 1) * -NEG):reshape(B, 1, 1, T)
end
A.padding_mask = padding_mask

A.MultiheadSelfAttention = class('MultiheadSelfAttention')
function A.MultiheadSelfAttention:__init(d, heads, opts)
  opts = opts or {}
  if d % heads ~= 0 then raise(('MultiheadSelfAttention: dimension %d is not divisible by %d heads'):format(d, heads)) end
  self.d, self.heads, self.causal = d, heads, opts.causal or false
  self:add('qkv', L.Linear(d, 3 * d, opts))
  self:add('q', L.Identity())
  self:add('k', L.Identity())
  self:add('v', L.Identity())
  self:add('out', L.Linear(d, d, opts))
  self:add('drop', L.Dropout(opts.dropout or 0, opts))
end

-- x [B, T, D]; mask: optional [B, T] marking real (non-padding) tokens
function A.MultiheadSelfAttention:forward(x, mask)
  if x:dim() ~= 3 then raise(('MultiheadSelfAttention: input must be [batch, time, %d], got {%s}'):format(self.d, table.concat(x.shape, ', '))) end
  local B, T, D = x:size(1), x:size(2), x:size(3)
  local H = self.heads
  local hd = D / H
  local qkv = self.qkv(x)
  local function heads(t) return t:reshape(B, T, H, hd):permute(1, 3, 2, 4) end -- [B, H, T, hd]
  local q = heads(self.q(qkv:narrow(3, 1, D)))
  local k = heads(self.k(qkv:narrow(3, D + 1, D)))
  local v = heads(self.v(qkv:narrow(3, 2 * D + 1, D)))
  local scores = q:matmul(k:transpose(3, 4)) * (1 / math.sqrt(hd)) -- [B, H, T, T]
  if self.causal then scores = scores + causal_mask(T) end
  if mask then scores = scores + padding_mask(mask) end
  local att = self.drop(scores:softmax(-1))
  local y = att:matmul(v):permute(1, 3, 2, 4):reshape(B, T, D)
  return self.out(y)
end

-- pre-norm block: x + attn(ln1(x)), then x + mlp(ln2(x))
A.TransformerBlock = class('TransformerBlock')
function A.TransformerBlock:__init(d, heads, opts)
  opts = opts or {}
  self:add('ln1', L.LayerNorm(d))
  self:add('attn', A.MultiheadSelfAttention(d, heads, opts))
  self:add('ln2', L.LayerNorm(d))
  self:add('mlp', L.Sequential{
    { 'fc', L.Linear(d, (opts.mlp_ratio or 4) * d, opts) },
    { 'act', L.GELU() },
    { 'proj', L.Linear((opts.mlp_ratio or 4) * d, d, opts) },
  })
  self:add('drop', L.Dropout(opts.dropout or 0, opts))
end
function A.TransformerBlock:forward(x, mask)
  x = x + self.drop(self.attn(self.ln1(x), mask))
  return x + self.drop(self.mlp(self.ln2(x)))
end

return A
