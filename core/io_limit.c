/* io_limit.c: how many bytes reading one file may produce (lat_set_read_limit), and the check
 * each reader makes against it, and against what the file's own size makes plausible, before it
 * allocates: a small compressed file must not turn into gigabytes. */
#include "io.h"
#include <stdio.h>
#include <unistd.h>

static int64_t limit; /* 0: not set, the default applies */

static int64_t default_limit(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  int64_t eight = (int64_t)8 << 30;
  if (pages <= 0 || page <= 0) return eight;
  int64_t half = (int64_t)pages / 2 * page;
  return half < eight ? half : eight;
}

int64_t lat_read_limit(void) { return limit ? limit : default_limit(); }

int64_t lat_set_read_limit(int64_t bytes) {
  if (bytes < 0)
    return lat__failc("set_read_limit: %lld bytes; the limit is a positive number of bytes, or 0 "
                      "for the default", (long long)bytes);
  int64_t old = lat_read_limit();
  limit = bytes;
  return old;
}

int64_t lat__decoded_cap(int64_t stored, int compressed) {
  int64_t cap = lat_read_limit();
  if (!compressed || limit) return cap; /* a limit the caller set is the caller's word */
  int64_t ratio = stored > INT64_MAX / LAT_MAX_RATIO ? INT64_MAX : stored * LAT_MAX_RATIO;
  if (ratio < LAT_RATIO_FREE) ratio = LAT_RATIO_FREE;
  return ratio < cap ? ratio : cap;
}

int lat__check_decoded(const char *who, int64_t decoded, int64_t stored, int compressed) {
  int64_t cap = lat_read_limit();
  if (decoded > cap)
    return lat__failc("%s: would decode to %lld bytes, more than the read limit of %lld bytes "
                      "(lat.set_read_limit raises it)", who, (long long)decoded, (long long)cap);
  if (compressed && decoded > lat__decoded_cap(stored, compressed))
    return lat__failc("%s: %lld compressed bytes would decode to %lld, more than %d times as "
                      "many: refused as a decompression bomb (if the file is genuine, setting a read limit, "
                      "lat.set_read_limit(bytes), lifts this ratio check)", who,
                      (long long)stored, (long long)decoded, LAT_MAX_RATIO);
  return 0;
}
