-- generate_gpt2.lua: text from a prompt with a GPT-2 in Hugging Face's folder layout (config.json
-- and model.safetensors, as save_pretrained writes them or lat.models.gpt2.save): the prompt
-- BPE-encoded with GPT-2's tokenizer, GPT:generate, the new tokens decoded.
--   build/lat recipes/generate_gpt2.lua --model=path/to/gpt2 --prompt='Call me Ishmael.' [--tokens=40]
--     [--temperature=0 (greedy) | 0.8 --top_k=40] [--tokenizer=folder with vocab.json + merges.txt]
-- --quick saves a tiny GPT-2 with random weights to --out and loads it back (the text is noise; the
-- path is what is tested).
local lat = require 'lat'

local opt = lat.args{ model = '', tokenizer = '', prompt = 'Call me Ishmael.', tokens = 40, temperature = 0, top_k = 0,
  seed = 1, threads = 0, out = 'runs/generate_gpt2', quick = false }
lat.args.check(opt, { count = { 'tokens' }, natural = { 'top_k', 'seed', 'threads' }, nonnegative = { 'temperature' } })
if opt.threads > 0 then lat.set_num_threads(opt.threads) end
local gpt2 = lat.models.gpt2
local model
if opt.quick then
  opt.tokens = 8
  -- written as a Hugging Face folder and read back, so that the loading path is the one tested
  assert(require('lat.core.sys').mkdir_p(opt.out .. '/tiny-gpt2'))
  gpt2.save(lat.models.GPT{ vocab = 50257, max_len = 64, dim = 32, heads = 4, layers = 2, activation = 'gelu_new',
    rng = lat.Generator(opt.seed) }, opt.out .. '/tiny-gpt2')
  model = gpt2.load(opt.out .. '/tiny-gpt2')
elseif opt.model == '' then
  error('generate_gpt2: --model must name a GPT-2 folder (config.json + model.safetensors)', 0)
else
  model = gpt2.load(opt.model)
end
local tok = opt.tokenizer ~= '' and lat.data.bpe.load(opt.tokenizer) or lat.data.bpe.gpt2()
local text = gpt2.complete(model, tok, opt.prompt, opt.tokens, { temperature = opt.temperature,
  top_k = opt.top_k > 0 and opt.top_k or nil, rng = lat.Generator(opt.seed) })
print(opt.prompt .. text)
