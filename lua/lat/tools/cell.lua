-- tools/cell.lua: how typed source becomes something to run, shared by the REPL (a line or a
-- multi-line chunk) and the notebook kernel (a cell). A cell is statements whose last one, if it
-- is an expression, gives the values shown ('x = 2\nx * 3' shows 6); the rest runs as usual.
local lat = require 'lat'
local locals = require 'lat.tools.locals'

local M = {}

-- true when the chunk failed to compile only because it ends too soon (more lines would help)
function M.incomplete(err) return err ~= nil and err:match("'<eof>'$") ~= nil end

-- compile(src, name[, env]): a function running src and returning the values of its last expression
-- (none when it ends in a statement), or nil and the compiler's message for src as statements.
-- The last expression is the shortest run of last lines that reads as one: when src already
-- compiles as statements that run must also be a statement by itself (a call), so 'x = 1\n-1'
-- keeps its meaning (x = 0) instead of returning -1. With env (a lat.tools.locals session) the
-- chunk's top-level locals become the session's and it runs in env.
function M.compile(src, name, env)
  name = name or '=stdin'
  src = src:gsub('%s+$', '')
  if env then
    local f, err = M.compile(locals.rewrite(src), name)
    return f and setfenv(f, env), err
  end
  local whole, err = loadstring(src, name)
  local starts = { 1 } -- where each line begins
  for pos in src:gmatch('\n()') do starts[#starts + 1] = pos end
  for k = #starts, 1, -1 do
    local head, tail = src:sub(1, starts[k] - 1), src:sub(starts[k])
    if tail:match('%S') and not tail:match('^%s*%-%-') then
      -- head keeps its newlines so that line numbers in messages stay those of the cell; select
      -- keeps a call in tail from being a tail call, whose errors would lose their position
      local f = loadstring(head .. 'return select(1, ' .. tail .. '\n)', name)
      if f and (not whole or loadstring(tail, name)) then return f end
    end
  end
  if whole then return whole end
  return nil, err
end

-- the values a run returned, one lat.repr per line ('' when there are none)
function M.show(n, ...)
  local out = {}
  for i = 1, n do out[i] = lat.repr((select(i, ...))) end
  return table.concat(out, '\n')
end

return M
