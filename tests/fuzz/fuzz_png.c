/* fuzz_png.c: lat_read_png on any bytes. libpng drops a chunk whose CRC is wrong, so nearly
 * every mutation would stop there: the target puts right CRCs on the chunks it can walk before
 * writing the file, which lets the mutations reach the image data and lat's checks of it. */
#include "fuzz_file.h"
#include "lat.h"
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fix_crcs(uint8_t *p, size_t size) {
  for (size_t at = 8; at + 12 <= size;) {
    size_t n = be32(p + at);
    if (n > size - at - 12) return;
    uint32_t crc = (uint32_t)crc32(0, p + at + 4, (uInt)(n + 4)); /* chunk type and data */
    for (int k = 0; k < 4; k++) p[at + 8 + n + k] = (uint8_t)(crc >> (24 - 8 * k));
    at += n + 12;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  fix_crcs(copy, size);
  lat_tensor *t = lat_read_png(fuzz_file(copy, size, ".png"));
  free(copy);
  if (t) lat_release(t);
  return 0;
}
