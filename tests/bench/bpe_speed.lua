-- bpe_speed.lua: GPT-2 BPE encoding speed, lat.data.bpe against the JavaScript encoder of the npm
-- package gpt-3-encoder (node), one call per document, on Moby Dick and the State of the Union
-- addresses. Usage: lat tests/bench/bpe_speed.lua [moby_dick|sotu ...]   (LAT_DATA: the data folder)
-- The package's encode is quadratic in the tokens of one call (Array.concat), so its rate falls
-- with document length; lat's is linear. Both keep a cache of pieces seen before within the run.
local lat = require 'lat'
local cjson = require 'cjson'
local here = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
local package_dir = lat.data.root() .. '/gpt-3-encoder'

local sets = #arg > 0 and arg or { 'moby_dick', 'sotu' }
print(('%-10s %9s %9s %14s %14s %7s'):format('text', 'documents', 'tokens', 'lat tokens/s', 'js tokens/s', 'ratio'))
for _, set in ipairs(sets) do
  local texts = lat.data[set]('all'):column('text')
  local tok = lat.data.bpe.gpt2() -- a fresh tokenizer: its cache starts empty, as node's does
  local t0, tokens = os.clock(), 0
  for _, t in ipairs(texts) do tokens = tokens + #tok:encode(t) end
  local lat_rate = tokens / (os.clock() - t0)
  local input = os.tmpname()
  local f = assert(io.open(input, 'w'))
  f:write(cjson.encode({ texts = texts }))
  f:close()
  local p = assert(io.popen(("node '%s../bpe_ref.js' '%s' '%s' whole"):format(here, package_dir, input)))
  local ref = cjson.decode(p:read('*a'))
  p:close()
  os.remove(input)
  assert(ref.tokens == tokens, ('%s: lat made %d tokens, JavaScript %d'):format(set, tokens, ref.tokens))
  local js_rate = ref.tokens / ref.seconds
  print(('%-10s %9d %9d %14.0f %14.0f %6.0fx'):format(set, #texts, tokens, lat_rate, js_rate, lat_rate / js_rate))
end
