-- quickstart_check.lua: the README's first command at its full size, checked for numbers that
-- mean something: a trojaned model well above chance with a trojan that took, fine-tunes that
-- keep the model useful, and the files it promises. (Not under the sanitizers: 10-15x slower.)
local H = require 'harness'
local lat = require 'lat'
local out_dir = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/quickstart_full'

H.test('quickstart: real numbers', function()
  local out = H.run(("'%s' ../recipes/quickstart.lua --out=%s"):format(arg[-1], out_dir))
  H.assert(out:find('%[exit 0%]'), 'quickstart failed:\n' .. out)
  H.assert(out:find('What it means:'), 'no interpretation printed')
  H.assert(not out:find('SMOKE TEST'), 'the full run is labelled a smoke test')
  local rows = lat.log.read_csv(out_dir .. '/results.csv')
  H.assert(#rows == 4, ('expected 4 rows (trojaned, clean fine-tune, AT, LAT), got %d'):format(#rows))
  local byname = {}
  for _, r in ipairs(rows) do byname[r.name] = r end
  local t = byname['trojaned model']
  H.assert(t.clean_accuracy > 0.6, ('trojaned model at %.3f clean accuracy: barely above chance (0.1)'):format(t.clean_accuracy))
  H.assert(t.trojan_asr > 0.8, ('the trojan did not take: ASR %.3f'):format(t.trojan_asr))
  for _, r in ipairs(rows) do
    H.assert(r.clean_accuracy > 0.5, ('%s collapsed: clean accuracy %.3f'):format(r.name, r.clean_accuracy))
    H.assert(r.robustness >= 0 and r.robustness <= 1 and r.trojan_asr >= 0 and r.trojan_asr <= 1, r.name .. ': a rate outside [0, 1]')
  end
  H.assert(H.exists(out_dir .. '/results.jsonl'), 'no results.jsonl')
  if os.execute('command -v gnuplot > /dev/null') == 0 then H.assert(H.exists(out_dir .. '/quickstart.png'), 'no quickstart.png') end
end)

H.finish()
