-- log/init.lua: what a run writes down: a progress bar, JSON-lines and CSV writers, and a run folder
-- holding config.json and the metric files.
--   local run = lat.log.run_dir('runs/exp1', config)
--   run:jsonl('metrics'):write{ epoch = 1, loss = 0.25 }     -- runs/exp1/metrics.jsonl
local core = require 'lat.core'
local lat = require 'lat.tensor'
local sys = require 'lat.core.sys'
local raise = core.raise

local json = require 'lat.io.json' -- sorted keys: the same record gives the same bytes in every run

local M = { progress = require 'lat.log.progress', null = json.null }

-- A copy of v that JSON can hold and Python's json can read: nan and +-inf become null, scalar
-- tensors numbers (others nested lists), 64-bit cdata numbers, anything else its tostring.
local function clean(v, depth)
  local t = type(v)
  if t == 'number' then
    if v ~= v or v == math.huge or v == -math.huge then return json.null end
    return v
  elseif t == 'string' or t == 'boolean' or v == json.null then return v
  elseif t == 'table' then
    if depth > 64 then raise('log: nesting deeper than 64 (a cycle?)') end
    local out = {}
    for k, x in pairs(v) do
      if type(k) ~= 'number' then k = tostring(k) end
      out[k] = clean(x, depth + 1)
    end
    return out
  elseif t == 'cdata' then
    if lat.is_tensor(v) then return clean(v:numel() == 1 and v:item() or v:tolist(), depth) end
    local n = tonumber(v)
    if n then return clean(n, depth) end
  end
  return tostring(v)
end

-- one JSON text for v (see clean), without a newline, object keys sorted
function M.encode(v) return json.encode(clean(v, 0)) end

local function open(path, append, what)
  local f, err = io.open(path, append and 'a' or 'w')
  if not f then raise(('%s: cannot open %s'):format(what, err)) end
  return f
end

-- ---------------------------------------------------------------- JSON lines

local Jsonl = {}
Jsonl.__index = Jsonl

-- jsonl(path[, {append=true}]): w:write(table) writes one object per line, flushed at once
function M.jsonl(path, opts)
  return setmetatable({ file = open(path, opts and opts.append, 'jsonl'), path = path }, Jsonl)
end
function Jsonl:write(obj)
  self.file:write(M.encode(obj), '\n')
  self.file:flush()
end
function Jsonl:close()
  if self.file then self.file:close(); self.file = nil end
end

-- ---------------------------------------------------------------- CSV

-- numbers as the shortest %.15g..%.17g text that reads back the same; nan, inf, -inf as such
local function csv_number(v)
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
  for prec = 15, 16 do
    local s = ('%.' .. prec .. 'g'):format(v)
    if tonumber(s) == v then return s end
  end
  return ('%.17g'):format(v)
end

local function csv_field(v)
  if v == nil or v == json.null then return '' end
  if type(v) == 'cdata' and lat.is_tensor(v) then v = v:item() end
  if type(v) == 'number' then return csv_number(v) end
  local s = tostring(v)
  if s:find('[,"\r\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

local Csv = {}
Csv.__index = Csv

-- csv(path, columns[, {append=true}]): a header line, then w:write(row) with row keyed by column
-- name (missing values are left empty) or an array in column order
function M.csv(path, columns, opts)
  if type(columns) ~= 'table' or #columns == 0 then raise('csv: columns must be a non-empty array of names') end
  local append = opts and opts.append
  local exists = append and io.open(path, 'r')
  if exists then exists:close() end
  local w = setmetatable({ file = open(path, append, 'csv'), path = path, columns = columns }, Csv)
  if not exists then w:write_fields(columns) end
  return w
end
function Csv:write_fields(values)
  local out = {}
  for i = 1, #self.columns do out[i] = csv_field(values[i]) end
  self.file:write(table.concat(out, ','), '\n')
  self.file:flush()
end
function Csv:write(row)
  if row[1] ~= nil then return self:write_fields(row) end
  local values = {}
  for i, c in ipairs(self.columns) do values[i] = row[c] end
  self:write_fields(values)
end
Csv.close = Jsonl.close

-- read_csv(path) -> rows, columns: what csv() writes (or any CSV with a header line, quoted
-- fields with commas, quotes and newlines), each row keyed by column name; fields that read as
-- numbers (nan and inf too) become numbers, empty fields nil. A missing file raises.
function M.read_csv(path)
  local f, err = io.open(path, 'r')
  if not f then raise('read_csv: cannot open ' .. err) end
  local text = f:read('*a')
  f:close()
  local records, fields, pos, n = {}, {}, 1, #text
  while pos <= n do
    local field
    if text:sub(pos, pos) == '"' then
      local parts, i = {}, pos + 1
      while true do
        local q = text:find('"', i, true)
        if not q then raise(('read_csv: %s: a quoted field is not closed'):format(path)) end
        parts[#parts + 1] = text:sub(i, q - 1)
        if text:sub(q + 1, q + 1) == '"' then parts[#parts + 1] = '"'; i = q + 2 else pos = q + 1; break end
      end
      field = table.concat(parts)
    else
      local e = text:find('[,\r\n]', pos) or n + 1
      field, pos = text:sub(pos, e - 1), e
    end
    fields[#fields + 1] = field
    local c = text:sub(pos, pos)
    if c == ',' then pos = pos + 1
    else -- the end of a record
      records[#records + 1] = fields
      fields = {}
      pos = pos + ((text:sub(pos, pos + 1) == '\r\n') and 2 or 1)
    end
  end
  local columns = records[1] or {}
  local specials = { nan = 0 / 0, inf = math.huge, ['-inf'] = -math.huge }
  local rows = {}
  for r = 2, #records do
    local row = {}
    for i, name in ipairs(columns) do
      local v = records[r][i]
      if v ~= nil and v ~= '' then row[name] = tonumber(v) or specials[v] or v end
    end
    rows[#rows + 1] = row
  end
  return rows, columns
end

-- ---------------------------------------------------------------- run folders

local Run = {}
Run.__index = Run

-- run_dir(path, config): makes the folder (and parents), writes config.json, and returns a run
-- with :path(name), :jsonl(name) and :csv(name, columns) (a name without an extension gets
-- .jsonl or .csv; each file is opened once per run and reused)
function M.run_dir(path, config)
  if type(path) ~= 'string' or path == '' then raise('run_dir: path must be a non-empty string') end
  local ok, err = sys.mkdir_p(path)
  if not ok then raise('run_dir: ' .. err) end
  local run = setmetatable({ dir = path, writers = {} }, Run)
  local f = open(run:path('config.json'), false, 'run_dir')
  f:write(M.encode(config or {}), '\n')
  f:close()
  return run
end
function Run:path(name) return self.dir .. '/' .. name end
function Run:jsonl(name)
  if not name:find('.', 1, true) then name = name .. '.jsonl' end
  local w = self.writers[name] or M.jsonl(self:path(name))
  self.writers[name] = w
  return w
end
function Run:csv(name, columns)
  if not name:find('.', 1, true) then name = name .. '.csv' end
  local w = self.writers[name] or M.csv(self:path(name), columns)
  self.writers[name] = w
  return w
end
function Run:close()
  for _, w in pairs(self.writers) do w:close() end
  self.writers = {}
end

return M
