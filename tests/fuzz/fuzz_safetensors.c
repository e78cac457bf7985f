/* fuzz_safetensors.c: lat_load_safetensors on any bytes, plain or zstd-compressed (the reader
 * decompresses a file that starts with the zstd magic number). Every byte of every tensor it
 * returns is read, so that a tensor reaching past what was loaded shows up under ASan. */
#include "fuzz_file.h"
#include "lat.h"
#include "internal.h"
#include <string.h>

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lat_checkpoint *c = lat_load_safetensors(fuzz_file(data, size, ".safetensors"));
  if (!c) return 0;
  sink ^= (uint8_t)strlen(lat_checkpoint_metadata(c));
  for (int i = 0; i < lat_checkpoint_count(c); i++) {
    sink ^= (uint8_t)strlen(lat_checkpoint_name(c, i));
    lat_tensor *t = lat_checkpoint_tensor(c, i);
    size_t bytes = (size_t)t->numel_ * lat__dtype_size(t->dtype_);
    for (size_t k = 0; k < bytes; k++) sink ^= t->u[k];
    lat_release(t);
  }
  lat_checkpoint_free(c);
  return 0;
}
