-- args.lua: command-line options for scripts and recipes.
--   local opt = lat.args{ epochs = 3, lr = 0.1, quick = false, out = 'runs/x' }
-- reads --epochs=5 --lr 0.01 --quick --no-quick --out=dir from the global arg table, converts
-- each to the type of its default (numbers must be finite), and raises an error naming any
-- unknown option or bad value.
--   lat.args.list('0.1,0.3', 'number') -> {0.1, 0.3}: a comma-separated option as a list
--   lat.args.check(opt, { count = { 'epochs' }, positive = { 'lr' }, ['count list'] = { 'widths' } })
--   lat.args.layers(model, 'lat_layers', opt.lat_layers)   -- each must name a layer of model
local core = require 'lat.core'

local A = {}

local finite, natural, positive = core.finite, core.natural, core.positive

-- what a number of each kind must be: a test, and its description as one and as a list
local KINDS = {
  number = { finite, 'a finite number', 'numbers' },
  count = { function(n) return natural(n) and n >= 1 end, 'a positive integer', 'positive integers' },
  natural = { natural, 'an integer >= 0', 'integers >= 0' },
  positive = { positive, 'a finite number > 0', 'finite numbers > 0' },
  nonnegative = { function(n) return finite(n) and n >= 0 end, 'a finite number >= 0', 'finite numbers >= 0' },
  fraction = { function(n) return finite(n) and n >= 0 and n <= 1 end, 'a number in [0, 1]', 'numbers in [0, 1]' },
}
local function kind_of(kind)
  return KINDS[kind] or core.raise(("args: unknown kind '%s'"):format(tostring(kind)))
end

-- list(value[, kind[, option]]) -> the comma-separated items of value (a string or a number), as
-- strings, or as numbers of a kind ('number', 'count', 'natural', 'positive', 'nonnegative',
-- 'fraction'): an item that is not one raises an error naming it (and the option, if given)
function A.list(value, kind, option)
  local t = {}
  local where = option and ('option --%s: '):format(option) or ''
  for v in tostring(value):gmatch('[^,]+') do
    if kind then
      local test, _, what = unpack(kind_of(kind))
      local n = tonumber(v)
      if not (n and test(n)) then
        core.raise(("%sexpected a comma-separated list of %s, got '%s' in '%s'"):format(where, what, v, tostring(value)))
      end
      v = n
    end
    t[#t + 1] = v
  end
  return t
end

-- check(opt, rules): rules maps a kind (see list) to option names whose value must be a number
-- of that kind, or '<kind> list' to names of comma-separated lists of them; raises an error
-- naming the first option that is not. Recipes call it before any expensive work.
function A.check(opt, rules)
  local kinds = {}
  for kind in pairs(rules) do kinds[#kinds + 1] = kind end
  table.sort(kinds) -- the first error found does not depend on the table's order
  for _, rule in ipairs(kinds) do
    local kind = rule:match('^(%w+) list$')
    local is_list = kind ~= nil
    kind = kind or rule
    local test, what = unpack(kind_of(kind))
    for _, name in ipairs(rules[rule]) do
      local v = opt[name]
      if v == nil then core.raise(("args.check: no option '%s'"):format(name)) end
      if is_list then A.list(v, kind, name)
      elseif type(v) ~= 'number' or not test(v) then
        core.raise(("option --%s expects %s, got %s"):format(name, what, tostring(v)))
      end
    end
  end
  return opt
end

-- override_defaults(opt, defaults, values): opt[k] = v for each k of values that still has its
-- default, so that a recipe's --quick form keeps the options the user gave
function A.override_defaults(opt, defaults, values)
  for k, v in pairs(values) do if opt[k] == defaults[k] then opt[k] = v end end
  return opt
end

-- layers(model, option, names): names (a comma-separated string or a list) must name layers of
-- model (through model:module); raises an error naming the option and the layers there are.
-- Recipes call it on a freshly built model, before training it.
function A.layers(model, option, names)
  if type(names) == 'string' then names = A.list(names) end
  for _, name in ipairs(names) do
    local ok, err = pcall(model.module, model, name)
    if not ok then core.raise(('option --%s: %s'):format(option, tostring(err):gsub('^.-(no layer named)', '%1'))) end
  end
end

local function parse(defaults, argv)
  argv = argv or arg or {}
  local opt = {}
  for k, v in pairs(defaults) do opt[k] = v end
  local function set(key, value)
    local norm = key:gsub('-', '_')
    local def = defaults[norm]
    if def == nil then
      local known = {}
      for k in pairs(defaults) do known[#known + 1] = '--' .. k end
      table.sort(known)
      core.raise(("unknown option '--%s' (known: %s)"):format(key, table.concat(known, ' ')))
    end
    if type(def) == 'number' then
      local n = tonumber(value)
      if not (n and finite(n)) then core.raise(("option --%s expects a number (finite), got '%s'"):format(key, tostring(value))) end
      opt[norm] = n
    elseif type(def) == 'boolean' then
      if value == true or value == 'true' or value == '1' then opt[norm] = true
      elseif value == 'false' or value == '0' then opt[norm] = false
      else core.raise(("option --%s expects true or false, got '%s'"):format(key, tostring(value))) end
    else
      if value == true then core.raise(('option --%s needs a value'):format(key)) end
      opt[norm] = value
    end
  end
  local i = 1
  while argv[i] ~= nil do
    local a = argv[i]
    local key, value = a:match('^%-%-([%w_%-]+)=(.*)$')
    if key then set(key, value)
    else
      key = a:match('^%-%-([%w_%-]+)$')
      if key then
        local norm = key:gsub('-', '_')
        local neg = key:match('^no%-(.*)$')
        if defaults[norm] == nil and neg and type(defaults[neg:gsub('-', '_')]) == 'boolean' then
          set(neg, 'false')
        elseif type(defaults[norm]) == 'boolean' or defaults[norm] == nil then
          set(key, true)
        else
          i = i + 1
          if argv[i] == nil then core.raise(('option --%s needs a value'):format(key)) end
          set(key, argv[i])
        end
      else
        opt[#opt + 1] = a
      end
    end
    i = i + 1
  end
  return opt
end

return setmetatable(A, { __call = function(_, defaults, argv) return parse(defaults, argv) end })
