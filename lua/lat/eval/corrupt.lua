-- eval/corrupt.lua: common corruptions of images in [0, 1] (gaussian noise, blur, contrast, fog,
-- pixelation) at severities 1..5, built from core ops and deterministic given a seed.
--   local y = lat.eval.heldout.corrupt.apply(x, 'fog', 2, { seed = 7 })   -- x float32 [B, C, H, W]
local core = require 'lat.core'
local lat = require 'lat.tensor'
local raise = core.raise

local C = {}

C.kinds = { 'gaussian_noise', 'blur', 'contrast', 'fog', 'pixelate' }

-- the parameter of each kind at severities 1..5: noise sigma, blur sigma (pixels), contrast
-- factor, fog strength, pixelation block size (pixels)
C.levels = {
  gaussian_noise = { 0.04, 0.08, 0.12, 0.18, 0.26 },
  blur = { 0.5, 0.8, 1.1, 1.5, 2.0 },
  contrast = { 0.6, 0.5, 0.4, 0.3, 0.2 },
  fog = { 0.3, 0.5, 0.8, 1.2, 1.8 },
  pixelate = { 2, 3, 4, 5, 6 },
}

-- 0-based indices 0..n-1 shifted by -pad and clamped to [0, size-1], as int32 (replicate padding
-- and nearest-neighbour resampling are index_select with such indices)
local function indices(n, fn)
  local t = lat.empty({ n }, 'int32')
  for i = 0, n - 1 do t.i[i] = fn(i) end
  return t
end

local function pad_replicate(x, ph, pw)
  local H, W = x:size(3), x:size(4)
  local rows = indices(H + 2 * ph, function(i) return math.min(math.max(i - ph, 0), H - 1) end)
  local cols = indices(W + 2 * pw, function(j) return math.min(math.max(j - pw, 0), W - 1) end)
  return x:index_select(3, rows):index_select(4, cols)
end

-- separable Gaussian blur of [B, C, H, W] with edges replicated: a constant image is unchanged
local function gaussian_blur(x, sigma)
  local B, Ch, H, W = unpack(x.shape)
  local r = math.max(1, math.ceil(2 * sigma))
  local w, total = {}, 0
  for i = -r, r do w[#w + 1] = math.exp(-i * i / (2 * sigma * sigma)); total = total + w[#w] end
  local k = lat.tensor(w) / total
  local y = pad_replicate(x:reshape(B * Ch, 1, H, W), r, r)
  y = lat.conv2d(y, k:reshape(1, 1, 1, 2 * r + 1))
  y = lat.conv2d(y, k:reshape(1, 1, 2 * r + 1, 1))
  return y:reshape(B, Ch, H, W)
end
C.gaussian_blur = gaussian_blur

-- per-image minimum and maximum over C, H, W, shaped [B, 1, 1, 1]
local function image_range(x)
  local dims = { 2, 3, 4 }
  return x:neg():amax(dims, true):neg(), x:amax(dims, true)
end

local fns = {}

function fns.gaussian_noise(x, sigma, rng)
  return (x + lat.randn(x.shape, { rng = rng }) * sigma):clamp(0, 1)
end

function fns.blur(x, sigma) return gaussian_blur(x, sigma):clamp(0, 1) end

-- pull each image toward its mean brightness
function fns.contrast(x, c)
  local m = x:mean({ 2, 3, 4 }, true)
  return (x - m) * c + m
end

-- a smooth field in [0, 1] per image (noise on a 4x4 grid, upsampled and blurred), added and
-- the result rescaled into [0, 1] (as ImageNet-C's fog does with its plasma field)
function C.fog_field(shape, rng)
  local B, H, W = shape[1], shape[3], shape[4]
  local g = 4
  local f = lat.randn({ B, 1, g, g }, { rng = rng })
  f = f:index_select(3, indices(H, function(i) return math.floor(i * g / H) end))
  f = f:index_select(4, indices(W, function(j) return math.floor(j * g / W) end))
  f = gaussian_blur(f, math.max(H, W) / (2 * g))
  local lo, hi = image_range(f)
  return (f - lo) / (hi - lo):clamp(1e-6)
end

function fns.fog(x, a, rng) return (x + C.fog_field(x.shape, rng) * a) / (1 + a) end

-- average over k x k blocks (edges replicated to fill the last block), then blow back up
function fns.pixelate(x, k)
  local H, W = x:size(3), x:size(4)
  local hp, wp = math.ceil(H / k) * k, math.ceil(W / k) * k
  local y = x:index_select(3, indices(hp, function(i) return math.min(i, H - 1) end))
  y = y:index_select(4, indices(wp, function(j) return math.min(j, W - 1) end))
  y = lat.avg_pool2d(y, k)
  y = y:index_select(3, indices(H, function(i) return math.floor(i / k) end))
  return y:index_select(4, indices(W, function(j) return math.floor(j / k) end))
end

-- apply(x, kind, severity, {seed = 0 | rng = generator}) -> corrupted copy of x (no gradient);
-- severity is 1..5, or {value = v} to give the parameter itself
function C.apply(x, kind, severity, opts)
  opts = opts or {}
  local fn = fns[kind]
  if not fn then raise(("corrupt: unknown kind '%s' (%s)"):format(tostring(kind), table.concat(C.kinds, ', '))) end
  local v = type(severity) == 'table' and severity.value or C.levels[kind][severity]
  if not v then raise(('corrupt: severity must be 1..5 or {value = v}, got %s'):format(tostring(severity))) end
  if x:dim() ~= 4 then raise('corrupt: expected images [B, C, H, W]') end
  local rng = opts.rng or lat.Generator(opts.seed or 0)
  return lat.no_grad(function() return fn(x:detach(), v, rng) end)
end

return C
