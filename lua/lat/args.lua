-- args.lua: command-line options for scripts and recipes.
--   local opt = lat.args{ epochs = 3, lr = 0.1, quick = false, out = 'runs/x' }
-- reads --epochs=5 --lr 0.01 --quick --no-quick --out=dir from the global arg table, converts
-- each to the type of its default, and raises an error naming any unknown option or bad value.
--   lat.args.list('0.1,0.3', 'number') -> {0.1, 0.3}: a comma-separated option as a list
local core = require 'lat.core'

local A = {}

-- list(value[, 'number']) -> the comma-separated items of value (a string or a number), as
-- strings, or as numbers with 'number' (an item that is not one raises an error naming it)
function A.list(value, kind)
  local t = {}
  for v in tostring(value):gmatch('[^,]+') do
    if kind == 'number' then
      local n = tonumber(v)
      if not n then core.raise(("expected a comma-separated list of numbers, got '%s' in '%s'"):format(v, tostring(value))) end
      v = n
    end
    t[#t + 1] = v
  end
  return t
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
      if not n then core.raise(("option --%s expects a number, got '%s'"):format(key, tostring(value))) end
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
