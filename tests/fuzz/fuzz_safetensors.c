/* fuzz_safetensors.c: lat_load_safetensors on any bytes, plain or zstd-compressed (the reader
 * decompresses a file that starts with the zstd magic number), in every stored dtype it reads.
 * Every byte of every tensor it returns is read, so that a tensor reaching past what was loaded
 * shows up under ASan. The same file also goes to the reader of a sharded checkpoint's index
 * (lat_read_shard_index), whose every entry is read. */
#include "fuzz_file.h"
#include "lat.h"
#include "internal.h"
#include <string.h>

static volatile uint8_t sink;

static void read_checkpoint(const char *path) {
  lat_checkpoint *c = lat_load_safetensors(path);
  if (!c) return;
  sink ^= (uint8_t)strlen(lat_checkpoint_metadata(c));
  for (int i = 0; i < lat_checkpoint_count(c); i++) {
    sink ^= (uint8_t)strlen(lat_checkpoint_name(c, i));
    sink ^= (uint8_t)strlen(lat_checkpoint_stored_dtype(c, i));
    lat_tensor *t = lat_checkpoint_tensor(c, i);
    size_t bytes = (size_t)t->numel_ * lat__dtype_size(t->dtype_);
    for (size_t k = 0; k < bytes; k++) sink ^= t->u[k];
    lat_release(t);
  }
  lat_checkpoint_free(c);
}

static void read_index(const char *path) {
  lat_shard_index *x = lat_read_shard_index(path);
  if (!x) return;
  sink ^= (uint8_t)strlen(lat_shard_index_metadata(x));
  for (int i = 0; i < lat_shard_index_count(x); i++)
    sink ^= (uint8_t)(strlen(lat_shard_index_tensor(x, i)) + strlen(lat_shard_index_shard(x, i)));
  lat_shard_index_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size, ".safetensors");
  read_checkpoint(path);
  read_index(path);
  return 0;
}
