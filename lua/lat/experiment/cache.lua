-- experiment/cache.lua: an expensive stage (a trojaned model, a pretrained LM) kept on disk
-- under the inputs that made it, and reused by any later run with the same inputs.
--   local model = cache.get('runs/cache', 'trojaned', { epochs = 5, seed = 1 }, function()
--     ... return model, { seconds = 12 } end)
-- The value is a lat.models model (saved with lat.models.save), a table of tensors (lat.save) or
-- plain values (JSON). A stage made now is read back from disk too, so that a run that made it
-- and a run that found it go on from the same thing (a loaded model is in evaluation mode).
local core = require 'lat.core'
local json = require 'lat.io.json'
local fs = require 'lat.experiment.fs'
local sys = require 'lat.core.sys'
local seeds = require 'lat.experiment.seeds'
local raise = core.raise

local M = {}

local FILES = { model = 'model.safetensors', tensors = 'tensors.safetensors', json = 'value.json' }

local function kind_of(value)
  local lat = require 'lat'
  if type(value) == 'table' and type(value.state_dict) == 'function' then return 'model' end
  if type(value) == 'table' then
    local all = next(value) ~= nil
    for _, v in pairs(value) do all = all and lat.is_tensor(v) end
    if all then return 'tensors' end
  end
  return 'json'
end

local function save(dir, kind, value)
  local lat = require 'lat'
  local path = dir .. '/' .. FILES[kind]
  if kind == 'model' then lat.models.save(value, path)
  elseif kind == 'tensors' then lat.save(path, value)
  else fs.write_atomic(path, json.encode(value, { exact = true }) .. '\n') end
end

local function load(dir, kind)
  local lat = require 'lat'
  local path = dir .. '/' .. FILES[kind]
  if kind == 'model' then return (lat.models.load(path)) end
  if kind == 'tensors' then return (lat.load(path)) end
  return json.decode(fs.read(path))
end

local function remove(dir)
  for _, name in ipairs(sys.list(dir) or {}) do os.remove(dir .. '/' .. name) end
  os.remove(dir)
end

-- get(root, name, inputs, make) -> value, info, found, dir: the stage `name` made from `inputs`
-- (plain values: what decides its content), from dir = root/<name>-<hash>/ when it is there, else
-- make() -> value[, info] computed, saved and read back. info is a table of plain values kept
-- beside it (e.g. how long it took); found says whether it was there.
function M.get(root, name, inputs, make)
  if type(name) ~= 'string' or not name:match('^[%w_%-%.]+$') then
    raise(("cached: the name must be a word (letters, digits, _ - .), got '%s'"):format(tostring(name)))
  end
  if type(make) ~= 'function' then raise(("cached '%s': the third argument must be the function that makes it"):format(name)) end
  local ok, text = pcall(json.encode, { name = name, inputs = inputs }, { exact = true })
  if not ok then raise(("cached '%s': its inputs must be plain values (numbers, strings, booleans, tables of them): %s"):format(name, text)) end
  local dir = ('%s/%s-%s'):format(root, name, seeds.hash(text))
  local recorded = fs.read(dir .. '/inputs.json')
  local found = recorded ~= nil
  if not found then
    local value, info = make()
    local kind = kind_of(value)
    local okp, err = sys.mkdir_p(root)
    if not okp then raise(("cached '%s': %s"):format(name, err)) end
    local tmp = ('%s/.%s-%s.tmp.%d'):format(root, name, seeds.hash(text), sys.pid())
    remove(tmp)
    sys.mkdir(tmp)
    save(tmp, kind, value)
    fs.write_atomic(tmp .. '/info.json', json.encode({ kind = kind, info = info or {} }, { exact = true }) .. '\n')
    fs.write_atomic(tmp .. '/inputs.json', text .. '\n')
    if not os.rename(tmp, dir) then remove(tmp) end -- another process made it first: take theirs
    recorded = fs.read(dir .. '/inputs.json')
    if not recorded then raise(("cached '%s': cannot move it into %s"):format(name, dir)) end
  end
  if recorded ~= text .. '\n' then raise(("cached '%s': %s holds a stage made from other inputs (a hash collision?)"):format(name, dir)) end
  local meta = json.decode(fs.read(dir .. '/info.json') or '{}')
  if not FILES[meta.kind] then raise(("cached '%s': %s/info.json names no kind of value"):format(name, dir)) end
  return load(dir, meta.kind), meta.info, found, dir
end

return M
