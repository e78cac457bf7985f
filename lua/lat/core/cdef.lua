-- core/cdef.lua: declares liblat's FFI block to LuaJIT. The declarations come from the library itself
-- (lat_ffi_declarations: the block of core/lat.h between LAT_FFI_BEGIN and LAT_FFI_END, copied
-- into liblat by the build), so they are those of the library loaded, wherever it came from.
local ffi = require 'ffi'

ffi.cdef('const char *lat_ffi_declarations(void);')

return function(lib)
  local ok, declarations = pcall(function() return lib.lat_ffi_declarations end)
  if not ok then
    error('lat: the liblat loaded has no lat_ffi_declarations (built from an older lat.h?): '
      .. tostring(declarations), 0)
  end
  ffi.cdef(ffi.string(declarations()))
end
