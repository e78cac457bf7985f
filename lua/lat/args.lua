-- args.lua: command-line options for scripts and recipes, in two forms.
--   local opt = lat.args{ epochs = 3, lr = 0.1, quick = false, out = 'runs/x' }
-- reads --epochs=5 --lr 0.01 --quick --no-quick --out=dir (and epochs=5 for a known option) from
-- the global arg table, converts each to the type of its default (numbers must be finite;
-- booleans true/false/yes/no/1/0), keeps other words in opt[1], opt[2], ..., prints the options
-- and exits at -h/--help, and raises an error naming any unknown option or bad value.
--   local opt, info = lat.args.parse({ lr = { 0.1, 'learning rate', 'positive' },
--     widths = { '16,32', 'channels per stage', 'count list' } }, arg)
-- is the strict form recipes use: each option declared with a description (and a kind, checked
-- as it is read: --widths=16,x is an error), name=value accepted, stray words refused,
-- --config=FILE read, info.given names what the user set, info.help asks for lat.args.help(spec).
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

-- ---------------------------------------------------------------- declaring and parsing options

-- the value an option of declaration d takes from a command-line word or a config-file value;
-- raises an error naming the option (as the user spelled it) when the value does not fit
local BOOLEAN = { ['true'] = true, yes = true, ['1'] = true, ['false'] = false, no = false, ['0'] = false }
local function convert(key, d, value)
  local def = d.default
  if type(def) == 'number' then
    local n = tonumber(value)
    if not (n and finite(n)) then core.raise(("option --%s expects a number (finite), got '%s'"):format(key, tostring(value))) end
    if d.kind then
      local test, what = unpack(kind_of(d.kind))
      if not test(n) then core.raise(("option --%s expects %s, got %s"):format(key, what, tostring(n))) end
    end
    return n
  elseif type(def) == 'boolean' then
    if type(value) == 'boolean' then return value end
    local b = BOOLEAN[tostring(value):lower()]
    if b == nil then core.raise(("option --%s expects true or false (or yes/no, 1/0), got '%s'"):format(key, tostring(value))) end
    return b
  end
  if value == true then core.raise(('option --%s needs a value'):format(key)) end
  if type(value) == 'table' then -- a list from a config file
    for _, v in ipairs(value) do
      if type(v) ~= 'string' and type(v) ~= 'number' then core.raise(('option --%s: a list of numbers or words, got a %s in it'):format(key, type(v))) end
    end
    value = table.concat(value, ',')
  end
  value = tostring(value)
  local kind = d.kind
  if type(kind) == 'table' then
    for _, choice in ipairs(kind) do if value == choice then return value end end
    core.raise(("option --%s expects one of %s, got '%s'"):format(key, table.concat(kind, ', '), value))
  elseif kind == 'list' then
    for item in (value ~= '' and value .. ',' or ''):gmatch('([^,]*),') do
      if item == '' then core.raise(("option --%s expects a comma-separated list without empty items, got '%s'"):format(key, value)) end
    end
  elseif kind then
    A.list(value, kind:match('^(%w+) list$'), key)
  end
  return value
end

-- the declarations of a table of options: name -> { default =, description =, kind = }. A
-- described table declares each option as { default, 'one-line description'[, kind] }, where kind
-- is a number kind (see list) for a number, and for a string '<kind> list', 'list' (words) or a
-- table of the allowed words (other fields are the caller's: lat.experiment reads per_process);
-- a plain table (lat.args' first form) maps names to defaults.
local function declarations(spec, described)
  if type(spec) ~= 'table' then core.raise('args: the options must be a table of name -> default, got ' .. type(spec)) end
  local decls = {}
  for name, v in pairs(spec) do
    if type(name) ~= 'string' or not name:match('^[%a_][%w_]*$') then
      core.raise(("args: an option's name must be a word (letters, digits, _), got '%s'"):format(tostring(name)))
    end
    local d = { default = v }
    if described then
      if type(v) ~= 'table' then
        core.raise(("args: option '%s' must be declared as { default, 'description'[, kind] }, got a %s"):format(name, type(v)))
      end
      d = { default = v[1], description = v[2], kind = v[3] }
      local t = type(d.default)
      if t ~= 'number' and t ~= 'boolean' and t ~= 'string' then
        core.raise(("args: option '%s' needs a number, boolean or string default, got %s"):format(name, t))
      end
      if type(d.description) ~= 'string' or d.description == '' then core.raise(("args: option '%s' has no description"):format(name)) end
      local kind = d.kind
      local fits = kind == nil or (t == 'number' and KINDS[kind] ~= nil)
        or (t == 'string' and (kind == 'list' or type(kind) == 'table' or KINDS[tostring(kind):match('^(%w+) list$') or '']))
      if not fits then core.raise(("args: option '%s' (a %s) cannot be of kind '%s'"):format(name, t, tostring(kind))) end
      convert(name, d, d.default) -- a default that breaks its own kind is the recipe's mistake
    end
    decls[name] = d
  end
  return decls
end

local function unknown(decls, key)
  local known = {}
  for k in pairs(decls) do known[#known + 1] = '--' .. k end
  table.sort(known)
  core.raise(("unknown option '--%s' (known: %s)"):format(key, table.concat(known, ' ')))
end

-- The words of argv as { key, value } settings (value true for a bare --flag), positional words
-- and whether help was asked for. key=value without dashes is a setting when strict (or when key
-- names an option); other words are positional, which strict parsing refuses.
local function read_words(decls, argv, strict)
  local settings, positional, help = {}, {}, false
  local function norm(key) return (key:gsub('-', '_')) end
  local i = 1
  while argv[i] ~= nil do
    local a = tostring(argv[i])
    local key, value = a:match('^%-%-([%w_%-]+)=(.*)$')
    if not key then
      local k, v = a:match('^([%a_][%w_%-]*)=(.*)$')
      if k and (strict or decls[norm(k)] ~= nil) then key, value = k, v end
    end
    if key then settings[#settings + 1] = { key, value }
    elseif a == '-h' or a == '--help' then help = true
    else
      key = a:match('^%-%-([%w_%-]+)$')
      if key then
        local neg = key:match('^no%-(.*)$') or key:match('^no_(.*)$')
        local d = decls[norm(key)]
        if d == nil and neg and decls[norm(neg)] and type(decls[norm(neg)].default) == 'boolean' then
          settings[#settings + 1] = { neg, false }
        elseif d == nil or type(d.default) == 'boolean' then
          settings[#settings + 1] = { key, true }
        else
          i = i + 1
          if argv[i] == nil then core.raise(('option --%s needs a value'):format(key)) end
          settings[#settings + 1] = { key, tostring(argv[i]) }
        end
      elseif strict then
        core.raise(("unexpected argument '%s' (options are --name=value or name=value; --help lists them)"):format(a))
      else
        positional[#positional + 1] = a
      end
    end
    i = i + 1
  end
  return settings, positional, help
end

-- load_config(path) -> a table of option values: a JSON object, a Lua file returning a table
-- (run without access to globals), or a run folder's config.json (its options)
function A.load_config(path)
  local values
  if path:match('%.lua$') then
    local chunk, err = loadfile(path)
    if not chunk then core.raise(('config file %s: %s'):format(path, err)) end
    local ok, res = pcall(setfenv(chunk, {}))
    if not ok then core.raise(('config file %s: %s'):format(path, tostring(res))) end
    values = res
  else
    local f, err = io.open(path, 'r')
    if not f then core.raise(('config file: cannot open %s'):format(err)) end
    local text = f:read('*a')
    f:close()
    local ok, res = pcall(require('lat.io.json').decode, text)
    if not ok then core.raise(('config file %s is not JSON: %s'):format(path, tostring(res))) end
    values = res
  end
  if type(values) ~= 'table' then core.raise(('config file %s must hold a table of options, got a %s'):format(path, type(values))) end
  if type(values.recipe) == 'string' and type(values.options) == 'table' then values = values.options end
  return values
end

-- parse(spec, argv) -> opt, info: the strict form for recipes. spec maps each option's name to
-- { default, 'one-line description'[, kind] } (see declarations); argv holds --name=value,
-- name=value, --name value, --flag, --no-flag, --config=FILE (options from a file; the command
-- line overrides them) and -h/--help. Unknown options, stray words and values that do not fit
-- their option raise an error naming them. info.given[name] is true for each option the user
-- set (on the command line or in the file), info.help whether help was asked for, info.config
-- the file read.
function A.parse(spec, argv)
  local decls = declarations(spec, true)
  if decls.config then core.raise("args: 'config' is taken (--config=FILE reads options from a file)") end
  local settings, _, help = read_words(decls, argv or {}, true)
  local opt, info = {}, { given = {}, help = help }
  for k, d in pairs(decls) do opt[k] = d.default end
  local function set(key, value)
    local name = key:gsub('-', '_')
    local d = decls[name] or unknown(decls, key)
    opt[name], info.given[name] = convert(key, d, value), true
  end
  local rest = {}
  for _, s in ipairs(settings) do
    if s[1] == 'config' then
      if s[2] == true or s[2] == '' then core.raise('option --config needs a file name') end
      info.config = s[2]
    else rest[#rest + 1] = s end
  end
  if info.config and not help then
    local values = A.load_config(info.config)
    local keys = {}
    for k in pairs(values) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local ok, err = pcall(set, k, values[k])
      if not ok then core.raise(('config file %s: %s'):format(info.config, tostring(err):gsub('^.-:%d+: ', ''))) end
    end
  end
  for _, s in ipairs(rest) do set(s[1], s[2]) end
  return opt, info
end

-- help(spec[, {usage =, about =, groups = { { title, names }, ... }}]) -> the text --help prints:
-- every option with its default and description, in groups (default: one, sorted by name)
function A.help(spec, how)
  how = how or {}
  local decls = declarations(spec, true)
  local groups = how.groups
  if not groups then
    local names = {}
    for k in pairs(decls) do names[#names + 1] = k end
    table.sort(names)
    groups = { { 'options', names } }
  end
  local lines, width = {}, 0
  local function left(name)
    local d = decls[name]
    local def = d.default
    if type(def) == 'boolean' then return ('--%s (%s)'):format(name, tostring(def)) end
    if def == '' then return ('--%s='):format(name) end
    return ('--%s=%s'):format(name, type(def) == 'number' and ('%.15g'):format(def) or def)
  end
  for _, g in ipairs(groups) do
    for _, name in ipairs(g[2]) do width = math.max(width, #left(name)) end
  end
  width = math.min(width, 34)
  if how.usage then lines[#lines + 1] = how.usage end
  if how.about then lines[#lines + 1] = how.about end
  for _, g in ipairs(groups) do
    lines[#lines + 1] = ''
    lines[#lines + 1] = g[1] .. ':'
    for _, name in ipairs(g[2]) do
      local d = decls[name]
      local l = left(name)
      local kind = type(d.kind) == 'table' and table.concat(d.kind, '|') or d.kind
      local text = d.description .. (kind and (' [' .. kind .. ']') or '')
      if #l > width then lines[#lines + 1] = '  ' .. l; l = '' end
      lines[#lines + 1] = ('  %-' .. width .. 's  %s'):format(l, text)
    end
  end
  lines[#lines + 1] = ''
  lines[#lines + 1] = 'Options take the forms --name=value, name=value, --name value, --flag, --no-flag;'
  lines[#lines + 1] = '--config=FILE reads them from a JSON file or a Lua file returning a table.'
  return table.concat(lines, '\n') .. '\n'
end

-- The first form, lat.args(defaults[, argv]): defaults maps names to default values; the other
-- words of argv are kept in opt[1], opt[2], ...; -h/--help prints the options and exits.
local function parse_plain(defaults, argv)
  argv = argv or arg or {}
  local decls = declarations(defaults, false)
  local settings, positional, help = read_words(decls, argv, false)
  if help then
    local names = {}
    for k in pairs(decls) do names[#names + 1] = k end
    table.sort(names)
    io.write(('usage: lat %s [--name=value ...]\n\noptions (with their defaults):\n'):format(arg and arg[0] or 'script.lua'))
    for _, k in ipairs(names) do io.write(('  --%s=%s\n'):format(k, tostring(decls[k].default))) end
    os.exit(0)
  end
  local opt = {}
  for k, d in pairs(decls) do opt[k] = d.default end
  for _, s in ipairs(settings) do
    local name = s[1]:gsub('-', '_')
    opt[name] = convert(s[1], decls[name] or unknown(decls, s[1]), s[2])
  end
  for _, a in ipairs(positional) do opt[#opt + 1] = a end
  return opt
end
return setmetatable(A, { __call = function(_, defaults, argv) return parse_plain(defaults, argv) end })
