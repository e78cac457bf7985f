-- attention.lua: multi-head self-attention (causal or bidirectional, with a padding mask) and
-- the pre-norm transformer block. Queries, keys and values pass through Identity layers named
-- q, k and v, so hooks can read or perturb them like any other layer.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local Module = require 'lat.nn.module'
local L = require 'lat.nn.layers'
local class, raise = Module.class, core.raise

local A = {}

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
  self:add('drop', L.Dropout(opts.dropout or 0, opts)) -- on the attention output
end

-- x [B, T, D]; mask: optional [B, T] marking real (non-padding) tokens
function A.MultiheadSelfAttention:forward(x, mask)
  if x:dim() ~= 3 then raise(('MultiheadSelfAttention: input must be [batch, time, %d], got {%s}'):format(self.d, table.concat(x.shape, ', '))) end
  local D = self.d
  local qkv = self.qkv(x)
  local q = self.q(qkv:narrow(3, 1, D))
  local k = self.k(qkv:narrow(3, D + 1, D))
  local v = self.v(qkv:narrow(3, 2 * D + 1, D))
  local y = lat.attention(q, k, v, self.heads, { causal = self.causal, mask = mask })
  return self.out(self.drop(y))
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
