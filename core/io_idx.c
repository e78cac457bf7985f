/* io_idx.c: reads IDX files (the MNIST format), gzip'd or not, into uint8 tensors, checking
 * every field of the file as hostile input. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* An IDX file: two zero bytes, a type byte (0x08 = unsigned byte, the only one read here), the
 * number of dimensions, then one big-endian uint32 per dimension, then the data, row-major. */
enum { IDX_MAX_BYTES_LOG2 = 36 }; /* refuse to allocate more than 64 GiB on a header's word */

/* Read exactly n bytes, or as many as the file has; returns the count or -1 (gzip error). */
static int64_t read_some(gzFile f, void *buf, int64_t n) {
  int64_t got = 0;
  while (got < n) {
    int64_t want = n - got < (1 << 30) ? n - got : (1 << 30);
    int r = gzread(f, (char *)buf + got, (unsigned)want);
    if (r < 0) return -1;
    if (r == 0) break;
    got += r;
  }
  return got;
}

static const char *gz_message(gzFile f) {
  int code;
  const char *m = gzerror(f, &code);
  return m && *m ? m : "read error";
}

static lat_tensor *fail_close(gzFile f, void *buf, lat_tensor *t) {
  gzclose(f);
  free(buf);
  lat_release(t);
  return NULL;
}

lat_tensor *lat_read_idx(const char *path) {
  if (!path) return lat__fail("read_idx: path is nil");
  gzFile f = gzopen(path, "rb");
  if (!f) return lat__fail("read_idx: cannot open '%s'", path);
  gzbuffer(f, 1 << 18);
  unsigned char head[4];
  int64_t got = read_some(f, head, 4);
  if (got < 0) {
    lat__fail("read_idx: '%s': %s", path, gz_message(f));
    return fail_close(f, NULL, NULL);
  }
  if (got < 4) {
    lat__fail("read_idx: '%s' is truncated: %lld bytes, shorter than the 4-byte IDX header",
              path, (long long)got);
    return fail_close(f, NULL, NULL);
  }
  if (head[0] != 0 || head[1] != 0) {
    lat__fail("read_idx: '%s' is not an IDX file (magic starts %02x %02x, expected 00 00)", path,
              head[0], head[1]);
    return fail_close(f, NULL, NULL);
  }
  if (head[2] != 0x08) {
    lat__fail("read_idx: '%s' has data type 0x%02x; only 0x08 (unsigned byte) is supported", path,
              head[2]);
    return fail_close(f, NULL, NULL);
  }
  int ndim = head[3];
  if (ndim < 1 || ndim > LAT_MAX_DIMS) {
    lat__fail("read_idx: '%s' declares %d dimensions; 1 to %d are supported", path, ndim,
              LAT_MAX_DIMS);
    return fail_close(f, NULL, NULL);
  }
  unsigned char dims[4 * LAT_MAX_DIMS];
  got = read_some(f, dims, 4 * ndim);
  if (got != 4 * ndim) {
    if (got < 0) lat__fail("read_idx: '%s': %s", path, gz_message(f));
    else lat__fail("read_idx: '%s' is truncated inside its header (%d dimension sizes declared)",
                   path, ndim);
    return fail_close(f, NULL, NULL);
  }
  int64_t shape[LAT_MAX_DIMS], total = 1;
  for (int d = 0; d < ndim; d++) {
    const unsigned char *p = dims + 4 * d;
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (v == 0 || v > INT32_MAX) {
      lat__fail("read_idx: '%s': dimension %d has size %lu (expected 1 to %d)", path, d + 1,
                (unsigned long)v, INT32_MAX);
      return fail_close(f, NULL, NULL);
    }
    shape[d] = v;
    if (total > (INT64_C(1) << IDX_MAX_BYTES_LOG2) / (int64_t)v) {
      lat__fail("read_idx: '%s': the declared size exceeds 2^%d bytes", path, IDX_MAX_BYTES_LOG2);
      return fail_close(f, NULL, NULL);
    }
    total *= v;
  }
  /* Grow the buffer as data arrives, so that a header declaring more than the file holds costs
   * no more memory than the file itself. */
  int64_t cap = total < (1 << 20) ? total : (1 << 20), have = 0;
  unsigned char *buf = malloc((size_t)cap);
  if (!buf) {
    lat__fail("read_idx: '%s': out of memory", path);
    return fail_close(f, NULL, NULL);
  }
  while (have < total) {
    if (have == cap) {
      int64_t ncap = cap * 2 < total ? cap * 2 : total;
      unsigned char *nb = realloc(buf, (size_t)ncap);
      if (!nb) {
        lat__fail("read_idx: '%s': out of memory for %lld bytes", path, (long long)ncap);
        return fail_close(f, buf, NULL);
      }
      buf = nb;
      cap = ncap;
    }
    got = read_some(f, buf + have, cap - have);
    if (got < 0) {
      lat__fail("read_idx: '%s' is corrupt: %s", path, gz_message(f));
      return fail_close(f, buf, NULL);
    }
    have += got;
    if (have < cap) break; /* end of file */
  }
  if (have < total) {
    lat__fail("read_idx: '%s' is truncated: %lld of %lld data bytes present", path,
              (long long)have, (long long)total);
    return fail_close(f, buf, NULL);
  }
  unsigned char extra;
  got = read_some(f, &extra, 1);
  if (got != 0) {
    if (got < 0) lat__fail("read_idx: '%s' is corrupt: %s", path, gz_message(f));
    else lat__fail("read_idx: '%s' has bytes after the %lld data bytes its header declares",
                   path, (long long)total);
    return fail_close(f, buf, NULL);
  }
  lat_tensor *t = lat__new(LAT_U8, ndim, shape);
  if (!t) return fail_close(f, buf, NULL);
  memcpy(t->data, buf, (size_t)total);
  free(buf);
  int rc = gzclose(f);
  if (rc != Z_OK) {
    lat_release(t);
    if (rc == Z_BUF_ERROR)
      return lat__fail("read_idx: '%s' is truncated (the gzip stream ends early)", path);
    return lat__fail("read_idx: '%s': error reading the end of the file", path);
  }
  return t;
}
