-- experiment/defences.lua: what the paper recipes share about the defences they compare: the
-- configurations (clean fine-tuning, RLP, AT over radii, LAT over sites and radii), the loss one
-- fine-tunes with, its threat model's row fields, the paper's two cautions as flags, and the
-- mean and spread of a metric over seeds.
--   local D = require 'lat.experiment.defences'
--   local list = D.list{ rlp = { 'layer2', 0.3 }, at = { 'input', { 0.5, 1 } },
--     lat = { { 'layer1', 0.1 }, { 'layer2', 0.3 } }, format = '%.2g' }
--   -- { name = 'clean fine-tune', defence = 'none' }, { name = 'RLP layer2 0.3', defence = 'rlp',
--   --   where = 'layer2', eps = 0.3 }, { name = 'AT input 0.5', defence = 'at', ... }, ...
local lat = require 'lat'

local D = {}

D.CLEAN, D.UNDEFENDED = 'clean fine-tune', 'undefended'

-- list{ rlp = { layer, eps }, at = { where, radii }, lat = { { layer, eps }, ... }, format = '%g' }
-- -> the configurations in the paper's order, each { name =, defence =, where =, eps = } (the
-- clean fine-tune without where and eps); names are '<RLP|AT|LAT> <where> <eps in format>'
function D.list(spec)
  local fmt = '%s %s ' .. (spec.format or '%g')
  local out = { { name = D.CLEAN, defence = 'none' } }
  local function add(defence, where, eps)
    out[#out + 1] = { name = fmt:format(defence:upper(), where, eps), defence = defence, where = where, eps = eps }
  end
  add('rlp', spec.rlp[1], spec.rlp[2])
  for _, e in ipairs(spec.at[2]) do add('at', spec.at[1], e) end
  for _, p in ipairs(spec.lat) do add('lat', p[1], p[2]) end
  return out
end

-- at(c, seed) -> the grid's configuration of c fine-tuned with that seed: c's fields, seed, and
-- the key '<name> seed=<seed>'
function D.at(c, seed)
  local out = { key = ('%s seed=%d'):format(c.name, seed), seed = seed }
  for k, v in pairs(c) do out[k] = v end
  return out
end

-- undefended(seed) -> the grid's configuration of the trojaned model itself, every recipe's first
function D.undefended(seed) return { key = D.UNDEFENDED, name = D.UNDEFENDED, defence = 'none', seed = seed } end

-- pairs_of(layers, radii) -> every { layer, radius }, layers outermost
function D.pairs_of(layers, radii)
  local out = {}
  for _, layer in ipairs(layers) do
    for _, e in ipairs(radii) do out[#out + 1] = { layer, e } end
  end
  return out
end

-- find(list, name) -> the configuration of that name in list, or nil
function D.find(list, name)
  for _, c in ipairs(list) do if c.name == name then return c end end
  return nil
end

local function clean_loss(m, b) return lat.cross_entropy(m(b.x), b.y) end

-- loss(config, threat, { weight =, steps =, rng = }) -> the fine-tuning loss of a configuration:
-- the clean loss for 'none', else the adversarial loss (L2 PGD from a random radius; RLP: a
-- random perturbation of the same size instead)
function D.loss(c, threat, o)
  if c.defence == 'none' then return clean_loss end
  return lat.train.adversarial{ threat = threat, random = c.defence == 'rlp', weight = o.weight,
    attack = { steps = o.steps, init = 'random_radius', rule = 'l2', rng = o.rng } }
end

-- threat_fields(threat) -> the row fields that say which threat model a defence trained against
-- (all '' for none)
function D.threat_fields(threat)
  if not threat then return { threat = '', where = '', granularity = '', eps_kind = '' } end
  local d = threat:describe()
  return { threat = tostring(threat), where = d.where, eps = d.eps, granularity = d.granularity, eps_kind = d.eps_kind }
end

-- flag(rows[, flags]): the paper's two cautions on every fine-tuned row, each against the
-- undefended row and the clean fine-tune of its own seed (its group when rows have no seed):
-- flags(group, undefended, clean_finetune) sets them (default lat.eval.flags on robustness and
-- trojan_asr); the undefended row's flags say it is the reference
function D.flag(rows, flags)
  flags = flags or function(group, undefended, clean)
    lat.eval.flags(group, { undefended = undefended, clean_finetune = clean })
  end
  local undefended, clean, groups, order = nil, {}, {}, {}
  for _, r in ipairs(rows) do
    local seed = tostring(r.seed)
    if r.name == D.UNDEFENDED then undefended = r
    else
      if r.name == D.CLEAN then clean[seed] = r end
      if not groups[seed] then groups[seed], order[#order + 1] = {}, seed end
      table.insert(groups[seed], r)
    end
  end
  for _, seed in ipairs(order) do flags(groups[seed], undefended, clean[seed]) end
  undefended.flags = '(reference)'
  return rows
end

-- mean_sd(rows, field) -> the mean and the sample standard deviation (0 for one row) of a field
function D.mean_sd(rows, field)
  local n, s, s2 = #rows, 0, 0
  for _, r in ipairs(rows) do s = s + r[field] end
  local m = s / n
  for _, r in ipairs(rows) do s2 = s2 + (r[field] - m) ^ 2 end
  return m, n > 1 and math.sqrt(s2 / (n - 1)) or 0
end

return D
