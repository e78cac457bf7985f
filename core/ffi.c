/* ffi.c: what a binding reads from liblat to check itself against the library it loaded: the
 * declarations of lat.h's FFI block and the layout of the structs in it. */
#include "lat.h"
#include <stddef.h>
#include <string.h>

/* the FFI block of lat.h as a string, written by the build (CMakeLists.txt) */
extern const char lat__ffi_block[];

const char *lat_ffi_declarations(void) { return lat__ffi_block; }

#define FIELD(type, field) {#type "." #field, (int)offsetof(type, field)}
static const struct { const char *name; int value; } layout[] = {
  {"lat_tensor", (int)sizeof(lat_tensor)},
  FIELD(lat_tensor, data), FIELD(lat_tensor, f), FIELD(lat_tensor, i), FIELD(lat_tensor, u),
  FIELD(lat_tensor, shape_), FIELD(lat_tensor, numel_), FIELD(lat_tensor, ndim),
  FIELD(lat_tensor, dtype_), FIELD(lat_tensor, refcount), FIELD(lat_tensor, req_grad_),
  FIELD(lat_tensor, grad_), FIELD(lat_tensor, node), FIELD(lat_tensor, storage),
  FIELD(lat_tensor, bgrad_), FIELD(lat_tensor, mark_), FIELD(lat_tensor, narrow_copy_),
  {"lat_rng", (int)sizeof(lat_rng)}, FIELD(lat_rng, seed), FIELD(lat_rng, offset),
};

int lat_ffi_layout(const char *name) {
  for (size_t k = 0; name && k < sizeof layout / sizeof *layout; k++)
    if (strcmp(layout[k].name, name) == 0) return layout[k].value;
  return -1;
}
