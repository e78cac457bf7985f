-- augment.lua: image augmentation as batch transforms (random crops of a zero-padded image,
-- horizontal flips), drawn from a counter-based generator keyed by (seed, epoch, step) so a
-- run is reproducible whatever else draws random numbers.
local lat = require 'lat.tensor'
local core = require 'lat.core'
local ffi = core.ffi

local A = {}

-- crop_flip{pad = 2, flip = true, seed = 0}: a transform for batches with x [B, C, H, W]
function A.crop_flip(opts)
  opts = opts or {}
  local pad, flip, seed = opts.pad or 2, opts.flip ~= false, opts.seed or 0
  return function(batch, info)
    local x = batch.x
    local B, C, H, W = x:size(1), x:size(2), x:size(3), x:size(4)
    local g = lat.Generator(seed)
    g.offset = ffi.cast('uint64_t', info and info.epoch or 0) * 0x100000000ULL + (info and info.step or 0) * 4096
    local r = lat.rand({ B, 3 }, { rng = g })
    local out = lat.zeros(B, C, H, W)
    local src, dst, rf = x.f, out.f, r.f
    for b = 0, B - 1 do
      local dy = math.floor(rf[3 * b] * (2 * pad + 1)) - pad
      local dx = math.floor(rf[3 * b + 1] * (2 * pad + 1)) - pad
      local mirror = flip and rf[3 * b + 2] < 0.5
      for c = 0, C - 1 do
        local base = (b * C + c) * H * W
        for i = 0, H - 1 do
          local si = i + dy
          if si >= 0 and si < H then
            for j = 0, W - 1 do
              local sj = (mirror and (W - 1 - j) or j) + dx
              if sj >= 0 and sj < W then dst[base + i * W + j] = src[base + si * W + sj] end
            end
          end
        end
      end
    end
    local copy = {}
    for k, v in pairs(batch) do copy[k] = v end
    copy.x = out
    return copy
  end
end

return A
