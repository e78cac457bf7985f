-- tools/locals.lua: locals that outlive their line. LuaJIT ends a chunk's locals with the chunk,
-- so each REPL line or notebook cell has its top-level `local` statements rewritten into
-- assignments to a per-session table that later chunks see, as a notebook's cells see each
-- other's variables: `local x = 1`, then `x` on the next line gives 1. Locals inside functions
-- and blocks are left as they are. The rewrite keeps every line where it was, so error
-- messages name the line the user typed.
local M = {}

local KEYWORD = {}
for w in ('and break do else elseif end false for function goto if in local nil not or repeat return then true until while'):gmatch('%a+') do
  KEYWORD[w] = true
end
local OPENS = { ['function'] = true, ['if'] = true, ['do'] = true, ['repeat'] = true }
local CLOSES = { ['end'] = true, ['until'] = true }

-- the end (inclusive) of a long bracket [==[ ... ]==] opening at i, or nil when none opens there
local function long_bracket(src, i)
  local eq = src:match('^%[(=*)%[', i)
  if not eq then return nil end
  local _, stop = src:find(']' .. eq .. ']', i + #eq + 2, true)
  return stop or #src
end

-- the words of src outside strings and comments, each {word, start, stop}
local function words(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match('[%a_]') then
      local s, e = src:find('^[%w_]+', i)
      out[#out + 1] = { src:sub(s, e), s, e }
      i = e + 1
    elseif c:match('%d') then
      i = (select(2, src:find('^[%w_.]+', i))) + 1 -- numbers, 0x1p4, 1e5 (the sign is its own token)
    elseif c == '-' and src:sub(i + 1, i + 1) == '-' then
      local stop = long_bracket(src, i + 2)
      i = (stop or src:find('\n', i, true) or n) + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == '\\' then j = j + 1 elseif d == c or d == '\n' then break end
        j = j + 1
      end
      i = j + 1
    elseif c == '[' and long_bracket(src, i) then
      i = long_bracket(src, i) + 1
    elseif c == '.' or c == ':' then
      -- a field or method name after '.' or ':' is not a keyword or a variable ('t.x', 'a:end_')
      local _, e = src:find('^[.:]+%s*[%a_][%w_]*', i)
      i = (e and src:sub(i, i + 1) ~= '..' and e or i) + 1
    else
      i = i + 1
    end
  end
  return out
end

-- rewrite(src): src with each top-level `local a, b = ...` read as `__lat_local'a,b' a, b = ...`
-- (a statement without values assigns nil), and `local function f` as `__lat_local'f' function f`
function M.rewrite(src)
  local ws = words(src)
  local depth, edits = 0, {}
  for k, w in ipairs(ws) do
    local word = w[1]
    if word == 'local' and depth == 0 then
      local names, last = {}, k
      local nxt = ws[k + 1]
      if nxt and nxt[1] == 'function' then
        local name = ws[k + 2]
        if name and not KEYWORD[name[1]] then names[1] = name[1] end
      else
        -- the names run while each is followed by only a comma and white space
        local j = k + 1
        while ws[j] and not KEYWORD[ws[j][1]] do
          names[#names + 1], last = ws[j][1], j
          local between = src:sub(ws[j][3] + 1, ws[j + 1] and ws[j + 1][2] - 1 or #src)
          if not between:match('^%s*,%s*$') then break end
          j = j + 1
        end
      end
      if #names > 0 then
        local values = nxt[1] == 'function' or src:match('^%s*=[^=]', ws[last][3] + 1)
        edits[#edits + 1] = { w[2], w[3], ("__lat_local'%s'"):format(table.concat(names, ',')),
                              not values and ws[last][3] or nil }
      end
    elseif OPENS[word] then
      depth = depth + 1
    elseif CLOSES[word] then
      depth = math.max(depth - 1, 0)
    end
  end
  for e = #edits, 1, -1 do
    local start, stop, with, nil_after = unpack(edits[e])
    if nil_after then src = src:sub(1, nil_after) .. ' = nil' .. src:sub(nil_after + 1) end
    src = src:sub(1, start - 1) .. with .. src:sub(stop + 1)
  end
  return src
end

-- session(): a fresh environment for rewritten chunks, and the table of its locals' values. Names declared by a rewritten `local`
-- live in it; every other name reads and writes the globals. A declared name whose value is nil
-- reads the global of that name, so that `local print = print` keeps working.
function M.session()
  local values, declared = {}, {}
  local env = {}
  rawset(env, '__lat_local', function(names)
    for name in names:gmatch('[^,]+') do declared[name] = true end
  end)
  return setmetatable(env, {
    __index = function(_, k)
      local v = values[k]
      if v == nil then return _G[k] end
      return v
    end,
    __newindex = function(_, k, v)
      if declared[k] then values[k] = v else _G[k] = v end
    end,
  }), values
end

return M
