-- experiment/grid.lua: a grid is a list of configurations, each a table with a unique readable
-- key (the name of its row, its seeds and its row file).
--   grid.product({ defence = 'lat' }, { layer = { 'layer1', 'layer2' } }, { radius = { 0.1, 0.3 } })
--     -> 4 configurations, keys 'defence=lat layer=layer1 radius=0.1', ...
--   grid.join(a, b, ...)              -- the configurations of several lists, in order
--   grid.check(configurations)        -- raises an error naming a malformed entry or a repeated key
--   grid.select(configurations, 'k1,LAT*')  -- those named, by key or pattern (* and ?)
--   grid.file_name(key)               -- the row file's name for a key
local core = require 'lat.core'
local json = require 'lat.io.json'
local seeds = require 'lat.experiment.seeds'
local raise = core.raise

local G = {}

local function text_of(v)
  if type(v) == 'number' then return json.number(v) end
  return tostring(v)
end

-- product(dim, ...): every combination of the arguments' values, the last argument varying
-- fastest. Each argument maps names to a value or a list of values; a configuration holds one
-- value per name and a key 'name=value ...' in argument order (names within one argument sorted).
function G.product(...)
  local dims = {}
  for a = 1, select('#', ...) do
    local arg = select(a, ...)
    if type(arg) ~= 'table' then raise(('grid.product: argument %d must be a table of name -> values, got %s'):format(a, type(arg))) end
    local names = {}
    for name in pairs(arg) do
      if type(name) ~= 'string' then raise(('grid.product: argument %d has a name that is not a string'):format(a)) end
      if name == 'key' then raise("grid.product: 'key' is made from the other fields; it cannot be one of them") end
      names[#names + 1] = name
    end
    table.sort(names)
    for _, name in ipairs(names) do
      local v = arg[name]
      local values = type(v) == 'table' and v or { v }
      if #values == 0 then raise(("grid.product: '%s' has no values"):format(name)) end
      dims[#dims + 1] = { name = name, values = values }
    end
  end
  local out = {}
  local function fill(d, config, parts)
    if d > #dims then
      local c = { key = table.concat(parts, ' ') }
      for k, v in pairs(config) do c[k] = v end
      out[#out + 1] = c
      return
    end
    local dim = dims[d]
    for _, v in ipairs(dim.values) do
      config[dim.name] = v
      parts[d] = dim.name .. '=' .. text_of(v)
      fill(d + 1, config, parts)
    end
    config[dim.name], parts[d] = nil, nil
  end
  fill(1, {}, {})
  return out
end

function G.join(...)
  local out = {}
  for a = 1, select('#', ...) do
    for _, c in ipairs(select(a, ...)) do out[#out + 1] = c end
  end
  return out
end

-- a file name that stays readable: the key with other characters than letters, digits and
-- . - _ = + replaced by _, and then (when anything was replaced) a hash of the key, so that two
-- keys never share a file
function G.file_name(key)
  local safe = key:gsub('[^%w%.%-_=+]', '_'):gsub('^%.', '_')
  if safe ~= key or #safe > 120 then safe = safe:sub(1, 120) .. '-' .. seeds.hash(key):sub(1, 8) end
  return safe .. '.json'
end

-- check(configurations) -> configurations: a non-empty list of tables, each with a key that is
-- a non-empty string without commas (--only separates keys with them) or line breaks, no key twice
function G.check(grid)
  if type(grid) ~= 'table' then raise(('grid: expected a list of configurations, got a %s'):format(type(grid))) end
  local n = #grid
  for k in pairs(grid) do
    if type(k) ~= 'number' or k < 1 or k > n or k ~= math.floor(k) then
      raise(("grid: expected a list of configurations, but it has an entry named '%s'"):format(tostring(k)))
    end
  end
  if n == 0 then raise('grid: no configurations') end
  local seen, files = {}, {}
  for i, c in ipairs(grid) do
    if type(c) ~= 'table' then raise(('grid: entry %d is a %s, not a configuration table'):format(i, type(c))) end
    local key = c.key
    if type(key) ~= 'string' or key == '' then
      raise(('grid: entry %d has no key (each configuration needs a unique, readable key string)'):format(i))
    end
    if key:find('[,\r\n]') then raise(("grid: entry %d's key '%s' has a comma or a line break"):format(i, key)) end
    if seen[key] then raise(("grid: the key '%s' appears twice (entries %d and %d)"):format(key, seen[key], i)) end
    local file = G.file_name(key)
    if files[file] then raise(("grid: keys '%s' and '%s' share a row file name"):format(grid[files[file]].key, key)) end
    seen[key], files[file] = i, i
  end
  return grid
end

local function glob(p) return '^' .. p:gsub('[%^%$%(%)%%%.%[%]%+%-]', '%%%0'):gsub('%*', '.*'):gsub('%?', '.') .. '$' end

-- select(configurations, only): '' keeps all; else the configurations whose key is one of the
-- comma-separated names, or matches one used as a pattern (* any text, ? one character), in grid
-- order. A name that selects nothing raises an error naming it.
function G.select(grid, only)
  if only == nil or only == '' then return grid end
  local chosen, used = {}, {}
  local names = {}
  for name in (only .. ','):gmatch('([^,]*),') do
    name = name:match('^%s*(.-)%s*$')
    if name ~= '' then names[#names + 1] = name end
  end
  for _, c in ipairs(grid) do
    for _, name in ipairs(names) do
      if c.key == name or (name:find('[%*%?]') and c.key:match(glob(name))) then
        chosen[#chosen + 1], used[name] = c, true
        break
      end
    end
  end
  for _, name in ipairs(names) do
    if not used[name] then
      local keys = {}
      for i = 1, math.min(#grid, 8) do keys[i] = "'" .. grid[i].key .. "'" end
      raise(("--only: '%s' names no configuration (keys: %s%s)"):format(name, table.concat(keys, ', '), #grid > 8 and ', ...' or ''))
    end
  end
  return chosen
end

return G
