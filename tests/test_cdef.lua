-- The FFI declarations that lat.core gives LuaJIT come from the library it loaded
-- (lat_ffi_declarations). Checked here: they are the block of core/lat.h, every function they
-- declare is exported, and LuaJIT lays out each struct as the C compiler did.
local H = require 'harness'
local C = require('lat.core').C
local ffi = require 'ffi'

local declarations = ffi.string(C.lat_ffi_declarations())
local code = declarations:gsub('/%*.-%*/', '')

local function normalise(s)
  return (s:gsub('/%*.-%*/', ''):gsub('%s+', ' '):gsub('^ ', ''):gsub(' $', ''))
end

H.test('the library declares the FFI block of core/lat.h (rebuild if lat.h changed)', function()
  local f = assert(io.open('../core/lat.h'))
  local header = f:read('*a')
  f:close()
  local block = header:match('/%* LAT_FFI_BEGIN %*/(.-)/%* LAT_FFI_END %*/')
  H.assert(block, 'markers not found in lat.h')
  local a, b = normalise(block:gsub('LAT_API ', '')), normalise(declarations)
  if a ~= b then
    local i = 1
    while a:sub(i, i) == b:sub(i, i) do i = i + 1 end
    error(('differ at character %d:\n  lat.h:   %s\n  liblat:  %s'):format(i, a:sub(i, i + 60), b:sub(i, i + 60)))
  end
end)

-- the names of the functions declared at top level (struct and enum bodies dropped)
local function function_names()
  local names = {}
  for statement in code:gsub('%b{}', ''):gmatch('[^;]+') do
    local name = statement:match('([%a_][%w_]*)%s*%(')
    if name and not statement:match('^%s*typedef') then names[#names + 1] = name end
  end
  return names
end

H.test('every function declared is exported by liblat', function()
  local names, missing = function_names(), {}
  H.assert(#names > 80, ('found %d functions in the declarations'):format(#names))
  for _, name in ipairs(names) do
    if not pcall(function() return C[name] end) then missing[#missing + 1] = name end
  end
  H.assert(#missing == 0, 'declared but not exported (LAT_API missing?): ' .. table.concat(missing, ', '))
end)

H.test('every enum constant declared resolves', function()
  local count = 0
  for body in code:gmatch('enum%s*[%w_]*%s*(%b{})') do
    for name in body:gmatch('([%a_][%w_]*)%s*[=,}]') do
      H.assert(type(C[name]) == 'number', name .. ' does not resolve to a number')
      count = count + 1
    end
  end
  H.assert(count > 20, ('found %d enum constants in the declarations'):format(count))
end)

-- each named struct with a body, and its fields (those of an anonymous union included)
local function structs()
  local found = {}
  for name, body in code:gmatch('typedef struct ([%w_]+)%s*(%b{})') do
    local fields = {}
    for decl in body:sub(2, -2):gsub('union%s*{', ''):gsub('}', ''):gmatch('[^;]+') do
      local field = decl:gsub('%b[]', ''):match('([%a_][%w_]*)%s*$')
      if field then fields[#fields + 1] = field end
    end
    found[#found + 1] = { name = name, fields = fields }
  end
  return found
end

H.test('struct sizes and field offsets agree with the C compiler', function()
  local list = structs()
  H.assert(#list >= 2, 'found the structs lat_tensor and lat_rng')
  for _, s in ipairs(list) do
    H.assert(ffi.sizeof(s.name) == C.lat_ffi_layout(s.name),
      ('sizeof(%s): %d in LuaJIT, %d in C'):format(s.name, ffi.sizeof(s.name), C.lat_ffi_layout(s.name)))
    for _, field in ipairs(s.fields) do
      local key = s.name .. '.' .. field
      H.assert(ffi.offsetof(s.name, field) == C.lat_ffi_layout(key),
        ('offsetof(%s): %s in LuaJIT, %d in C (-1: not in ffi.c)'):format(key, tostring(ffi.offsetof(s.name, field)), C.lat_ffi_layout(key)))
    end
  end
end)

H.finish()
