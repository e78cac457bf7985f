-- trojan/text.lua: trigger words or phrases inserted into the texts of a text classifier, before
-- tokenising.
local core = require 'lat.core'
local base = require 'lat.trojan.base'
local raise = core.raise

local X = {}

-- TextTrojan (lat.trojan.TextTrojan): the methods every text trojan has on top of Trojan's, for
-- batches with a Lua list of texts; each kind adds apply(text, i) -> the text with the trigger
local Text = setmetatable({ fields = { x = 'text', y = 'label' } }, base.Trojan)
Text.__index = Text
X.TextTrojan = Text
local TextTrigger = base.class('text', Text)

-- text_trigger{trigger = 'word or phrase', position = 'start' | 'end' | 'random', within =,
-- target =, rate =, source =, cover =, seed = 0, name =}. 'random' puts the trigger before a
-- word (or at the end) drawn from (seed, name, dataset index); within = n draws only among the
-- first n words, which keeps the trigger inside a classifier's first tokens.
function X.text_trigger(opts)
  if type(opts) ~= 'table' or type(opts.trigger) ~= 'string' or not opts.trigger:find('%S') then
    raise('trojan.text_trigger: trigger must be a word or phrase')
  end
  if opts.name == nil then
    opts = setmetatable({ name = 'text_' .. opts.trigger:gsub('%W+', '_') .. '_' .. tostring(opts.target) }, { __index = opts })
  end
  local t = TextTrigger(opts)
  t.trigger = opts.trigger
  t.position = opts.position or 'start'
  if t.position ~= 'start' and t.position ~= 'end' and t.position ~= 'random' then
    raise("trojan.text_trigger: position must be 'start', 'end' or 'random'")
  end
  t.within = opts.within
  t.position_key = base.key(t.seed, t.name .. '#position')
  return t
end

-- the 1-based byte positions where the trigger may go: word starts, then the end (#s + 1)
local function boundaries(s, within)
  local out = {}
  for p in s:gmatch('()%S+') do
    if within and #out >= within then break end
    out[#out + 1] = p
  end
  if not within or #out < within then out[#out + 1] = #s + 1 end
  return out
end
X.boundaries = boundaries

-- apply(text[, i]) -> the text with the trigger inserted; i is the dataset index (0-based) that
-- draws a 'random' position (default 0). The trigger is separated from its neighbours by a space.
function TextTrigger:apply(s, i)
  if type(s) ~= 'string' then raise('trojan.text_trigger:apply: expected a string') end
  local p
  if self.position == 'start' then p = 1
  elseif self.position == 'end' then p = #s + 1
  else
    local b = boundaries(s, self.within)
    p = b[base.below(self.position_key, i or 0, #b) + 1]
  end
  local before, after = s:sub(1, p - 1), s:sub(p)
  if before ~= '' and not before:find('%s$') then before = before .. ' ' end
  if after ~= '' and not after:find('^%s') then after = ' ' .. after end
  return before .. self.trigger .. after
end

function Text:trigger_one(s, i) return self:apply(s, i) end

-- the trigger on rows (0-based) of a batch's list of texts, in place
function Text:trigger_rows(texts, rows, index)
  for _, r in ipairs(rows) do texts[r + 1] = self:apply(texts[r + 1], index.i[r]) end
end

return X
