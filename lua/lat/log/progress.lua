-- log/progress.lua: a progress bar (label, done/total, rate, ETA, live fields such as the running
-- loss) on stderr; redrawn in place on a terminal, otherwise a line at every tenth of the total
-- or every `every` seconds, so that CI logs stay small. In a notebook (the lat kernel sets
-- progress.display) the bar is a display under the cell, redrawn in place twice a second.
--   local bar = lat.log.progress{ label = 'epoch 1', total = #batches }
--   for i = 1, n do ...; bar:update(i, { loss = running }) end
--   bar:finish()
local sys = require 'lat.core.sys'

local Bar = {}
Bar.__index = Bar

local function hms(s)
  s = math.floor(s + 0.5)
  local h, m = math.floor(s / 3600), math.floor(s / 60) % 60
  if h > 0 then return ('%d:%02d:%02d'):format(h, m, s % 60) end
  return ('%d:%02d'):format(m, s % 60)
end

local function rate_str(r)
  if r >= 1e6 then return ('%.2fM'):format(r / 1e6) end
  if r >= 1e4 then return ('%.1fk'):format(r / 1e3) end
  if r >= 100 then return ('%.0f'):format(r) end
  if r >= 10 then return ('%.1f'):format(r) end
  return ('%.2f'):format(r)
end

local function value_str(v)
  if type(v) == 'cdata' and v.item then v = v:item() end
  if type(v) ~= 'number' then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 1e15 then return ('%d'):format(v) end
  return ('%.4g'):format(v)
end

-- progress{label=, total= (nil: unknown), unit='it', stream=io.stderr, mode='tty'|'plain'|'off'|
-- 'display' (default: $LAT_PROGRESS, else 'display' in a notebook, 'tty' when the stream is stderr
-- on a terminal, else 'plain'),
-- every=30, min_gap=1}. Off a terminal a line is written at each tenth of the total and every
-- `every` seconds, but never sooner than min_gap seconds after the last: a fast bar writes only
-- its final line.
local M = {}
local bars = 0 -- bars made so far: each displayed one has its own id

local function progress(opts)
  opts = opts or {}
  local stream = opts.stream or io.stderr
  local mode = opts.mode or os.getenv('LAT_PROGRESS')
  if mode == 'display' and not M.display then mode = nil end
  if mode ~= 'tty' and mode ~= 'plain' and mode ~= 'off' and mode ~= 'display' then
    if M.display and stream == io.stderr then mode = 'display'
    else mode = (stream == io.stderr and sys.isatty(2)) and 'tty' or 'plain' end
  end
  bars = bars + 1
  local now = sys.now()
  return setmetatable({
    label = opts.label or '', total = opts.total, unit = opts.unit or 'it', stream = stream,
    mode = mode, every = opts.every or 30, min_gap = opts.min_gap or 1, interval = mode == 'display' and 0.5 or 0.1,
    id = 'lat-progress-' .. bars,
    done = 0, start = now, last = now, tenth = 0, fields = {}, order = {}, lines = 0,
  }, Bar)
end

function Bar:set(fields)
  for k, v in pairs(fields) do
    if self.fields[k] == nil then
      self.order[#self.order + 1] = k
      table.sort(self.order)
    end
    self.fields[k] = v
  end
end

function Bar:line(t, final)
  local parts = { self.label }
  local done, total = self.done, self.total
  local elapsed = t - self.start
  local rate = elapsed > 0 and done / elapsed or 0
  if total then
    local frac = total > 0 and math.min(1, done / total) or 1
    if self.mode == 'tty' or self.mode == 'display' then
      local w = math.floor(frac * 20 + 0.5)
      parts[#parts + 1] = '[' .. ('#'):rep(w) .. ('-'):rep(20 - w) .. ']'
    end
    parts[#parts + 1] = ('%d/%d %3d%%'):format(done, total, math.floor(frac * 100))
  else
    parts[#parts + 1] = ('%d'):format(done)
  end
  parts[#parts + 1] = rate_str(rate) .. ' ' .. self.unit .. '/s'
  if final then parts[#parts + 1] = 'in ' .. hms(elapsed)
  elseif total and rate > 0 then parts[#parts + 1] = 'ETA ' .. hms(math.max(0, total - done) / rate) end
  for _, k in ipairs(self.order) do parts[#parts + 1] = k .. '=' .. value_str(self.fields[k]) end
  return table.concat(parts, '  ')
end

function Bar:emit(t, final)
  self.last = t
  self.lines = self.lines + 1
  if self.mode == 'display' then
    M.display(self.id, self:line(t, final))
    return
  elseif self.mode == 'tty' then
    self.stream:write('\r', self:line(t, final), '\27[K', final and '\n' or '')
  else
    self.stream:write(self:line(t, final), '\n')
  end
  self.stream:flush()
end

-- update(done[, fields]): done items so far (default: one more), fields shown as key=value
function Bar:update(done, fields)
  self.done = done or self.done + 1
  if fields then self:set(fields) end
  if self.mode == 'off' then return end
  local t = sys.now()
  if self.mode == 'tty' or self.mode == 'display' then
    if t - self.last >= self.interval or (self.mode == 'display' and self.lines == 0) then self:emit(t, false) end
    return
  end
  local total = self.total
  local tenth = total and total > 0 and math.floor(10 * self.done / total) or 0
  if ((tenth > self.tenth and tenth < 10) or t - self.last >= self.every) and t - self.last >= self.min_gap then
    self.tenth = math.max(self.tenth, tenth)
    self:emit(t, false)
  end
end

-- the last line, with the elapsed time; returns the elapsed seconds
function Bar:finish(fields)
  if fields then self:set(fields) end
  local t = sys.now()
  if self.mode ~= 'off' then self:emit(t, true) end
  return t - self.start
end

-- M.display(id, text): set by the notebook kernel; shows text under the cell in place of what
-- was shown before with the same id
M.display = nil

return setmetatable(M, { __call = function(_, opts) return progress(opts) end })
