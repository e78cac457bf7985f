-- attention.lua: multi-head self-attention (causal or bidirectional, with a padding mask) and
-- the pre-norm transformer block, named and laid out as Hugging Face's GPT-2 (attn.c_attn,
-- attn.c_proj, ln_1, ln_2, mlp.c_fc, mlp.c_proj; Conv1D weights [in, out]). Queries, keys and
-- values pass through Identity layers named q, k and v, so hooks can read or perturb them like
-- any other layer.
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
  self:add('c_attn', L.Conv1D(d, 3 * d, opts))
  self:add('q', L.Identity())
  self:add('k', L.Identity())
  self:add('v', L.Identity())
  self:add('c_proj', L.Conv1D(d, d, opts))
  self:add('resid_dropout', L.Dropout(opts.dropout or 0, opts))
end

-- x [B, T, D]; mask: optional [B, T] marking real (non-padding) tokens
function A.MultiheadSelfAttention:forward(x, mask)
  if x:dim() ~= 3 then raise(('MultiheadSelfAttention: input must be [batch, time, %d], got {%s}'):format(self.d, table.concat(x.shape, ', '))) end
  local D = self.d
  local qkv = self.c_attn(x)
  local q = self.q(qkv:narrow(3, 1, D))
  local k = self.k(qkv:narrow(3, D + 1, D))
  local v = self.v(qkv:narrow(3, 2 * D + 1, D))
  local y = lat.attention(q, k, v, self.heads, { causal = self.causal, mask = mask })
  return self.resid_dropout(self.c_proj(y))
end

-- the activations of GPT-2's config.json (activation_function) that lat computes
local ACTIVATIONS = { gelu = 'none', gelu_new = 'tanh', gelu_pytorch_tanh = 'tanh' }
A.activations = ACTIVATIONS

-- pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); opts: causal, dropout, mlp_ratio,
-- eps (of the LayerNorms), activation ('gelu', exact, or GPT-2's tanh form 'gelu_new')
A.TransformerBlock = class('TransformerBlock')
function A.TransformerBlock:__init(d, heads, opts)
  opts = opts or {}
  local act = ACTIVATIONS[opts.activation or 'gelu']
  if not act then raise(("TransformerBlock: activation must be 'gelu', 'gelu_new' or 'gelu_pytorch_tanh', got %s"):format(tostring(opts.activation))) end
  local inner = (opts.mlp_ratio or 4) * d
  self:add('ln_1', L.LayerNorm(d, { eps = opts.eps }))
  self:add('attn', A.MultiheadSelfAttention(d, heads, opts))
  self:add('ln_2', L.LayerNorm(d, { eps = opts.eps }))
  self:add('mlp', L.Sequential{
    { 'c_fc', L.Conv1D(d, inner, opts) },
    { 'act', L.GELU{ approximate = act } },
    { 'c_proj', L.Conv1D(inner, d, opts) },
    { 'dropout', L.Dropout(opts.dropout or 0, opts) },
  })
end
function A.TransformerBlock:forward(x, mask)
  x = x + self.attn(self.ln_1(x), mask)
  return x + self.mlp(self.ln_2(x))
end

return A
