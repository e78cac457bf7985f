/* fuzz_json.c: the safetensors header reader (io_safetensors.c on io_json.c) straight from
 * memory: the input is exactly the header text, so a read one byte past it is an ASan report.
 * The same bytes go through the metadata parser, which checkpoint writers use on user JSON, and
 * the parser of a sharded checkpoint's index (io_shard_index.c). */
#include "io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lat__check_header("fuzz", (const char *)data, size);
  lat__parse_metadata("fuzz", (const char *)data, size);
  lat_shard_index_free(lat__parse_shard_index("fuzz", (const char *)data, size));
  return 0;
}
