-- gpt2.lua: Hugging Face GPT-2 folders for lat.models.GPT: config.json (GPT2Config) to GPT
-- options and back, model.safetensors (or a sharded index) in and out, and text generation
-- through GPT-2's BPE tokenizer.
--   local model = lat.models.gpt2.load('gpt2')        -- config.json + model.safetensors
--   local tok = lat.data.bpe.gpt2()
--   print(lat.models.gpt2.complete(model, tok, 'The whale', 20))
-- lat's GPT has Hugging Face's names and shapes (GPT2LMHeadModel: transformer.wte, wpe, h.N.ln_1,
-- attn.c_attn and c_proj as Conv1D [in, out], ln_2, mlp.c_fc, mlp.c_proj, ln_f, lm_head tied to
-- wte), so a checkpoint loads without a map. Files of the bare GPT2Model (names without
-- 'transformer.', as the hub's gpt2 is stored) get the prefix; the causal-mask buffers old files
-- hold (h.N.attn.bias [1, 1, n, n], h.N.attn.masked_bias) are skipped, lat needs none.
-- The config's dropout rates are not applied (lat has no attention-probability dropout): pass
-- {dropout = p} to fine-tune with one.
local core = require 'lat.core'
local nn = require 'lat.nn'
local raise = core.raise

local G = {}

local function is_count(v) return type(v) == 'number' and v >= 1 and v < 2^31 and v == math.floor(v) end

-- Fields that would change the arithmetic if set otherwise, with the value lat computes
local FIXED = { scale_attn_weights = true, scale_attn_by_inverse_layer_idx = false, add_cross_attention = false }

-- config(path of config.json or its folder[, overrides]) -> the options of lat.models.GPT
function G.config(path, overrides)
  if type(path) ~= 'string' then raise('gpt2.config: expected the path of config.json or its folder, got ' .. type(path)) end
  local file = path:match('%.json$') and path or path .. '/config.json'
  local f = io.open(file, 'rb')
  if not f then raise(('gpt2: cannot read %s'):format(file)) end
  local text = f:read('*a')
  f:close()
  local cjson = require 'cjson'
  local ok, c = pcall(cjson.decode, text)
  local function bad(msg, ...) raise(('gpt2: %s: ' .. msg):format(file, ...)) end
  if not ok then bad('not valid JSON (%s)', tostring(c)) end
  if type(c) ~= 'table' then bad('expected a JSON object') end
  if c.model_type ~= 'gpt2' then
    bad("model_type is %s; lat reads GPT-2 configs (model_type \"gpt2\")", c.model_type == nil and 'missing' or ('"' .. tostring(c.model_type) .. '"'))
  end
  local function count(key, alt)
    local v = c[key]
    if v == nil and alt then v = c[alt] end
    if v == nil then bad("the field '%s' is missing", key) end
    if not is_count(v) then bad("field '%s' is %s; it must be an integer from 1 to 2^31 - 1", key, tostring(v)) end
    return v
  end
  local opts = { vocab = count('vocab_size'), max_len = count('n_positions', 'n_ctx'), dim = count('n_embd'),
                 heads = count('n_head'), layers = count('n_layer') }
  if opts.dim % opts.heads ~= 0 then bad('n_embd %d is not divisible by n_head %d', opts.dim, opts.heads) end
  if c.n_inner ~= nil and c.n_inner ~= cjson.null then
    if not is_count(c.n_inner) or c.n_inner % opts.dim ~= 0 then
      bad("field 'n_inner' is %s; lat takes a multiple of n_embd (%d) or null", tostring(c.n_inner), opts.dim)
    end
    opts.mlp_ratio = c.n_inner / opts.dim
  end
  local eps = c.layer_norm_epsilon
  if eps ~= nil and not (type(eps) == 'number' and eps > 0 and eps < 1) then
    bad("field 'layer_norm_epsilon' is %s; it must be a number in (0, 1)", tostring(eps))
  end
  opts.eps = eps or 1e-5
  local act = c.activation_function or 'gelu_new'
  if not nn.activations[act] then
    bad("activation_function is %s; lat computes 'gelu_new', 'gelu_pytorch_tanh' and 'gelu'", tostring(act))
  end
  opts.activation = act
  local tie = c.tie_word_embeddings
  if tie ~= nil and type(tie) ~= 'boolean' then bad("field 'tie_word_embeddings' is %s; it must be true or false", tostring(tie)) end
  opts.tie = tie ~= false
  for key, want in pairs(FIXED) do
    if c[key] ~= nil and c[key] ~= want then bad("field '%s' is %s; lat computes GPT-2 with %s", key, tostring(c[key]), tostring(want)) end
  end
  for k, v in pairs(overrides or {}) do opts[k] = v end
  return opts
end

-- the names a GPT2LMHeadModel file may hold, as lat's GPT names them; nil for a tensor skipped
local function lat_name(name)
  if name:match('%.attn%.masked_bias$') or name:match('^[%w_.]*h%.%d+%.attn%.bias$') then return nil end
  if name:sub(1, 12) == 'transformer.' or name:sub(1, 8) == 'lm_head.' then return name end
  return 'transformer.' .. name
end

-- load(folder[, overrides]) -> GPT (in evaluation mode), the file's metadata. The weights come
-- from folder/model.safetensors or folder/model.safetensors.index.json; every missing,
-- unexpected or mis-shaped tensor is named in one error, before any weight is copied.
function G.load(folder, overrides)
  if type(folder) ~= 'string' then raise('gpt2.load: expected a folder, got ' .. type(folder)) end
  local opts = G.config(folder, overrides)
  local files = require 'lat.data.files'
  local path = folder .. '/model.safetensors'
  if not files.exists(path) and files.exists(path .. '.index.json') then path = path .. '.index.json' end
  if not files.exists(path) then raise(('gpt2: %s holds neither model.safetensors nor model.safetensors.index.json'):format(folder)) end
  local tensors, meta = require('lat.io').load(path)
  local state, held = {}, 0
  for name, t in pairs(tensors) do
    local n = lat_name(name)
    if n then state[n] = t; held = held + t:numel() end
  end
  local d = opts.dim
  local need = (opts.vocab + opts.max_len) * d + opts.layers * (4 + 2 * (opts.mlp_ratio or 4)) * d * d
  if need > held then
    raise(('gpt2: %s: config.json describes at least %.0f parameters, but %s holds %d values'):format(folder, need, path, held))
  end
  local model = require('lat.models').GPT(opts)
  local own, problems = model:state_dict(), {}
  for name, t in pairs(own) do
    local src = state[name]
    if src == nil then
      if not (name == 'lm_head.weight' and opts.tie) then problems[#problems + 1] = ("missing '%s'"):format(name) end
    elseif table.concat(src.shape, 'x') ~= table.concat(t.shape, 'x') then
      problems[#problems + 1] = ("'%s' is %s in the file, %s in the model"):format(name, table.concat(src.shape, 'x'), table.concat(t.shape, 'x'))
    end
  end
  for name in pairs(state) do
    if own[name] == nil then problems[#problems + 1] = ("unexpected '%s'"):format(name) end
  end
  if #problems > 0 then
    table.sort(problems)
    local shown = #problems > 8 and { unpack(problems, 1, 8) } or problems
    raise(('gpt2: %s does not fit its config.json: %s%s'):format(path, table.concat(shown, ', '),
      #problems > 8 and (' and %d more'):format(#problems - 8) or ''))
  end
  model:load_state_dict(state, false)
  model:eval()
  return model, meta
end

-- save(model, folder): config.json and model.safetensors as Hugging Face's save_pretrained
-- writes them (a tied lm_head.weight left out), each file written atomically; the folder is made
-- if need be
function G.save(model, folder)
  local c = model.config or {}
  if model.__name ~= 'GPT' then raise('gpt2.save: expected a lat.models.GPT, got ' .. tostring(model.__name)) end
  local ok, err = require('lat.core.sys').mkdir_p(folder)
  if not ok then raise(('gpt2.save: cannot make the folder %s: %s'):format(folder, tostring(err))) end
  local cjson = require 'cjson'
  local config = {
    model_type = 'gpt2', architectures = { 'GPT2LMHeadModel' }, vocab_size = c.vocab, n_positions = c.max_len,
    n_ctx = c.max_len, n_embd = c.dim or 128, n_head = c.heads or 4, n_layer = c.layers or 4,
    n_inner = c.mlp_ratio and c.mlp_ratio * (c.dim or 128) or cjson.null,
    layer_norm_epsilon = c.eps or 1e-5, activation_function = c.activation or 'gelu',
    tie_word_embeddings = c.tie ~= false, resid_pdrop = c.dropout or 0, embd_pdrop = c.dropout or 0, attn_pdrop = 0,
  }
  require('lat.experiment.fs').write_atomic(folder .. '/config.json', require('lat.io.json').encode(config) .. '\n')
  local tensors = {}
  for _, e in ipairs(model:named_parameters()) do tensors[e[1]] = e[2] end
  return require('lat.io').save(folder .. '/model.safetensors', tensors, { metadata = { format = 'pt' } })
end

-- complete(model, tokenizer, prompt text, n tokens[, generate's options]) -> the continuation
-- as text: the prompt BPE-encoded, GPT:generate, the new tokens decoded
function G.complete(model, tokenizer, prompt, n, opts)
  if type(prompt) ~= 'string' then raise('gpt2.complete: the prompt must be a string, got ' .. type(prompt)) end
  local ids, V = tokenizer:encode(prompt), model.transformer.wte.num_embeddings
  for _, id in ipairs(ids) do
    if id >= V then raise(('gpt2.complete: the tokenizer gives id %d, the model has %d tokens'):format(id, V)) end
  end
  return tokenizer:decode(model:generate(ids, n, opts))
end

return G
