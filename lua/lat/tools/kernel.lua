-- tools/kernel.lua: the Lua side of lat's Jupyter kernel (notebooks/kernel/lat_kernel.py starts
-- `lat -e "require('lat.tools.kernel').serve()"` and talks to it). The same engine as the lat
-- command's REPL: cells compile and show their values through lat.tools.cell and run under
-- cli.run, so Ctrl-C (the notebook's interrupt, a SIGINT) stops a cell with an error and the
-- session goes on.
-- Protocol: requests arrive on stdin, one JSON object a line:
--   {op='execute', code=, n=}   {op='complete', word=}   {op='inspect', word=}
-- Replies go to the file descriptor $LAT_KERNEL_FD, one JSON object a line, first
-- {type='ready', version=}, then for each request some of these and {type='done'} last:
--   {type='display', png=path, temp=bool}   a PNG to show (temp: the reader removes it)
--   {type='progress', id=, text=}           a progress bar's line, shown in place of the last
--                                           one with that id
--   (the reader answers both with a line on stdin once shown)
--   {type='result', text=}                  the values of the cell's last expression
--   {type='error', ename=, evalue=, traceback={lines}}
--   {type='matches', matches={...}}   {type='doc', text=} (or text=nil: nothing known)
-- What cells print goes to the process's stdout and stderr, flushed before every reply so the
-- reader can keep output and replies in order.
local ffi = require 'ffi'
local cjson = require('cjson').new()
local cli = require 'lat.cli'
local lat = require 'lat'
local cell = require 'lat.tools.cell'
local complete = require 'lat.tools.complete'

ffi.cdef [[ void *lat_kernel_signal(int sig, void *handler) __asm__("signal"); ]]
local SIGINT, SIG_IGN = 2, ffi.cast('void *', 1)

local M = {}

local replies, requests = nil, io.stdin
local env, values = require('lat.tools.locals').session() -- the notebook's locals, cell to cell

local function send(msg)
  io.stdout:flush()
  io.stderr:flush()
  replies:write(cjson.encode(msg), '\n')
  replies:flush()
end

-- the traceback's frames down to the cell's own (the kernel's frames below it are noise)
local function error_reply(msg, name)
  msg = tostring(msg)
  local evalue, trace = msg:match('^(.-)\nstack traceback:\n(.*)$')
  evalue = evalue or msg
  local frames, last = {}, 0
  for line in (trace or ''):gmatch('[^\n]+') do
    frames[#frames + 1] = '  ' .. line:gsub('^%s+', '')
    if line:find(name, 1, true) then last = #frames end
  end
  local tb = { evalue }
  if last > 0 then
    tb[2] = 'stack traceback:'
    for i = 1, last do tb[#tb + 1] = frames[i] end
  end
  local interrupted = evalue:match('interrupted$') ~= nil
  return { type = 'error', ename = interrupted and 'Interrupted' or 'LuaError', evalue = evalue, traceback = tb }
end

local function execute(req)
  local name = ('cell[%d]'):format(req.n or 0)
  local f, err = cell.compile(req.code, '=' .. name, env)
  if not f then
    send(error_reply(err, name))
    return
  end
  local function report(ok, ...)
    if not ok then
      send(error_reply((...), name))
    elseif select('#', ...) > 0 then
      send{ type = 'result', text = cell.show(select('#', ...), ...) }
    end
  end
  report(cli.run(f))
end

local function inspect(word)
  local v = complete.resolve(word)
  if v == nil then return nil end
  return require('lat.tools.help').text(v, true)
end

-- serve(): answers requests until stdin closes
function M.serve()
  local fd = tonumber(os.getenv('LAT_KERNEL_FD'))
  if not fd then error('lat.tools.kernel: LAT_KERNEL_FD is not set (the kernel is started by notebooks/kernel/lat_kernel.py)') end
  replies = assert(io.open('/dev/fd/' .. fd, 'w'))
  -- Between cells a stray interrupt must not end the session; cli.run arms it during a cell.
  ffi.C.lat_kernel_signal(SIGINT, SIG_IGN)
  io.stdout:setvbuf('line')
  io.input('/dev/null') -- io.read() in a cell must not eat the requests
  _G.lat = lat
  _G.help = require('lat.tools.help').help
  complete.scope = values
  -- the reader acknowledges each display, so that what the cell prints next comes after it
  lat.plot.display = function(path, temp)
    send{ type = 'display', png = path, temp = temp or false }
    requests:read('*l')
  end
  lat.log.progress.display = function(id, text)
    send{ type = 'progress', id = id, text = text }
    requests:read('*l')
  end
  send{ type = 'ready', version = lat.version }
  for line in requests:lines() do
    local ok, req = pcall(cjson.decode, line)
    if not ok or type(req) ~= 'table' then
      send{ type = 'error', ename = 'ProtocolError', evalue = 'lat.tools.kernel: bad request: ' .. line, traceback = {} }
    elseif req.op == 'execute' then
      execute(req)
    elseif req.op == 'complete' then
      send{ type = 'matches', matches = complete.complete(req.word or '') }
    elseif req.op == 'inspect' then
      send{ type = 'doc', text = inspect(req.word or '') }
    end
    send{ type = 'done' }
  end
end

return M
