-- harness.lua: a small test runner for lat's Lua tests.
--   local H = require 'harness'
--   H.test('name', function() H.near(a, b, 1e-6) end)
--   H.ops{ rows... }   -- gradient check + PyTorch parity, one row per op case
--   H.finish()         -- prints 'N passed, M failed' and exits non-zero on any failure
package.path = debug.getinfo(1, 'S').source:match('^@(.*/)') .. '?.lua;' .. package.path
local lat = require 'lat'
local cjson = require 'cjson'

local H = { passed = 0, failed = 0 }
local PYTHON = os.getenv('LAT_PYTHON') or '/usr/bin/python3'
local here = debug.getinfo(1, 'S').source:match('^@(.*/)')

function H.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    H.passed = H.passed + 1
    print('ok   ' .. name)
  else
    H.failed = H.failed + 1
    print('FAIL ' .. name .. '\n     ' .. tostring(err):gsub('\n', '\n     '))
  end
end

function H.assert(cond, msg, level)
  if not cond then error(msg or 'assertion failed', (level or 1) + 1) end
end

-- a == b for numbers within tol, for tensors elementwise (max abs difference <= tol)
function H.near(a, b, tol, what)
  tol = tol or 1e-6
  if type(a) == 'number' then
    H.assert(math.abs(a - b) <= tol, ('%s: %.9g vs %.9g (tol %g)'):format(what or 'values', a, b, tol), 2)
    return
  end
  local ta = type(b) == 'table' and b or nil
  local n = a:numel()
  for k = 0, n - 1 do
    local va = a.f[k]
    local vb = ta and ta[k + 1] or b.f[k]
    if not (math.abs(va - vb) <= tol) then
      error(('%s: element %d differs: %.9g vs %.9g (tol %g)'):format(what or 'tensors', k, va, vb, tol), 2)
    end
  end
end

-- fn must raise an error whose message contains each of the given plain substrings
function H.raises(fn, ...)
  local ok, err = pcall(fn)
  H.assert(not ok, 'expected an error, got none', 2)
  err = tostring(err)
  for i = 1, select('#', ...) do
    local s = select(i, ...)
    H.assert(err:find(s, 1, true), ("error message lacks '%s': %s"):format(s, err), 2)
  end
  return err
end

local function flat(t)
  local out, n = {}, t:numel()
  local dt = t.dtype
  local p = dt == 'float32' and t.f or dt == 'int32' and t.i or t.u
  for k = 0, n - 1 do out[k + 1] = p[k] end
  return out
end
H.flat = flat

-- flat(t) for JSON, which has no NaN or infinity and reads -0 as the integer 0: those go as the
-- strings 'nan', 'inf', '-inf' and '-0.0'
local function flat_json(t)
  local out = flat(t)
  for k, v in ipairs(out) do
    if v ~= v then out[k] = 'nan' elseif v == math.huge then out[k] = 'inf' elseif v == -math.huge then out[k] = '-inf'
    elseif v == 0 and 1 / v < 0 then out[k] = '-0.0' end
  end
  return out
end

-- Input spec: {shape} (normal), {shape, 'pos'} (positive, away from 0), {shape, 'away'} (|x| >=
-- 0.1, away from kinks at 0), {shape, 'int', lo, hi} (int32 in [lo, hi)), {shape, 'unit'}
-- (uniform [0,1)), {shape, 'const', tensor}.
local function make_input(spec, rng)
  local shape, kind = spec[1], spec[2]
  if kind == 'int' then return lat.randint(spec[3], spec[4], shape, { rng = rng }) end
  if kind == 'const' then return spec[3] end
  local t = kind == 'unit' and lat.rand(shape, { rng = rng }) or lat.randn(shape, { rng = rng })
  if kind == 'pos' then
    for k = 0, t:numel() - 1 do t.f[k] = 0.2 + math.abs(t.f[k]) end
  elseif kind == 'away' then
    for k = 0, t:numel() - 1 do
      local v = t.f[k]
      t.f[k] = (v < 0 and -1 or 1) * (0.1 + math.abs(v))
    end
  end
  return t
end

-- Each row: { name=, inputs = { {'x', spec}, ... }, lat = function(x, ...) end,
--   torch = 'python expression', grad = {'x', ...} (default: every float input),
--   kinks = bool, tol = parity tolerance (default 1e-4, relative to the largest reference
--   value), fd = { eps=, atol=, rtol= } or false to skip finite differences }
-- Runs the finite-difference check in Lua, then PyTorch once for all rows, and compares.
function H.ops(rows, seed)
  local rng = lat.Generator(seed or 42)
  local cases, locals = {}, {}
  for i, row in ipairs(rows) do
    local ins, names, specs = {}, {}, {}
    local wrt = {}
    for j, e in ipairs(row.inputs) do
      local t = make_input(e[2], rng)
      ins[j], names[j] = t, e[1]
      specs[e[1]] = { shape = t.shape, dtype = t.dtype, data = flat_json(t) }
    end
    local grad_names = row.grad
    if not grad_names then
      grad_names = {}
      for j, t in ipairs(ins) do if t.dtype == 'float32' then grad_names[#grad_names + 1] = names[j] end end
    end
    local by_name = {}
    for j, n in ipairs(names) do by_name[n] = ins[j] end
    for _, n in ipairs(grad_names) do
      by_name[n]:requires_grad_(true)
      wrt[#wrt + 1] = by_name[n]
    end
    local ok, res = pcall(function()
      local out = row.lat(unpack(ins))
      local gout = lat.randn(out.shape, { rng = rng })
      local grads = #wrt > 0 and lat.grad(out, wrt, gout) or {}
      return { out = out, gout = gout, grads = grads }
    end)
    locals[i] = { ok = ok, res = res, ins = ins, wrt = grad_names }
    cases[i] = {
      expr = row.torch, inputs = specs, wrt = grad_names,
      gout = ok and flat_json(res.gout) or cjson.null,
    }
    if ok and row.fd ~= false and #wrt > 0 then
      local fd = row.fd or {}
      local good, report = lat.gradcheck(row.lat, ins, {
        eps = fd.eps, atol = fd.atol, rtol = fd.rtol, kinks = row.kinks, rng = rng,
      })
      locals[i].fd_ok, locals[i].fd_report = good, report
    end
  end
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, 'w'))
  f:write(cjson.encode(cases))
  f:close()
  local p = assert(io.popen(('%s %storch_ref.py < %s'):format(PYTHON, here, tmp)))
  local text = p:read('*a')
  p:close()
  os.remove(tmp)
  local ok_json, refs = pcall(cjson.decode, text)
  if not ok_json then
    H.test('PyTorch reference run', function() error('no JSON from ' .. PYTHON .. ': ' .. text:sub(1, 500)) end)
    return
  end
  for i, row in ipairs(rows) do
    local l, ref = locals[i], refs[i]
    H.test(row.name, function()
      H.assert(l.ok, 'lat raised: ' .. tostring(l.res))
      H.assert(not ref.error, 'PyTorch raised: ' .. tostring(ref.error))
      local out = l.res.out
      H.assert(table.concat(out.shape, ',') == table.concat(ref.shape, ','),
        ('shape %s, PyTorch %s'):format(table.concat(out.shape, 'x'), table.concat(ref.shape, 'x')))
      local tol = row.tol or 1e-4
      local function compare(got, want, what)
        local scale = 1
        for k = 1, #want do
          if math.abs(want[k]) < math.huge then scale = math.max(scale, math.abs(want[k])) end
        end
        for k = 1, #want do
          local g = got[k]
          -- NaN where PyTorch has NaN, and the same infinity, count as equal
          local special = (g ~= g and want[k] ~= want[k]) or (g == want[k] and math.abs(g) == math.huge)
          if not special and not (math.abs(g - want[k]) <= tol * scale) then
            error(('%s element %d: lat %.8g, PyTorch %.8g (tolerance %g x %g)'):format(what, k - 1, g, want[k], tol, scale), 0)
          end
        end
      end
      compare(flat(out), ref.out, 'output')
      for j, n in ipairs(l.wrt) do compare(flat(l.res.grads[j]), ref.grads[n], 'gradient of ' .. n) end
      if l.fd_ok ~= nil then
        H.assert(l.fd_ok, 'finite differences: ' .. table.concat(l.fd_report.failures, '; '))
      end
    end)
  end
end

-- small file and process helpers for tests
function H.read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

function H.write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
  return path
end

function H.exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

-- runs a shell command; returns its output (stdout and stderr) followed by '[exit N]'
function H.run(cmd)
  local p = assert(io.popen(cmd .. ' 2>&1; echo "[exit $?]"'))
  local out = p:read('*a')
  p:close()
  return out
end

-- Runs a Lua chunk in a fresh lat process (the library loaded) and returns what it printed and
-- the process's peak resident memory in bytes (VmHWM), so that a test can bound what a call costs
-- without the history of its own process.
function H.child(code)
  local path = os.tmpname()
  H.write(path, "local lat = require 'lat'\n" .. code .. "\nfor l in io.lines('/proc/self/status') do if l:find('^VmHWM') then print(l) end end\n")
  local out = H.run(("'%s' '%s'"):format(arg[-1], path))
  os.remove(path)
  local kib = tonumber(out:match('VmHWM:%s*(%d+) kB'))
  H.assert(kib, 'the child process did not finish: ' .. out, 2)
  return out, kib * 1024
end

function H.finish()
  print(('%d passed, %d failed'):format(H.passed, H.failed))
  os.exit(H.failed == 0 and 0 or 1, true) -- true: close the Lua state, so LeakSanitizer sees a clean shutdown
end

return H
