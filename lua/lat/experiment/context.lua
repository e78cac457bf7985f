-- experiment/context.lua: ctx, what the scaffold hands a recipe's setup, run and summarise.
--   ctx.opt           the options (ctx.opt.seed is the run's seed)
--   ctx.config        the configuration being run (in run; nil in setup and summarise)
--   ctx.setup         what setup returned (in run)
--   ctx.shard         { index =, count = } of this process (nil in summarise)
--   ctx.smoke         true in a --quick run
--   ctx:path(name)    a file in the run folder
--   ctx:seed(purpose) an integer seed from the run's seed, the configuration's key (none in
--                     setup) and the purpose ('finetune', 'attack', ...): never from the grid's order
--   ctx:generator(purpose)  lat.Generator(ctx:seed(purpose))
--   ctx:cached(name, inputs, make)  an expensive stage kept under the inputs that made it
--                     (cache.lua): value, info, found, and the folder that holds it
--   ctx:link(name, target)  a symbolic link name -> target in the run folder, unless name is
--                     there already (e.g. the cached trojaned model, without a copy per shard)
--   ctx:heading(text) text, and before it in a --quick run a line saying it is a smoke test
--   ctx:write_csv(name, columns, rows)  a CSV in the run folder, written whole or not at all
--                     (a smoke test's gets a smoke_test column)
local seeds = require 'lat.experiment.seeds'
local cache = require 'lat.experiment.cache'
local sys = require 'lat.core.sys'

local Ctx = {}
Ctx.__index = Ctx

local SMOKE = 'SMOKE TEST (--quick): a tiny slice of everything; the numbers are no results'

function Ctx:path(name) return self.dir .. '/' .. name end

function Ctx:seed(purpose)
  return seeds.derive(self.opt.seed, self.config and self.config.key or '', purpose or '')
end

function Ctx:generator(purpose) return require('lat').Generator(self:seed(purpose)) end

function Ctx:cached(name, inputs, make) return cache.get(self.opt.cache, name, inputs, make) end

function Ctx:link(name, target)
  local ok, errno = sys.symlink(target, self:path(name))
  if not ok and errno ~= sys.EEXIST then
    require('lat.core').raise(('cannot link %s to %s: %s'):format(self:path(name), target, sys.strerror(errno)))
  end
  return self:path(name)
end

function Ctx:heading(text)
  if not self.smoke then return text end
  return '== SMOKE TEST (--quick): a check of the code paths on a tiny slice of everything; these numbers are no results ==\n' .. text
end

function Ctx:write_csv(name, columns, rows)
  local log = require('lat').log
  local marked = {}
  for i, c in ipairs(columns) do marked[i] = c end
  if self.smoke then marked[#marked + 1] = 'smoke_test' end
  local path = self:path(name)
  local tmp = ('%s.tmp.%d'):format(path, sys.pid())
  local w = log.csv(tmp, marked)
  for _, r in ipairs(rows) do
    local values = {}
    for i, c in ipairs(columns) do values[i] = r[c] end
    if self.smoke then values[#marked] = true end
    w:write_fields(values)
  end
  w:close()
  local ok, err = os.rename(tmp, path)
  if not ok then os.remove(tmp); require('lat.core').raise(('cannot write %s: %s'):format(path, tostring(err))) end
  return path
end

return { new = function(t) return setmetatable(t, Ctx) end, SMOKE = SMOKE }
