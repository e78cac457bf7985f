-- lat.plot: line and scatter PNGs through gnuplot, image grids pixel by pixel, the no-gnuplot path.
local H = require 'harness'
local lat = require 'lat'
local plot = lat.plot

local LAT = arg[-1]
local tmp = (os.getenv('LAT_TEST_TMP') or '/tmp') .. '/test_plot'
os.execute('rm -rf ' .. tmp)
assert(require('lat.core.sys').mkdir_p(tmp))

local has_gnuplot = plot.available()
if not has_gnuplot then print('note: gnuplot is not installed; only the paths without it are tested') end
local NASTY = [[it's "quoted" — ε = 8/255, ünïcode 学习 `touch PWNED` @x '; system('touch PWNED') #]]

-- the pixel variance of a uint8 image
local function variance(img)
  local n, s, s2 = img:numel(), 0, 0
  for i = 0, n - 1 do
    local v = img.u[i]
    s, s2 = s + v, s2 + v * v
  end
  return s2 / n - (s / n) ^ 2
end

local function check_png(path, width, height)
  local img = lat.io.read_png(path)
  H.assert(img:size(2) == height and img:size(3) == width,
    ('%s is %dx%d, expected %dx%d'):format(path, img:size(3), img:size(2), width, height))
  H.assert(variance(img) > 0, path .. ' is blank')
  return img
end

local exists = H.exists

if has_gnuplot then
  H.test('line plot: size, not blank, labels with quotes and unicode', function()
    local x, y1, y2 = {}, {}, {}
    for i = 1, 50 do x[i], y1[i], y2[i] = i * 10, math.exp(-i / 10), 0.5 * math.exp(-i / 20) end
    y2[20] = 0 / 0 -- a gap
    local path = tmp .. '/sub/line.png' -- the folder is made
    local out, err = plot.line{ path = path, title = NASTY, xlabel = 'step «x»', ylabel = "it's",
      logy = true, points = true, key = 'bottom left', width = 640, height = 400,
      series = { { name = NASTY, x = x, y = y1 }, { name = 'val', y = lat.tensor(y2) } } }
    H.assert(out == path, tostring(err))
    check_png(path, 640, 400)
    H.assert(not exists('PWNED') and not exists(tmp .. '/PWNED'), 'a label ran a command')
  end)

  H.test('scatter plot with groups, labels and the Pareto front', function()
    local pts = {}
    for i = 1, 12 do
      pts[i] = { x = 0.8 + 0.01 * i, y = 0.6 - 0.04 * i + 0.02 * (i % 3), group = ({ 'AT', 'LAT', "it's" })[i % 3 + 1],
        label = i == 5 and NASTY or ('defence %d'):format(i) }
    end
    local path = tmp .. '/scatter.png'
    local out, err = plot.scatter{ path = path, title = 'clean vs robust', xlabel = 'clean accuracy',
      ylabel = 'robust accuracy', points = pts, pareto = true, width = 700, height = 520 }
    H.assert(out == path, tostring(err))
    check_png(path, 700, 520)
    H.assert(not exists('PWNED') and not exists(tmp .. '/PWNED'), 'a label ran a command')
  end)

  H.test('gnuplot errors come back as nil and a message', function()
    local out, err = plot.line{ path = tmp .. '/nan.png', series = { { y = { 0 / 0, 0 / 0 } } } }
    H.assert(out == nil and err:find('gnuplot failed', 1, true), tostring(err))
  end)
end

H.test('pareto_front maximises both axes', function()
  local pts = { { x = 1, y = 1 }, { x = 2, y = 0.5 }, { x = 0.5, y = 2 }, { x = 0.9, y = 0.9 },
    { x = 2, y = 0.4 }, { x = 0 / 0, y = 9 }, { x = 1.5, y = 0.7 } }
  H.assert(table.concat(plot.pareto_front(pts), ',') == '3,1,7,2', table.concat(plot.pareto_front(pts), ','))
end)

H.test('image grid: image k at its tile, padding white', function()
  local n, C, h, w = 5, 3, 4, 3
  local x = lat.zeros({ n, C, h, w }, 'uint8')
  for k = 0, n - 1 do
    for c = 0, C - 1 do
      for i = 0, h * w - 1 do x.u[(k * C + c) * h * w + i] = 10 * (k + 1) + c end
    end
    x.u[k * C * h * w + (h - 1) * w + (w - 1)] = 200 + k -- the bottom-right pixel of channel 0
  end
  local path = tmp .. '/grid.png'
  H.assert(plot.images{ path = path, images = x, cols = 2, scale = 2, pad = 1 } == path)
  local g = lat.io.read_png(path)
  local rows, cols, scale, pad = 3, 2, 2, 1
  local GH, GW = pad + rows * (h * scale + pad), pad + cols * (w * scale + pad)
  H.assert(g:size(1) == 3 and g:size(2) == GH and g:size(3) == GW, table.concat(g:size(), 'x'))
  local function px(c, y, xx) return g.u[(c * GH + y) * GW + xx] end
  for k = 0, n - 1 do
    local top, left = pad + math.floor(k / cols) * (h * scale + pad), pad + (k % cols) * (w * scale + pad)
    for c = 0, C - 1 do
      H.assert(px(c, top, left) == 10 * (k + 1) + c, ('tile %d channel %d: %d'):format(k + 1, c, px(c, top, left)))
      H.assert(px(c, top - 1, left) == 255 and px(c, top, left - 1) == 255, 'padding is white')
    end
    for dy = 0, 1 do
      for dx = 0, 1 do -- the marked pixel covers a 2x2 block at the tile's bottom-right
        local v = px(0, top + h * scale - 1 - dy, left + w * scale - 1 - dx)
        H.assert(v == 200 + k, ('tile %d: marked pixel is %d'):format(k + 1, v))
      end
    end
  end
  H.assert(px(0, GH - 2, GW - 2) == 255, 'the empty sixth tile is white')
end)

H.test('image grid: float, normalize, a list of gray and colour images', function()
  local path = tmp .. '/pert.png'
  local a = lat.tensor{ { { -0.5, 0 }, { 0.25, 0.5 } } } -- [1, 2, 2] gray
  local b = lat.full({ 3, 2, 2 }, 0.1)
  H.assert(plot.images{ path = path, images = { a, b }, normalize = true, scale = 1, pad = 0 } == path)
  local g = lat.io.read_png(path)
  H.assert(g:size(1) == 3 and g:size(2) == 2 and g:size(3) == 4, table.concat(g:size(), 'x'))
  local W = 4
  local expect = { 0, 128, 191, 255 } -- [-m, m] -> [0, 1], m = 0.5
  for c = 0, 2 do
    for i = 0, 3 do
      local y, x = math.floor(i / 2), i % 2
      H.assert(g.u[(c * 2 + y) * W + x] == expect[i + 1], ('a[%d] channel %d: %d'):format(i, c, g.u[(c * 2 + y) * W + x]))
    end
    H.assert(g.u[c * 8 + 2] == 153, 'b: 0.1 -> 0.6 -> 153, got ' .. g.u[c * 8 + 2])
  end
  -- without normalize, floats are clamped to [0, 1]
  H.assert(plot.images{ path = path, images = { a }, scale = 1, pad = 0 } == path)
  g = lat.io.read_png(path)
  H.assert(g:size(1) == 1 and g.u[0] == 0 and g.u[2] == 64 and g.u[3] == 128, 'clamped floats')
end)

H.test('image grid: misuse raises', function()
  H.raises(function() plot.images{ path = tmp .. '/x.png', images = lat.zeros(2, 3, 3) } end, '[N, C, H, W]')
  H.raises(function() plot.images{ path = tmp .. '/x.png', images = { lat.zeros(2, 3, 3) } } end, 'images[1]')
  H.raises(function() plot.images{ images = lat.zeros(1, 1, 3, 3) } end, 'path')
  H.raises(function() plot.line{ path = tmp .. '/x.png', series = { { x = { 1 }, y = { 1, 2 } } } } end, 'x has 1 values')
  H.raises(function() plot.scatter{ path = tmp .. '/x.png', points = { { x = 1 } } } end, 'points[1]')
  H.raises(function() plot.line{ path = tmp .. '/x.png', key = "top'; system('ls')", series = { { y = { 1 } } } } end, 'key')
end)

if has_gnuplot then
  H.test('image grid with labels (gnuplot): tiles exact, labels drawn in the bands', function()
    local x = lat.rand({ 3, 1, 8, 8 })
    local path = tmp .. '/labelled.png'
    local out, note = plot.images{ path = path, images = x, labels = { 'cat', NASTY, 'ε=8' }, cols = 3, scale = 4, pad = 2 }
    H.assert(out == path and note == nil, tostring(note))
    local g = lat.io.read_png(path)
    local band, th, tw = 16, 8 * 4 + 2 + 16, 8 * 4 + 2
    H.assert(g:size(1) == 1 and g:size(2) == 2 + th and g:size(3) == 2 + 3 * tw, table.concat(g:size(), 'x'))
    local W = g:size(3)
    for k = 0, 2 do -- the top-left pixel of each tile is the image's
      local v = math.floor(math.min(math.max(x.f[k * 64], 0), 1) * 255 + 0.5)
      H.assert(g.u[2 * W + 2 + k * tw] == v, ('tile %d'):format(k + 1))
    end
    local dark = 0 -- text pixels in the band under the tiles
    for y = 2 + 32, 2 + 32 + band - 1 do
      for xx = 0, W - 1 do if g.u[y * W + xx] < 128 then dark = dark + 1 end end
    end
    H.assert(dark > 20, 'no label text in the band: ' .. dark)
  end)
end

H.test('in a notebook: plots without a path are shown from a temporary file, show = true and show(path)', function()
  local shown = {}
  plot.display = function(path, temp)
    local f = io.open(path, 'rb')
    shown[#shown + 1] = { path = path, temp = temp, png = f and f:read(8) == '\137PNG\r\n\26\n' }
    if f then f:close() end
  end
  local ok, err = pcall(function()
    local images = lat.rand(4, 1, 6, 6)
    H.assert(select('#', plot.images{ images = images }) == 0, 'a shown plot returns nothing')
    local path = tmp .. '/shown.png'
    H.assert(plot.images{ path = path, images = images, show = true } == path)
    H.assert(plot.images{ path = tmp .. '/not_shown.png', images = images } == tmp .. '/not_shown.png')
    H.assert(plot.show(path) == nil)
    H.raises(function() plot.show(tmp .. '/missing.png') end, "plot.show: cannot open")
  end)
  plot.display = nil
  H.assert(ok, err)
  H.assert(#shown == 3, 'three displays, got ' .. #shown)
  H.assert(shown[1].temp and shown[1].png and shown[1].path:match('%.png$'), lat.repr(shown[1]))
  H.assert(not shown[2].temp and shown[2].path == tmp .. '/shown.png' and shown[2].png, lat.repr(shown[2]))
  H.assert(not shown[3].temp and shown[3].path == tmp .. '/shown.png', lat.repr(shown[3]))
  os.remove(shown[1].path) -- the kernel removes temporary files once read
  -- outside a notebook a plot still needs its path, and show returns the path
  H.raises(function() plot.images{ images = lat.rand(1, 1, 2, 2) } end, 'path must be a non-empty string')
  H.assert(plot.show(tmp .. '/shown.png') == tmp .. '/shown.png')
end)

H.test('without gnuplot: nil and how to install it; grids still written', function()
  local opts = { gnuplot = tmp .. '/no-such-gnuplot' }
  local ok, err = plot.available(opts)
  H.assert(ok == nil and err:find('apt-get install gnuplot-nox', 1, true), tostring(err))
  local out
  out, err = plot.line{ path = tmp .. '/none.png', gnuplot = opts.gnuplot, series = { { y = { 1, 2 } } } }
  H.assert(out == nil and err:find('apt-get install gnuplot-nox', 1, true), tostring(err))
  out, err = plot.scatter{ path = tmp .. '/none.png', gnuplot = opts.gnuplot, points = { { x = 1, y = 2 } } }
  H.assert(out == nil and err:find('apt-get install gnuplot-nox', 1, true), tostring(err))
  H.assert(not exists(tmp .. '/none.png'), 'no file without gnuplot')
  local path = tmp .. '/unlabelled.png'
  local note
  out, note = plot.images{ path = path, gnuplot = opts.gnuplot, images = lat.rand({ 2, 1, 4, 4 }), labels = { 'a', 'b' }, scale = 1 }
  H.assert(out == path and note:find('without labels', 1, true), tostring(note))
  local g = lat.io.read_png(path)
  H.assert(g:size(2) == 8 and g:size(3) == 14, 'no label bands: ' .. table.concat(g:size(), 'x'))
  -- LAT_GNUPLOT names the command
  local p = io.popen(('LAT_GNUPLOT=%s %s -e "print(lat.plot.line{path = \'%s/env.png\', series = {{y = {1, 2}}}})" 2>&1')
    :format(opts.gnuplot, LAT, tmp))
  local s = p:read('*a')
  p:close()
  H.assert(s:find('^nil\tplot: gnuplot is not available') and s:find('gnuplot-nox', 1, true), s)
end)

H.finish()
