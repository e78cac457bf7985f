-- plot/init.lua: lat.plot, PNG figures: line and scatter plots through gnuplot, image grids directly.
--   lat.plot.line{ path = 'run/loss.png', xlabel = 'step', ylabel = 'loss', logy = true,
--     series = { { name = 'train', x = steps, y = losses }, { name = 'val', y = val } } }
--   lat.plot.scatter{ path = 'run/pareto.png', xlabel = 'clean accuracy', ylabel = 'robust accuracy',
--     points = { { x = 0.91, y = 0.40, label = 'LAT block 2', group = 'LAT' }, ... }, pareto = true }
--   lat.plot.images{ path = 'run/adv.png', images = x_adv, labels = names, cols = 8 }
-- In a Jupyter notebook (the lat kernel sets M.display) a plot without a path is drawn to a
-- temporary PNG and shown under the cell, returning nothing; show = true shows a plot written to
-- a path as well; lat.plot.show(path) shows a PNG file.
-- Each returns the path written, or nil and a message: gnuplot is optional (Debian: gnuplot-nox;
-- LAT_GNUPLOT or opts.gnuplot names the command), so a recipe without it still writes its CSV
-- files. Misuse (a missing path, x and y of different lengths) raises an error.
--   line    series = { {name=, x=, y=}, ... } (x defaults to 1..#y; Lua arrays or 1-D tensors;
--           nan/inf, and y <= 0 with logy, leave gaps), title, xlabel, ylabel, logx, logy,
--           points = true (markers too), key = 'bottom right' (gnuplot key position words),
--           width = 800, height = 500 (pixels); names in the key are cut at 40 characters
--   scatter points = { {x=, y=, label=, group=}, ... }: one colour and marker per group (in order
--           of first appearance), each label next to its point in its group's colour;
--           pareto = true draws the Pareto front (both axes maximised, see M.pareto_front);
--           title, xlabel, ylabel, key, width = 800, height = 600
--   images  images = tensor [N, C, H, W] or a list of [C, H, W] / [H, W] tensors (uint8, or float32
--           in [0, 1]; normalize = true maps [-m, m] to [0, 1], m the largest |value| of all
--           images, for perturbations), cols (default ceil(sqrt(N))), scale (integer pixels per
--           pixel, default max(1, 64 // max(H, W))), pad = 2 (white pixels around tiles), labels
--           (one string per image, cut to the tile's width, drawn under its tile by gnuplot;
--           without gnuplot the grid is written unlabelled, returning path, message). Image k
--           (1-based) has its top-left pixel at row pad + r * (scale * H + pad + band), column
--           pad + c * (scale * W + pad), r, c = (k - 1) // cols, (k - 1) % cols, band = 0
--           without labels.
local core = require 'lat.core'
local lat = require 'lat.tensor'
local sys = require 'lat.core.sys'
local png = require 'lat.io.png'
local raise = core.raise

local M = {}

M.INSTALL = 'install it with `apt-get install gnuplot-nox` (or .ci/setup.sh), or point LAT_GNUPLOT at it'

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- a gnuplot string literal: single quotes take no escapes ('' is a quote); no control characters
local function gp_string(s)
  return "'" .. tostring(s):gsub('[%c]', ' '):gsub("'", "''") .. "'"
end

-- s cut to at most n UTF-8 characters, the last one an ellipsis when cut (gnuplot leaves out a
-- key too wide for the plot, and long labels under tiles overlap their neighbours)
local function shorten(s, n)
  s = tostring(s)
  local chars = {}
  for ch in s:gmatch('[%z\1-\127\192-\255][\128-\191]*') do
    chars[#chars + 1] = ch
    if #chars > n then
      chars[n], chars[n + 1] = '…', nil
      return table.concat(chars)
    end
  end
  return s
end

local function gnuplot_command(opts)
  local cmd = opts and opts.gnuplot or os.getenv('LAT_GNUPLOT')
  return (cmd and cmd ~= '') and cmd or 'gnuplot'
end

-- runs gnuplot on a script file; returns true, or nil and a message
local function run(cmd, script)
  local p = io.popen(('%s %s 2>&1; echo "__lat_status=$?"'):format(shell_quote(cmd), shell_quote(script)))
  local out = p:read('*a')
  p:close()
  local status = tonumber(out:match('__lat_status=(%d+)%s*$'))
  out = out:gsub('__lat_status=%d+%s*$', ''):gsub('%s+$', '')
  if status == 0 then return true end
  if status == 126 or status == 127 then
    return nil, ("plot: gnuplot is not available (command '%s' not found); %s"):format(cmd, M.INSTALL)
  end
  return nil, ('plot: gnuplot failed (exit status %s): %s'):format(tostring(status), out)
end

-- whether gnuplot runs: true, or nil and a message saying how to get it
function M.available(opts)
  local script = os.tmpname()
  local ok, err = run(gnuplot_command(opts), script)
  os.remove(script)
  return ok, err
end

-- writes the data file and the script (the output's terminal and settings first), runs gnuplot
-- and removes both; returns the path or nil and a message
local function render(opts, width, height, data, lines)
  local path = opts.path
  local dir = path:match('^(.*)/[^/]*$')
  if dir and dir ~= '' then
    local ok, err = sys.mkdir_p(dir)
    if not ok then return nil, 'plot: ' .. err end
  end
  local base = os.tmpname()
  local datafile, scriptfile = base, base .. '.gp'
  local term = ("size %d,%d noenhanced font ',10'"):format(width, height)
  local head = {
    'set encoding utf8',
    "if (strstrt(GPVAL_TERMINALS, ' pngcairo ') > 0) { set terminal pngcairo " .. term ..
      ' } else { set terminal png ' .. term .. ' }',
    'set output ' .. gp_string(path),
  }
  local f = assert(io.open(datafile, 'w'))
  f:write(table.concat(data, '\n'), '\n')
  f:close()
  for i, l in ipairs(lines) do
    if type(l) == 'function' then lines[i] = l(gp_string(datafile)) end
  end
  f = assert(io.open(scriptfile, 'w'))
  f:write(table.concat(head, '\n'), '\n', table.concat(lines, '\n'), '\n', 'set output\n')
  f:close()
  local ok, err = run(gnuplot_command(opts), scriptfile)
  os.remove(datafile)
  os.remove(scriptfile)
  if not ok then return nil, err end
  return path
end

-- ---------------------------------------------------------------- shared settings

local function number_list(v, what)
  if lat.is_tensor(v) then
    if v:dim() ~= 1 then raise(('%s must be 1-D, got %d dimensions'):format(what, v:dim())) end
    v = v:tolist()
  end
  if type(v) ~= 'table' then raise(('%s must be a list of numbers or a 1-D tensor, got %s'):format(what, type(v))) end
  for i = 1, #v do
    if type(v[i]) ~= 'number' then raise(('%s[%d] is a %s, not a number'):format(what, i, type(v[i]))) end
  end
  return v
end

local function finite(v) return v == v and v ~= math.huge and v ~= -math.huge end
local function num(v, log) return (finite(v) and not (log and v <= 0)) and ('%.17g'):format(v) or 'NaN' end

local function common(opts, what, width, height)
  if type(opts) ~= 'table' then raise(what .. ': takes a table of options') end
  if type(opts.path) ~= 'string' or opts.path == '' then raise(what .. ': path must be a non-empty string') end
  width, height = opts.width or width, opts.height or height
  if type(width) ~= 'number' or type(height) ~= 'number' or width < 16 or height < 16 then
    raise(what .. ': width and height must be numbers of pixels (at least 16)')
  end
  local key = opts.key or 'top right'
  if type(key) ~= 'string' or not key:match('^[%a ]+$') then
    raise(what .. ": key must be gnuplot position words such as 'bottom right'")
  end
  local lines = { 'set grid lc rgb "#d0d0d0"', 'set key ' .. key .. ' opaque noautotitle' }
  for _, k in ipairs{ 'title', 'xlabel', 'ylabel' } do
    if opts[k] ~= nil then lines[#lines + 1] = ('set %s %s'):format(k, gp_string(opts[k])) end
  end
  if opts.logx then lines[#lines + 1] = 'set logscale x' end
  if opts.logy then lines[#lines + 1] = 'set logscale y' end
  return math.floor(width), math.floor(height), lines
end

-- the gnuplot 'plot' command joining each series' clause (functions of the data file's name)
local function plot_command(plots)
  return function(file)
    local p = {}
    for i, f in ipairs(plots) do p[i] = f(file) end
    return 'plot ' .. table.concat(p, ', \\\n  ')
  end
end

-- ---------------------------------------------------------------- line plots

function M.line(opts)
  local width, height, lines = common(opts, 'plot.line', 800, 500)
  if type(opts.series) ~= 'table' or #opts.series == 0 then raise('plot.line: series must be a non-empty list') end
  local data, plots = {}, {}
  local style = opts.points and 'linespoints pt 7 ps 0.6' or 'lines'
  for i, s in ipairs(opts.series) do
    local what = ('plot.line: series[%d]'):format(i)
    local y = number_list(s.y, what .. '.y')
    local x = s.x and number_list(s.x, what .. '.x')
    if #y == 0 then raise(what .. ' has no points') end
    if x and #x ~= #y then raise(('%s: x has %d values, y has %d'):format(what, #x, #y)) end
    if i > 1 then data[#data + 1] = '\n' end -- two blank lines start the next data block
    for k = 1, #y do
      data[#data + 1] = num(x and x[k] or k, opts.logx) .. ' ' .. num(y[k], opts.logy)
    end
    plots[i] = function(file)
      return ('%s index %d using 1:2 with %s lw 2 title %s'):format(file, i - 1, style, gp_string(shorten(s.name or '', 40)))
    end
  end
  lines[#lines + 1] = plot_command(plots)
  return render(opts, width, height, data, lines)
end

-- ---------------------------------------------------------------- scatter plots

-- the points no other point beats on both axes (maximising x and y), as a list of indices into
-- points in order of increasing x; points with nan or inf coordinates are left out
function M.pareto_front(points)
  local order = {}
  for i, p in ipairs(points) do
    if finite(p.x) and finite(p.y) then order[#order + 1] = i end
  end
  table.sort(order, function(a, b)
    local pa, pb = points[a], points[b]
    if pa.x ~= pb.x then return pa.x > pb.x end
    if pa.y ~= pb.y then return pa.y > pb.y end
    return a < b
  end)
  local front, best = {}, -math.huge
  for _, i in ipairs(order) do
    if points[i].y > best then
      table.insert(front, 1, i)
      best = points[i].y
    end
  end
  return front
end

local MARKERS = { 7, 5, 9, 13, 11, 15, 1, 2, 3, 4, 6, 8, 10, 12, 14 } -- filled shapes first

function M.scatter(opts)
  local width, height, lines = common(opts, 'plot.scatter', 800, 600)
  local points = opts.points
  if type(points) ~= 'table' or #points == 0 then raise('plot.scatter: points must be a non-empty list') end
  local groups, members = {}, {}
  for i, p in ipairs(points) do
    if type(p) ~= 'table' or type(p.x) ~= 'number' or type(p.y) ~= 'number' then
      raise(('plot.scatter: points[%d] must be a table with numbers x and y'):format(i))
    end
    local g = p.group == nil and '' or tostring(p.group)
    if not members[g] then groups[#groups + 1] = g; members[g] = {} end
    table.insert(members[g], i)
  end
  local data, plots = {}, {}
  lines[#lines + 1] = 'set offsets graph 0.05, graph 0.2, graph 0.08, graph 0.08' -- room for labels at the edges
  lines[#lines + 1] = 'set autoscale fix'                           -- and no more than that
  for gi, g in ipairs(groups) do
    if gi > 1 then data[#data + 1] = '\n' end
    for _, i in ipairs(members[g]) do
      local p = points[i]
      data[#data + 1] = num(p.x, opts.logx) .. ' ' .. num(p.y, opts.logy)
      if p.label ~= nil and finite(p.x) and finite(p.y) then
        lines[#lines + 1] = ('set label %s at %.17g, %.17g offset char 0.8, 0.4 tc lt %d font ",9"')
          :format(gp_string(p.label), p.x, p.y, gi)
      end
    end
    plots[#plots + 1] = function(file)
      return ('%s index %d using 1:2 with points lt %d pt %d ps 1.5 title %s')
        :format(file, gi - 1, gi, MARKERS[(gi - 1) % #MARKERS + 1], gp_string(shorten(g, 40)))
    end
  end
  local front = opts.pareto and M.pareto_front(points) or {}
  if #front > 0 then
    data[#data + 1] = '\n'
    for _, i in ipairs(front) do data[#data + 1] = num(points[i].x, opts.logx) .. ' ' .. num(points[i].y, opts.logy) end
    local block = #groups
    plots[#plots + 1] = function(file)
      return ("%s index %d using 1:2 with lines dt 2 lw 1.5 lc rgb '#606060' title 'Pareto front'")
        :format(file, block)
    end
  end
  lines[#lines + 1] = plot_command(plots)
  return render(opts, width, height, data, lines)
end

-- ---------------------------------------------------------------- image grids

-- the images as a list of {t = tensor, c, h, w}
local function image_list(images)
  local list = {}
  if lat.is_tensor(images) then
    if images:dim() ~= 4 then
      raise(('plot.images: a tensor of images must be [N, C, H, W], got %d dimensions (put one image in a list)')
        :format(images:dim()))
    end
    for k = 1, images:size(1) do list[k] = images:narrow(1, k, 1) end
  elseif type(images) == 'table' then
    list = images
  else
    raise('plot.images: images must be a [N, C, H, W] tensor or a list of [C, H, W] tensors')
  end
  if #list == 0 then raise('plot.images: no images') end
  local out = {}
  for k, t in ipairs(list) do
    if not lat.is_tensor(t) then raise(('plot.images: images[%d] is not a tensor'):format(k)) end
    local s = t:size()
    if #s == 4 and s[1] == 1 then table.remove(s, 1) end
    if #s == 2 then table.insert(s, 1, 1) end
    if #s ~= 3 or (s[1] ~= 1 and s[1] ~= 3) then
      raise(('plot.images: images[%d] has shape [%s]; expected [1 or 3, H, W]'):format(k, table.concat(t:size(), ', ')))
    end
    if t.dtype ~= 'float32' and t.dtype ~= 'uint8' then
      raise(('plot.images: images[%d] is %s; expected float32 or uint8'):format(k, t.dtype))
    end
    out[k] = { t = t, c = s[1], h = s[2], w = s[3] }
  end
  return out
end

function M.images(opts)
  if type(opts) ~= 'table' then raise('plot.images: takes a table of options') end
  if type(opts.path) ~= 'string' or opts.path == '' then raise('plot.images: path must be a non-empty string') end
  local ims = image_list(opts.images)
  local n, C, h, w = #ims, 1, 0, 0
  for _, im in ipairs(ims) do
    C, h, w = math.max(C, im.c), math.max(h, im.h), math.max(w, im.w)
  end
  local m = 0 -- the largest |value| of the float images, for normalize
  if opts.normalize then
    for _, im in ipairs(ims) do
      if im.t.dtype == 'float32' then
        local p = im.t.f
        for i = 0, im.t:numel() - 1 do m = math.max(m, math.abs(p[i])) end
      end
    end
  end
  local cols = opts.cols or math.ceil(math.sqrt(n))
  local scale = opts.scale or math.max(1, math.floor(64 / math.max(h, w)))
  local pad = opts.pad or 2
  if cols < 1 or scale < 1 or pad < 0 or cols % 1 ~= 0 or scale % 1 ~= 0 or pad % 1 ~= 0 then
    raise('plot.images: cols and scale must be positive integers, pad a non-negative integer')
  end
  local labels, note = opts.labels, nil
  if labels ~= nil and type(labels) ~= 'table' then raise('plot.images: labels must be a list of strings') end
  if labels and next(labels) ~= nil then
    local ok, err = M.available(opts)
    if not ok then labels, note = nil, err .. ' (the grid was written without labels)' end
  else
    labels = nil
  end
  local band = labels and 16 or 0
  local rows = math.ceil(n / cols)
  local th, tw = h * scale + pad + band, w * scale + pad
  local H, W = pad + rows * th, pad + math.min(cols, n) * tw
  local grid = lat.full({ C, H, W }, 255, 'uint8')

  if labels then -- gnuplot draws the labels on a white canvas of the grid's size; we keep the bands
    local script = {
      'set lmargin at screen 0', 'set rmargin at screen 1', 'set tmargin at screen 1', 'set bmargin at screen 0',
      'unset border', 'unset tics', 'unset key', ('set xrange [0:%d]'):format(W), ('set yrange [0:%d]'):format(H),
    }
    for k = 1, n do
      if labels[k] ~= nil then
        local r, c = math.floor((k - 1) / cols), (k - 1) % cols
        local x = pad + c * tw + w * scale / 2
        local y = pad + r * th + h * scale + band / 2 + 1
        local fit = math.max(3, math.floor((w * scale + pad) / 6)) -- characters of about 6 pixels
        script[#script + 1] = ('set label %s at %g, %g center front font ",9"')
          :format(gp_string(shorten(labels[k], fit)), x, H - y)
      end
    end
    script[#script + 1] = 'plot -1 notitle'
    local base = os.tmpname()
    local tmp = base .. '.png'
    local ok, err = render({ path = tmp, gnuplot = opts.gnuplot }, W, H, {}, script)
    local canvas = ok and png.read_png(tmp)
    os.remove(tmp)
    os.remove(base)
    if not ok then return nil, err end
    local cc = canvas:size(1)
    for c = 0, C - 1 do
      local src = canvas.u + math.min(c, cc - 1) * H * W
      local dst = grid.u + c * H * W
      for r = 0, rows - 1 do
        local y0 = pad + r * th + h * scale
        for y = y0, y0 + band - 1 do
          for x = 0, W - 1 do dst[y * W + x] = src[y * W + x] end
        end
      end
    end
  end

  for k, im in ipairs(ims) do
    local r, c = math.floor((k - 1) / cols), (k - 1) % cols
    local top = pad + r * th + math.floor((h - im.h) / 2) * scale
    local left = pad + c * tw + math.floor((w - im.w) / 2) * scale
    local t, ih, iw = im.t, im.h, im.w
    local isf = t.dtype == 'float32'
    local fp, up = t.f, t.u
    for ch = 0, C - 1 do
      local sc = math.min(ch, im.c - 1) -- a gray image fills every channel of a colour grid
      local dst = grid.u + ch * H * W
      for y = 0, ih - 1 do
        for x = 0, iw - 1 do
          local i = (sc * ih + y) * iw + x
          local v
          if isf then
            v = fp[i]
            if opts.normalize then v = m > 0 and v / (2 * m) + 0.5 or 0.5 end
            v = math.floor(math.min(math.max(v, 0), 1) * 255 + 0.5)
          else
            v = up[i]
          end
          for dy = 0, scale - 1 do
            local row = dst + (top + y * scale + dy) * W + left + x * scale
            for dx = 0, scale - 1 do row[dx] = v end
          end
        end
      end
    end
  end
  local dir = opts.path:match('^(.*)/[^/]*$')
  if dir and dir ~= '' then
    local ok, err = sys.mkdir_p(dir)
    if not ok then return nil, 'plot.images: ' .. err end
  end
  png.write_png(opts.path, grid)
  return opts.path, note
end

-- ---------------------------------------------------------------- notebooks

-- M.display(path, temp): set by the notebook kernel; shows the PNG at path (temp: a file the
-- kernel may remove once it has read it)
M.display = nil

-- a plotting function that, in a notebook, draws plots without a path to a temporary file and
-- shows it, and shows plots with show = true
local function shown(draw)
  return function(opts)
    if type(opts) ~= 'table' or not M.display or (opts.path ~= nil and not opts.show) then return draw(opts) end
    local temp = opts.path == nil
    if temp then
      local copy = {}
      for k, v in pairs(opts) do copy[k] = v end
      local base = os.tmpname()
      os.remove(base)
      copy.path = base .. '.png'
      opts = copy
    end
    local path, note = draw(opts)
    if path then M.display(path, temp) end
    if not temp then return path, note end
    if note then return note end -- why it failed, or what is missing (labels without gnuplot)
  end
end
M.line, M.scatter, M.images = shown(M.line), shown(M.scatter), shown(M.images)

-- show(path): shows a PNG file under the notebook cell; outside a notebook returns the path
function M.show(path)
  if type(path) ~= 'string' then raise('plot.show: path must be a string') end
  local f = io.open(path, 'rb')
  if not f then raise(("plot.show: cannot open '%s'"):format(path)) end
  f:close()
  if M.display then M.display(path, false) return end
  return path
end

return M
