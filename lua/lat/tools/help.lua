-- tools/help.lua: help() in the REPL and the notebooks. help() lists lat's namespaces, one line
-- each; help(x) documents what x is: a function by the comment block above its definition, a
-- class (lat.models.ResNet) by its constructor's comment and its methods, a module (lat.attack)
-- by its file's header comment and its members, a model or tensor by its class. help('lat.x')
-- looks the name up first. All of it is read from the source files themselves.
local lat = require 'lat'
local complete = require 'lat.tools.complete'

local M = {}

local files = {} -- path -> its lines
local function lines_of(path)
  if not files[path] then
    local t, fh = {}, path and io.open(path)
    if fh then
      for l in fh:lines() do t[#t + 1] = l end
      fh:close()
    end
    files[path] = t
  end
  return files[path]
end

-- the comment block that ends on the line above `line`, without its dashes
local function comment_above(lines, line)
  local doc, i = {}, line - 1
  while i >= 1 and lines[i] and lines[i]:match('^%s*%-%-') do
    table.insert(doc, 1, (lines[i]:gsub('^%s*%-%- ?', '')))
    i = i - 1
  end
  return doc
end

local function where(f)
  local info = debug.getinfo(f, 'S')
  return info.source:match('^@(.*)'), info.linedefined, info.short_src
end

-- the comment above f's definition (for a class's __init, above the class line when that is
-- where it stands); a list of lines
local function comment_of(f)
  local path, line = where(f)
  if not path then return {} end
  local lines = lines_of(path)
  local doc = comment_above(lines, line)
  if #doc == 0 and lines[line - 1] and lines[line - 1]:find('class%(') then doc = comment_above(lines, line - 1) end
  return doc
end

-- the first sentence of a doc (at most 90 characters), without a leading 'file.lua: ' or 'lat.x, '
local function summary_line(doc)
  local text = table.concat(doc, ' ', 1, math.min(#doc, 3))
  text = text:gsub('^[%w_./]+%.lua:%s*', ''):gsub('^lat[%w_.]*[:,]%s*', '')
  text = text:match('^(.-%.)%s') or text:match('^(.-%.)$') or text
  if #text > 90 then text = text:sub(1, 87):gsub('%s*%S*$', '') .. '...' end
  return text
end

-- 'Linear(n_in, n_out, opts)': how a class is called, from its __init's definition line
local function constructor(cls)
  local path, line = where(cls.__init)
  local params = path and (lines_of(path)[line] or ''):match('__init%s*(%b())')
  return cls.__name .. (params or '(...)'):gsub('^%(self,?%s*', '(')
end

-- doc(f): the comment block written above f in its source file and where f is defined
function M.doc(f)
  local path, line, short = where(f)
  local at = path and ('%s:%d'):format(path, line) or short
  local doc = comment_of(f)
  if #doc == 0 then return ('no documentation above its definition (%s)'):format(at) end
  return table.concat(doc, '\n') .. '\n  (' .. at .. ')'
end

-- the module name under which package.loaded holds t, or nil
local function module_name(t)
  for name, v in pairs(package.loaded) do
    if v == t and type(name) == 'string' then return name end
  end
end

local function header_of(name)
  local path = name and package.searchpath(name, package.path)
  if not path then return {} end
  local lines, doc = lines_of(path), {}
  for _, l in ipairs(lines) do
    if not l:match('^%-%-') then break end
    doc[#doc + 1] = (l:gsub('^%-%- ?', ''))
  end
  return doc
end

local function is_class(t) return type(t) == 'table' and rawget(t, '__name') ~= nil and type(t.__init) == 'function' end

-- the names in t of one kind, sorted
local function members(t)
  local kinds = { modules = {}, classes = {}, functions = {}, values = {} }
  for k, v in pairs(t) do
    if type(k) == 'string' and k:sub(1, 1) ~= '_' then
      local kind = is_class(v) and 'classes' or type(v) == 'function' and 'functions'
        or type(v) == 'table' and module_name(v) and 'modules' or 'values'
      table.insert(kinds[kind], k)
    end
  end
  for _, list in pairs(kinds) do table.sort(list) end
  return kinds
end

-- 'label: a, b, c' wrapped at 100 columns
local function wrapped(label, names)
  if #names == 0 then return nil end
  local out, line = {}, label .. ':'
  for i, n in ipairs(names) do
    local word = ' ' .. n .. (i < #names and ',' or '')
    if #line + #word > 100 then
      out[#out + 1] = line
      line = '   '
    end
    line = line .. word
  end
  out[#out + 1] = line
  return table.concat(out, '\n')
end

local function class_text(cls)
  local out = { ('%s (class; lat.nn.Module)'):format(constructor(cls)) }
  for _, l in ipairs(comment_of(cls.__init)) do out[#out + 1] = '  ' .. l end
  local own, inherited, seen = {}, {}, {}
  local c = cls
  while type(c) == 'table' do
    for k, v in pairs(c) do
      if type(v) == 'function' and type(k) == 'string' and k:sub(1, 1) ~= '_' and not seen[k] then
        seen[k] = true
        table.insert(c == cls and own or inherited, k)
      end
    end
    c = rawget(c, '__parent')
  end
  table.sort(own)
  table.sort(inherited)
  for _, k in ipairs(own) do
    local line = summary_line(comment_of(cls[k]))
    out[#out + 1] = ('  :%s%s'):format(k, line ~= '' and ('  -- ' .. line) or '')
  end
  out[#out + 1] = wrapped('  inherited', inherited)
  return table.concat(out, '\n')
end

local function module_text(t, name)
  local out = {}
  for _, l in ipairs(header_of(name)) do out[#out + 1] = l end
  if #out == 0 then out[1] = ('%s: a table'):format(name or 'this') end
  local kinds = members(t)
  for _, kind in ipairs({ 'modules', 'classes', 'functions', 'values' }) do
    out[#out + 1] = wrapped(kind, kinds[kind])
  end
  return table.concat(out, '\n')
end

-- the namespaces of lat, one line each
local function overview()
  local out = { ('lat %s: help(x) documents a function, class, module, model or tensor; help(\'lat.attack.pgd\') too.'):format(lat.version) }
  local names = members(lat).modules
  for _, k in ipairs(names) do
    out[#out + 1] = ('  lat.%-11s %s'):format(k, summary_line(header_of(module_name(lat[k]))))
  end
  out[#out + 1] = '  lat.Tensor      the tensor type and its methods (help(lat.Tensor)); lat.* also holds its creation functions'
  return table.concat(out, '\n')
end

-- text(x[, given]): what help(x) prints; given says whether an argument was passed at all
function M.text(x, given)
  if not given then return overview() end
  if type(x) == 'string' then
    local v = complete.resolve(x)
    if v == nil then return ("help: no value named '%s' (try help() for the namespaces)"):format(x) end
    x = v
  end
  if type(x) == 'function' then return M.doc(x) end
  if lat.is_tensor(x) then return lat.repr(x) .. '\n' .. M.text(lat.Tensor, true) end
  if x == lat.Tensor then return module_text(x, 'lat.tensor') end
  if is_class(x) then return class_text(x) end
  if type(x) == 'table' and is_class(getmetatable(x)) then
    return tostring(x) .. '\n\n' .. class_text(getmetatable(x))
  end
  if type(x) == 'table' then return module_text(x, module_name(x)) end
  return ('%s (a %s): help documents functions, classes, modules, models and tensors'):format(lat.repr(x), type(x))
end

-- help([x]): prints text(x)
function M.help(...) print(M.text((...), select('#', ...) > 0)) end

return M
