-- io/png.lua: PNG files to and from tensors, through libpng (core/io_png.c); reading is held to
-- lat.set_read_limit and treats the file as hostile input.
local core = require 'lat.core'
require 'lat.tensor' -- read_png returns tensors
local need_tensor = require('lat.tensor.private').need_tensor
local C, wrap, check = core.C, core.wrap, core.check

local M = {}

-- PNG file to a uint8 [C, H, W] tensor (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA)
function M.read_png(path) return wrap(C.lat_read_png(path)) end
-- uint8 or float32 (in [0, 1], clamped) [C, H, W] or [H, W] tensor to a PNG file
function M.write_png(path, t)
  check(C.lat_write_png(path, need_tensor(t, 'write_png: image')))
end

return M
