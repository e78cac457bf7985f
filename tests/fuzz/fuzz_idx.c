/* fuzz_idx.c: lat_read_idx on any bytes, plain IDX or gzip'd (zlib's gzopen reads both). */
#include "fuzz_file.h"
#include "lat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lat_tensor *t = lat_read_idx(fuzz_file(data, size, ".idx"));
  if (t) lat_release(t);
  return 0;
}
