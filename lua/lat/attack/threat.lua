-- attack/threat.lua: threat models. A threat model says where the adversary acts (the input, the token
-- embeddings, any named layer, several layers, a block's queries, keys or values) and what it
-- may do there: a perturbation in an L2, Linf or L1 ball of radius eps, the norm taken per
-- example, per token or per channel, eps absolute or relative to the clean activation's norm,
-- clamped to a valid range, and masked to some positions.
--   local tm = lat.threat{ where = 'layer2', norm = 'l2', eps = 2.0, granularity = 'example' }
--   tm:project(delta, clean)   -- in place, onto the set (usable by any hand-written attack)
-- A new norm is an entry of lat.Threat.norms (see there): lat.Threat.norms.box = { measure = ...,
-- project = ... } makes lat.threat{ norm = 'box', ... } project, sample and measure with it.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local raise = core.raise

local Threat = {}
Threat.__index = Threat
local M = { Threat = Threat } -- lat/init.lua makes M.new lat.threat and Threat lat.Threat

local FIELDS = { where = true, norm = true, eps = true, relative = true, granularity = true, clamp = true, mask = true,
  embedding = true }
local GRANULARITIES = { example = true, token = true, channel = true }

-- the names of the norms, for an error message: 'l2', 'linf' or 'l1', then any added ones
local function norm_names()
  local added = {}
  for name in pairs(Threat.norms) do
    if name ~= 'l2' and name ~= 'linf' and name ~= 'l1' then added[#added + 1] = tostring(name) end
  end
  table.sort(added)
  local names = { "'l2'", "'linf'", "'l1'" }
  for _, name in ipairs(added) do names[#names + 1] = "'" .. name .. "'" end
  return table.concat(names, ', ', 1, #names - 1) .. ' or ' .. names[#names]
end

-- where: 'input' (the model's input), 'embedding' (the output of the layer named by
-- opts.embedding, default 'transformer.drop': the token and position embeddings' sum), a layer
-- name (its output), '<layer>:in' (its input), or a list of these; each becomes a site
-- { layer = name, pre = bool, name = the string given }
local function sites_of(where, embedding)
  local list = type(where) == 'table' and where or { where }
  if #list == 0 then raise('threat: where must name at least one place') end
  local sites = {}
  for i, w in ipairs(list) do
    if type(w) ~= 'string' or w == '' then raise(('threat: where[%d] must be a non-empty string'):format(i)) end
    local site
    if w == 'input' then site = { layer = '', pre = true }
    elseif w == 'embedding' then site = { layer = embedding or 'transformer.drop', pre = false }
    else
      local layer = w:match('^(.*):in$')
      site = layer and { layer = layer, pre = true } or { layer = w, pre = false }
    end
    site.name = w
    sites[i] = site
  end
  return sites
end

-- lat.threat{ where=, norm = 'l2', eps=, relative = false, granularity = 'example',
--   clamp = nil | {lo, hi} | 'batch_range', mask = nil | tensor | function(batch, clean) -> tensor,
--   embedding = 'transformer.drop' }
function M.new(spec)
  if type(spec) ~= 'table' then raise('threat: expected a table of settings') end
  for k in pairs(spec) do
    if not FIELDS[k] then
      raise(("threat: unknown setting '%s' (where, norm, eps, relative, granularity, clamp, mask, embedding)"):format(tostring(k)))
    end
  end
  local t = setmetatable({}, Threat)
  t.where = spec.where or raise('threat: where is required')
  t.sites = sites_of(spec.where, spec.embedding)
  t.norm = spec.norm or 'l2'
  if not Threat.norms[t.norm] then raise(("threat: norm must be %s, got '%s'"):format(norm_names(), tostring(t.norm))) end
  t.eps = spec.eps
  if type(t.eps) ~= 'number' or not (t.eps >= 0 and t.eps < math.huge) then
    raise(('threat: eps must be a finite number >= 0, got %s'):format(tostring(t.eps)))
  end
  t.relative = spec.relative and true or false
  t.granularity = spec.granularity or 'example'
  if not GRANULARITIES[t.granularity] then
    raise(("threat: granularity must be 'example', 'token' or 'channel', got '%s'"):format(tostring(t.granularity)))
  end
  t.clamp = spec.clamp
  local c = t.clamp
  if c ~= nil and c ~= 'batch_range' and not (type(c) == 'table' and #c == 2 and type(c[1]) == 'number'
      and type(c[2]) == 'number' and c[1] <= c[2]) then
    raise("threat: clamp must be {lo, hi} with numbers lo <= hi, or 'batch_range'")
  end
  t.mask = spec.mask
  if t.mask ~= nil and type(t.mask) ~= 'function' and not lat.is_tensor(t.mask) then
    raise('threat: mask must be a tensor or a function(batch, clean) -> tensor, got ' .. type(t.mask))
  end
  if spec.embedding ~= nil and type(spec.embedding) ~= 'string' then raise('threat: embedding must be a layer name') end
  return t
end

-- the dims (1-based) a norm is taken over for an activation of n dims
function Threat:group_dims(nd)
  local dims = {}
  if nd <= 1 then return { 1 } end
  if self.granularity == 'example' or nd == 2 then
    for d = 2, nd do dims[#dims + 1] = d end
  elseif self.granularity == 'token' then
    dims[1] = nd
  else -- channel: everything but batch and channel
    for d = 3, nd do dims[#dims + 1] = d end
  end
  return dims
end

-- the unit eps is measured in at an activation: 1, or (relative) the clean activation's norm
-- per group, as a tensor
function Threat:unit(clean)
  if not self.relative then return 1 end
  return lat.no_grad(function() return self:measure(clean) end)
end

-- the norm of each group of an activation (dims kept)
function Threat:measure(x) return Threat.norms[self.norm].measure(x, self:group_dims(x:dim())) end

-- the step rule lat.attack.pgd takes by default under this norm
function Threat:default_rule() return Threat.norms[self.norm].rule or 'l2' end

-- the radius for an activation: eps times the unit
function Threat:radius(clean) return self:unit(clean) * self.eps end

-- the mask for a site (nil for none), from a tensor or a function of the batch and the clean
-- activation
function Threat:mask_for(batch, clean)
  local m = self.mask
  if type(m) == 'function' then m = m(batch, clean) end
  return m
end

-- value range of the perturbed activation: nil, or lo, hi numbers
function Threat:range(clean)
  if self.clamp == nil then return nil end
  if self.clamp == 'batch_range' then
    return lat.no_grad(function() return clean:min():item(), clean:max():item() end)
  end
  return self.clamp[1], self.clamp[2]
end

-- min(d, e) and max(d, -e) for a tensor e, elementwise
local function clamp_sym(d, e)
  if type(e) == 'number' then return d:clamp(-e, e) end
  d = d - (d - e):relu()
  return d + (-e - d):relu()
end

-- Euclidean projection of each group of v (a Lua array) onto the L1 ball of radius r (Duchi et
-- al. 2008): soft-threshold by the theta that makes the absolute values sum to r
local function project_l1_group(vals, r)
  local total = 0
  for _, v in ipairs(vals) do total = total + math.abs(v) end
  if total <= r then return vals end
  local sorted = {}
  for i, v in ipairs(vals) do sorted[i] = math.abs(v) end
  table.sort(sorted, function(a, b) return a > b end)
  local cum, theta = 0, 0
  for i, u in ipairs(sorted) do
    cum = cum + u
    local t = (cum - r) / i
    if u - t > 0 then theta = t end
  end
  for i, v in ipairs(vals) do
    local a = math.max(math.abs(v) - theta, 0)
    vals[i] = v < 0 and -a or a
  end
  return vals
end

local function project_l1(d, dims, radius)
  -- groups as rows: move the group dims last, then each row is one group
  local nd = d:dim()
  local keep, order = {}, {}
  local in_group = {}
  for _, g in ipairs(dims) do in_group[g] = true end
  for k = 1, nd do if not in_group[k] then keep[#keep + 1] = k end end
  for _, k in ipairs(keep) do order[#order + 1] = k end
  for _, k in ipairs(dims) do order[#order + 1] = k end
  local p = d:permute(order)
  local shape = p.shape
  local glen = 1
  for _ = 1, #dims do glen = glen * shape[#shape]; table.remove(shape) end
  local rows = p:numel() / glen
  local flat = p:reshape(rows, glen):clone()
  local r = nil
  if type(radius) ~= 'number' then r = radius:reshape(-1) end
  for row = 0, rows - 1 do
    local vals = {}
    for k = 0, glen - 1 do vals[k + 1] = flat.f[row * glen + k] end
    project_l1_group(vals, r and r.f[row] or radius)
    for k = 0, glen - 1 do flat.f[row * glen + k] = vals[k + 1] end
  end
  local inv = {}
  for i, k in ipairs(order) do inv[k] = i end
  return flat:reshape(p.shape):permute(inv)
end

-- ---------------------------------------------------------------- the norms

-- Threat.norms (lat.Threat.norms): name -> a norm. A norm is a table of plain functions, each
-- over the groups of a tensor d (dims: the dims, 1-based, that one group spans; radius: a number
-- or a tensor of one value per group, with dims kept):
--   measure(d, dims) -> the norm of each group, dims kept (as d:norm(p, dims, true))
--   project(d, dims, radius) -> d with each group moved into the ball of its radius
--   sphere(dir, dims) -> optional: a point on each group's unit sphere made from Gaussian noise
--     dir (the start of the 'random_radius' and 'sphere' initialisations; default dir / measure)
--   rule -> optional: pgd's default step rule under this norm ('l2' when absent)
-- Masks and value ranges are applied after project, by Threat:project.
Threat.norms = {
  l2 = {
    measure = function(d, dims) return d:norm(2, dims, true) end,
    project = function(d, dims, radius) return d * (radius / d:norm(2, dims, true):clamp(1e-12)):clamp(-math.huge, 1) end,
  },
  linf = {
    measure = function(d, dims) return d:norm(math.huge, dims, true) end,
    project = function(d, _, radius) return clamp_sym(d, radius) end,
    sphere = function(dir) return dir:gt(0):float() * 2 - 1 end, -- a corner: |x| = r everywhere
    rule = 'sign',
  },
  l1 = {
    measure = function(d, dims) return d:norm(1, dims, true) end,
    project = project_l1,
  },
}

-- project(delta, clean[, batch]) -> the nearest point of the set: the norm ball, then the mask,
-- then the valid range of clean + delta. Returns a new tensor without gradient history.
function Threat:project(delta, clean, batch, radius)
  return lat.no_grad(function()
    radius = radius or self:radius(clean)
    local dims = self:group_dims(delta:dim())
    local d = Threat.norms[self.norm].project(delta:detach(), dims, radius)
    local m = self:mask_for(batch, clean)
    if m then d = d * m end
    local lo, hi = self:range(clean)
    if lo then d = (clean + d):clamp(lo, hi) - clean end
    return d
  end)
end

-- A random point of the set for an activation like clean: 'zero'; 'uniform' (each coordinate
-- uniform in [-r, r], then projected); 'random_radius' (a random direction at a radius of u*r,
-- u uniform in [0, 1], per group: the paper's random start); 'sphere' (a random direction at
-- the full radius: the random-perturbation control).
function Threat:sample(clean, init, rng, batch, radius)
  return lat.no_grad(function()
    radius = radius or self:radius(clean)
    if init == 'zero' or init == nil then return lat.zeros(clean.shape) end
    local shape = clean.shape
    if init == 'uniform' then
      local u = lat.rand(shape, { rng = rng }) * 2 - 1
      return self:project(u * radius, clean, batch, radius)
    end
    if init ~= 'random_radius' and init ~= 'sphere' then
      raise(("threat: unknown initialisation '%s' (zero, uniform, random_radius, sphere)"):format(tostring(init)))
    end
    local dims = self:group_dims(#shape)
    local norm = Threat.norms[self.norm]
    local dir = lat.randn(shape, { rng = rng })
    if norm.sphere then dir = norm.sphere(dir, dims)
    else dir = dir / norm.measure(dir, dims):clamp(1e-12) end
    local scale = radius
    if init == 'random_radius' then
      local gshape = {}
      for k = 1, #shape do gshape[k] = shape[k] end
      for _, d in ipairs(dims) do gshape[d] = 1 end
      scale = lat.rand(gshape, { rng = rng }) * radius
    end
    return self:project(dir * scale, clean, batch, radius)
  end)
end

-- a plain-data description of the threat model, for a run's config and results
function Threat:describe()
  local where = type(self.where) == 'table' and table.concat(self.where, '+') or self.where
  return {
    where = where, norm = self.norm, eps = self.eps,
    eps_kind = self.relative and 'relative to the clean activation norm' or 'absolute',
    granularity = self.granularity,
    clamp = type(self.clamp) == 'table' and (self.clamp[1] .. '..' .. self.clamp[2]) or self.clamp,
    masked = self.mask ~= nil,
  }
end

function Threat.__tostring(t)
  local d = t:describe()
  return ('threat(%s, %s eps=%g%s, per %s%s)'):format(d.where, d.norm, d.eps, t.relative and ' relative' or '',
    d.granularity, d.clamp and (', clamp ' .. d.clamp) or '')
end

return M
