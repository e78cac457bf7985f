-- tools/repl.lua: the interactive loop of the lat command. Each line runs as a cell
-- (lat.tools.cell) in one session (lat.tools.locals: a `local` stays for the next lines): the values of a final expression are printed; an incomplete chunk asks for
-- more lines; an error prints its message and the loop goes on.
local cli = require 'lat.cli'
local lat = require 'lat'
local complete = require 'lat.tools.complete'
local cell = require 'lat.tools.cell'
local env, values = require('lat.tools.locals').session()
_G.lat = lat
complete.scope = values
_G.help = require('lat.tools.help').help
cli.complete = complete.complete

if cli.interactive() then
  io.write(('lat %s: tensors and latent attacks in Lua. lat.* is loaded; Ctrl-D quits.\n'):format(lat.version))
end

local buffer = nil
while true do
  local line = cli.readline(buffer and '>> ' or '> ')
  if line == nil then
    if cli.interactive() then io.write('\n') end
    break
  end
  local src = buffer and (buffer .. '\n' .. line) or line
  if src:match('%S') then
    local f, err = cell.compile(src, '=stdin', env)
    if not f and cell.incomplete(err) then
      buffer = src
    else
      buffer = nil
      cli.add_history(src)
      if not f then
        io.write(err, '\n')
      else
        local function report(ok, ...)
          if not ok then
            io.write((...), '\n')
          else
            local n = select('#', ...)
            if n > 0 then io.write(cell.show(n, ...), '\n') end
          end
        end
        report(cli.run(f))
      end
      io.flush()
    end
  end
end
