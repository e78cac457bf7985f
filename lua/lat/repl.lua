-- repl.lua: the interactive loop of the lat command. Each line is tried first as an
-- expression (its values are printed) and then as a statement; an incomplete chunk asks for
-- more lines; an error prints its message and the loop goes on.
local cli = require 'lat.cli'
local lat = require 'lat'
local complete = require 'lat.complete'
_G.lat = lat
_G.help = complete.help
cli.complete = complete.complete

local function print_values(n, ...)
  for i = 1, n do
    local v = select(i, ...)
    io.write(lat.repr(v), '\n')
  end
end

local function compile(src)
  local f, err = loadstring('return ' .. src, '=stdin')
  if f then return f end
  return loadstring(src, '=stdin')
end

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
    local f, err = compile(src)
    if not f and err:match("'<eof>'$") then
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
            print_values(select('#', ...), ...)
          end
        end
        report(cli.run(f))
      end
      io.flush()
    end
  end
end
