-- trojan/image.lua: image triggers for float32 [B, C, H, W] batches in [0, 1]: a stamped patch,
-- a blended full-image pattern and a smooth fixed warp (WaNet-like).
local core = require 'lat.core'
local lat = require 'lat.tensor'
local base = require 'lat.trojan.base'
local ffi, raise = core.ffi, core.raise

local I = {}

-- ImageTrojan (lat.trojan.ImageTrojan): the methods every image trojan has on top of Trojan's;
-- each kind adds apply(x [B, C, H, W], index int32 [B]) -> a new batch with the trigger
local Image = setmetatable({}, base.Trojan)
Image.__index = Image
I.ImageTrojan = Image

local function check_images(x, what)
  if not lat.is_tensor(x) or x.dtype ~= 'float32' or x.ndim ~= 4 then
    raise(what .. ': expected float32 images [B, C, H, W]')
  end
  return x:size(1), x:size(2), x:size(3), x:size(4)
end

-- the trigger on rows (0-based) of the batch's x in place; index: the batch's dataset positions
function Image:trigger_rows(x, rows, index)
  local sel = lat.tensor(rows, 'int32')
  local out = self:apply(x:index_select(1, sel), index:index_select(1, sel))
  local n = x:numel() / x:size(1)
  for k, r in ipairs(rows) do ffi.copy(x.f + r * n, out.f + (k - 1) * n, n * 4) end
end

-- the trigger on one image [C, H, W] with dataset index i
function Image:trigger_one(img, i)
  local s = img.shape
  return self:apply(img:reshape(1, s[1], s[2], s[3]), lat.tensor({ i }, 'int32')):reshape(s[1], s[2], s[3])
end

local function new(kind, opts) return I[kind .. '_mt'](opts) end

-- a pattern tensor given by the user: [h, w], [1, h, w] or [C, h, w] float32 in [0, 1]
local function user_pattern(p, what)
  if not lat.is_tensor(p) or p.dtype ~= 'float32' or p.ndim < 2 or p.ndim > 3 then
    raise(what .. ': pattern must be a float32 tensor [h, w] or [C, h, w]')
  end
  if p.ndim == 2 then p = p:reshape(1, p:size(1), p:size(2)) end
  p = p:clone()
  for k = 0, p:numel() - 1 do
    if not (p.f[k] >= 0 and p.f[k] <= 1) then raise(what .. ': pattern values must lie in [0, 1]') end
  end
  return p
end

local function pattern_channel(p, c, C, what)
  local pc = p:size(1)
  if pc ~= 1 and pc ~= C then raise(('%s: the pattern has %d channels, the images %d'):format(what, pc, C)) end
  return pc == 1 and 0 or c
end

-- ---------------------------------------------------------------- patch

I.patch_mt = base.class('patch', Image)
local Patch = I.patch_mt

-- patch{target =, rate =, size = 4, pattern = 'checker' | 'white' | tensor [s, s] or [C, s, s],
-- location = 'bottom_right' | 'top_left' | 'random' | {row, col} (1-based top-left corner),
-- source =, cover =, seed = 0, name =}: the pattern replaces the pixels of its square. With
-- 'random', the place of each example is drawn from (seed, name, dataset index).
function I.patch(opts)
  local t = new('patch', opts)
  local pat = opts.pattern or 'checker'
  if lat.is_tensor(pat) then
    t.pattern = user_pattern(pat, 'trojan.patch')
    if t.pattern:size(2) ~= t.pattern:size(3) then raise('trojan.patch: the pattern must be square') end
    t.size = t.pattern:size(2)
  else
    local s = opts.size or 4
    if type(s) ~= 'number' or s < 1 or s ~= math.floor(s) then raise('trojan.patch: size must be a whole number >= 1') end
    t.size = s
    local p = lat.zeros(1, s, s)
    for i = 0, s - 1 do
      for j = 0, s - 1 do
        if pat == 'white' or (pat == 'checker' and (i + j) % 2 == 0) then p.f[i * s + j] = 1
        elseif pat ~= 'checker' then raise("trojan.patch: pattern must be 'checker', 'white' or a tensor") end
      end
    end
    t.pattern = p
  end
  local loc = opts.location or 'bottom_right'
  if type(loc) == 'table' then
    if #loc ~= 2 then raise('trojan.patch: location {row, col} takes two 1-based numbers') end
  elseif loc ~= 'bottom_right' and loc ~= 'top_left' and loc ~= 'random' then
    raise("trojan.patch: location must be 'bottom_right', 'top_left', 'random' or {row, col}")
  end
  t.location = loc
  t.location_key = base.key(t.seed, t.name .. '#location')
  return t
end

-- corner(H, W, id) -> 0-based row and column of the patch for the example with dataset index id
function Patch:corner(H, W, id)
  local s, loc = self.size, self.location
  if loc == 'bottom_right' then return H - s, W - s end
  if loc == 'top_left' then return 0, 0 end
  if loc == 'random' then
    return base.below(self.location_key, 2 * id, H - s + 1), base.below(self.location_key, 2 * id + 1, W - s + 1)
  end
  return loc[1] - 1, loc[2] - 1
end

-- apply(x[, index]): a new batch with the patch stamped; index (int32 [B], dataset positions)
-- places random patches (default 0, 1, ..., B - 1)
function Patch:apply(x, index)
  local Bn, C, H, W = check_images(x, 'trojan.patch:apply')
  local s, p = self.size, self.pattern
  local out = x:clone()
  local o, pf = out.f, p.f
  for b = 0, Bn - 1 do
    local r0, c0 = self:corner(H, W, index and index.i[b] or b)
    if r0 < 0 or c0 < 0 or r0 + s > H or c0 + s > W then
      raise(('trojan.patch: a %dx%d patch at row %d, column %d does not fit a %dx%d image'):format(s, s, r0 + 1, c0 + 1, H, W))
    end
    for c = 0, C - 1 do
      local pc = pattern_channel(p, c, C, 'trojan.patch') * s * s
      local img = (b * C + c) * H * W
      for i = 0, s - 1 do
        for j = 0, s - 1 do o[img + (r0 + i) * W + c0 + j] = pf[pc + i * s + j] end
      end
    end
  end
  return out
end

-- ---------------------------------------------------------------- blend

I.blend_mt = base.class('blend', Image)
local Blend = I.blend_mt

-- blend{target =, rate =, alpha = 0.15, pattern = 'noise' | tensor [H, W] or [C, H, W], source =,
-- cover =, seed = 0, name =}: x' = (1 - alpha) x + alpha p. 'noise' is a fixed uniform [0, 1]
-- image drawn from (seed, name) for each image shape.
function I.blend(opts)
  local t = new('blend', opts)
  t.alpha = opts.alpha or 0.15
  if type(t.alpha) ~= 'number' or t.alpha < 0 or t.alpha > 1 then raise('trojan.blend: alpha must lie in [0, 1]') end
  local pat = opts.pattern or 'noise'
  if lat.is_tensor(pat) then t.user = user_pattern(pat, 'trojan.blend')
  elseif pat ~= 'noise' then raise("trojan.blend: pattern must be 'noise' or a tensor") end
  t.noise = {}
  return t
end

-- the pattern [C or 1, H, W] for images of this shape
function Blend:pattern_for(C, H, W)
  if self.user then
    if self.user:size(2) ~= H or self.user:size(3) ~= W then
      raise(('trojan.blend: the pattern is %dx%d, the images %dx%d'):format(self.user:size(2), self.user:size(3), H, W))
    end
    return self.user
  end
  local key = C .. 'x' .. H .. 'x' .. W
  if not self.noise[key] then
    local g = lat.Generator(base.generator_seed(base.key(self.seed, self.name .. '#noise')))
    self.noise[key] = lat.rand({ C, H, W }, { rng = g })
  end
  return self.noise[key]
end

function Blend:apply(x)
  local Bn, C, H, W = check_images(x, 'trojan.blend:apply')
  local p = self:pattern_for(C, H, W)
  local a = self.alpha
  local out = x:clone()
  local o, pf, n = out.f, p.f, H * W
  for b = 0, Bn - 1 do
    for c = 0, C - 1 do
      local img, pc = (b * C + c) * n, pattern_channel(p, c, C, 'trojan.blend') * n
      for k = 0, n - 1 do
        local v = (1 - a) * o[img + k] + a * pf[pc + k]
        o[img + k] = v < 0 and 0 or v > 1 and 1 or v
      end
    end
  end
  return out
end

-- ---------------------------------------------------------------- warp

I.warp_mt = base.class('warp', Image)
local Warp = I.warp_mt

-- warp{target =, rate =, strength = 1, grid = 4, source =, cover =, seed = 0, name =}: every image
-- is resampled (bilinearly, edges clamped) at p + d(p), where the displacement field d is fixed:
-- uniform [-1, 1] values on a grid x grid lattice of control points spanning the image (one per
-- axis), scaled so their mean absolute value is `strength` pixels, upsampled bilinearly. WaNet's
-- s corresponds to strength = s / 2 (its s = 0.5 on 28x28 images: 0.25 pixels).
function I.warp(opts)
  local t = new('warp', opts)
  t.strength = opts.strength or 1
  t.grid = opts.grid or 4
  if type(t.strength) ~= 'number' or t.strength < 0 then raise('trojan.warp: strength must be a number >= 0') end
  if type(t.grid) ~= 'number' or t.grid < 2 or t.grid ~= math.floor(t.grid) then raise('trojan.warp: grid must be a whole number >= 2') end
  local g, key, sum = t.grid, base.key(t.seed, t.name .. '#warp'), 0
  t.control = {} -- [axis][gy * g + gx], axis 1 = rows, 2 = columns
  for axis = 1, 2 do
    t.control[axis] = {}
    for k = 0, g * g - 1 do
      local v = 2 * base.uniform(key, (axis - 1) * g * g + k) - 1
      t.control[axis][k] = v
      sum = sum + math.abs(v)
    end
  end
  local scale = sum > 0 and t.strength * 2 * g * g / sum or 0
  for axis = 1, 2 do for k = 0, g * g - 1 do t.control[axis][k] = t.control[axis][k] * scale end end
  t.cache = {}
  return t
end
-- field(H, W) -> float32 [2, H, W]: the displacement in pixels (rows, then columns)
function Warp:field(H, W)
  local key = H .. 'x' .. W
  if self.cache[key] then return self.cache[key] end
  local g, d = self.grid, lat.zeros(2, H, W)
  for axis = 1, 2 do
    local cp = self.control[axis]
    for i = 0, H - 1 do
      local gy = H > 1 and i * (g - 1) / (H - 1) or 0
      local y0 = math.min(math.floor(gy), g - 2)
      local fy = gy - y0
      for j = 0, W - 1 do
        local gx = W > 1 and j * (g - 1) / (W - 1) or 0
        local x0 = math.min(math.floor(gx), g - 2)
        local fx = gx - x0
        local v = (1 - fy) * ((1 - fx) * cp[y0 * g + x0] + fx * cp[y0 * g + x0 + 1])
          + fy * ((1 - fx) * cp[(y0 + 1) * g + x0] + fx * cp[(y0 + 1) * g + x0 + 1])
        d.f[((axis - 1) * H + i) * W + j] = v
      end
    end
  end
  self.cache[key] = d
  return d
end

function Warp:apply(x)
  local Bn, C, H, W = check_images(x, 'trojan.warp:apply')
  local d = self:field(H, W)
  local out = x:clone()
  local src, o, df, n = x.f, out.f, d.f, H * W
  for i = 0, H - 1 do
    for j = 0, W - 1 do
      local sy = math.min(math.max(i + df[i * W + j], 0), H - 1)
      local sx = math.min(math.max(j + df[n + i * W + j], 0), W - 1)
      local y0, x0 = math.floor(sy), math.floor(sx)
      local fy, fx = sy - y0, sx - x0
      local y1, x1 = math.min(y0 + 1, H - 1), math.min(x0 + 1, W - 1)
      for bc = 0, Bn * C - 1 do
        local img = bc * n
        o[img + i * W + j] = (1 - fy) * ((1 - fx) * src[img + y0 * W + x0] + fx * src[img + y0 * W + x1])
          + fy * ((1 - fx) * src[img + y1 * W + x0] + fx * src[img + y1 * W + x1])
      end
    end
  end
  return out
end

return I
