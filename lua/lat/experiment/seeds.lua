-- experiment/seeds.lua: seeds and names derived by hashing, so that what a configuration draws
-- depends on the run's seed and the configuration's own key, never on its place in the grid or
-- on what ran before it.
--   seeds.derive(1, 'defence=lat radius=0.1', 'finetune') -> an integer in [0, 2^31)
--   seeds.hash('any text') -> 16 hexadecimal digits
local bit = require 'bit'

local M = {}

-- FNV-1a, 64 bits (uint64 arithmetic wraps, as the algorithm wants)
local function fnv1a(s)
  local h = 14695981039346656037ULL
  for i = 1, #s do h = bit.bxor(h, s:byte(i)) * 1099511628211ULL end
  return h
end

function M.hash(s) return bit.tohex(fnv1a(s), 16) end

-- derive(seed, key, purpose): the seed for one purpose ('finetune', 'attack', ...) of the
-- configuration with this key ('' outside any configuration) in a run with this seed
function M.derive(seed, key, purpose)
  local h = fnv1a(('%.17g\0%s\0%s'):format(seed, key or '', purpose or ''))
  return tonumber(h % 2147483648ULL)
end

return M
