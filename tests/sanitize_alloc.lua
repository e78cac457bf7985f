-- sanitize_alloc.lua, run in the sanitizer build only (.ci/sanitize.sh): tensor buffers live in
-- lat's caching allocator (core/alloc.c), not straight in malloc, yet ASan must still see a read
-- past a tensor's bytes and a read of a buffer that went back to the cache.
local H = require 'harness'
local LAT = arg[-1]

-- Runs code in a child lat and returns its output. The reads must be liblat's (LuaJIT's own are
-- not instrumented), so the code points a tensor at more bytes than it owns (widen) or at a
-- buffer it no longer owns, and sums it in C.
local function child(code)
  local prelude = 'local function widen(t, n) t.ptr.shape_[0] = n; t.ptr.numel_ = n; return t end; '
  return H.run(("%q -e %q"):format(LAT, prelude .. code))
end

local function reported(out, what)
  H.assert(out:find('AddressSanitizer: ' .. what, 1, true) and not out:find('[exit 0]', 1, true),
    'expected an ASan report of ' .. what .. ', got:\n' .. out, 2)
end

H.test('the child itself runs clean', function()
  local out = child('print(widen(lat.zeros(20), 10):sum():item())')
  H.assert(out:find('[exit 0]', 1, true) and not out:find('AddressSanitizer', 1, true), out)
end)

H.test('a read past the bytes of a tensor is reported', function()
  reported(child('print(widen(lat.zeros(10), 11):sum():item())'), 'use-after-poison')
end)

H.test('a read of a buffer back in the cache is reported', function()
  reported(child([[
    local t = lat.zeros(1000); local p = t.ptr.data
    t = nil; collectgarbage(); collectgarbage()
    local u = lat.zeros(10); u.ptr.data = p; print(u:sum():item())]]), 'use-after-poison')
end)

H.test('a buffer taken again from the cache is addressable for its new size only', function()
  reported(child([[
    local t = lat.zeros(1000); t = nil; collectgarbage(); collectgarbage()
    print(widen(lat.zeros(900), 950):sum():item())]]), 'use-after-poison')
end)

H.finish()
