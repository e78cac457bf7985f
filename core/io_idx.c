/* io_idx.c: reads IDX files (the MNIST format), gzip'd or not, into uint8 tensors, checking
 * every field of the file as hostile input. */
#include "io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static lat_tensor *fail_close(gzFile f, lat_tensor *t) {
  gzclose(f);
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
    return fail_close(f, NULL);
  }
  if (got < 4) {
    lat__fail("read_idx: '%s' is truncated: %lld bytes, shorter than the 4-byte IDX header",
              path, (long long)got);
    return fail_close(f, NULL);
  }
  if (head[0] != 0 || head[1] != 0) {
    lat__fail("read_idx: '%s' is not an IDX file (magic starts %02x %02x, expected 00 00)", path,
              head[0], head[1]);
    return fail_close(f, NULL);
  }
  if (head[2] != 0x08) {
    lat__fail("read_idx: '%s' has data type 0x%02x; only 0x08 (unsigned byte) is supported", path,
              head[2]);
    return fail_close(f, NULL);
  }
  int ndim = head[3];
  if (ndim < 1 || ndim > LAT_MAX_DIMS) {
    lat__fail("read_idx: '%s' declares %d dimensions; 1 to %d are supported", path, ndim,
              LAT_MAX_DIMS);
    return fail_close(f, NULL);
  }
  unsigned char dims[4 * LAT_MAX_DIMS];
  got = read_some(f, dims, 4 * ndim);
  if (got != 4 * ndim) {
    if (got < 0) lat__fail("read_idx: '%s': %s", path, gz_message(f));
    else lat__fail("read_idx: '%s' is truncated inside its header (%d dimension sizes declared)",
                   path, ndim);
    return fail_close(f, NULL);
  }
  int64_t shape[LAT_MAX_DIMS], total = 1;
  for (int d = 0; d < ndim; d++) {
    const unsigned char *p = dims + 4 * d;
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (v == 0 || v > INT32_MAX) {
      lat__fail("read_idx: '%s': dimension %d has size %lu (expected 1 to %d)", path, d + 1,
                (unsigned long)v, INT32_MAX);
      return fail_close(f, NULL);
    }
    shape[d] = v;
    if (total > (INT64_C(1) << IDX_MAX_BYTES_LOG2) / (int64_t)v) {
      lat__fail("read_idx: '%s': the declared size exceeds 2^%d bytes", path, IDX_MAX_BYTES_LOG2);
      return fail_close(f, NULL);
    }
    total *= v;
  }
  /* Refuse before allocating what the file cannot hold: a plain file holds exactly its data, a
   * gzip'd one at most what the read limit and the compression ratio allow. */
  struct stat st;
  int64_t stored = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
  int compressed = !gzdirect(f);
  int64_t present = stored - 4 - 4 * (int64_t)ndim;
  if (!compressed && present < total) {
    lat__fail("read_idx: '%s' is truncated: %lld of %lld data bytes present", path,
              (long long)present, (long long)total);
    return fail_close(f, NULL);
  }
  char who[300];
  snprintf(who, sizeof who, "read_idx: '%.250s'", path);
  if (lat__check_decoded(who, total, stored, compressed)) return fail_close(f, NULL);
  /* pages of the tensor are touched only as data arrives, so a lying gzip header costs no more
   * memory than the data its stream really holds */
  lat_tensor *t = lat__new(LAT_U8, ndim, shape);
  if (!t) return fail_close(f, NULL);
  int64_t have = read_some(f, t->data, total);
  if (have < 0) {
    lat__fail("read_idx: '%s' is corrupt: %s", path, gz_message(f));
    return fail_close(f, t);
  }
  if (have < total) {
    lat__fail("read_idx: '%s' is truncated: %lld of %lld data bytes present", path,
              (long long)have, (long long)total);
    return fail_close(f, t);
  }
  unsigned char extra;
  got = read_some(f, &extra, 1);
  if (got != 0) {
    if (got < 0) lat__fail("read_idx: '%s' is corrupt: %s", path, gz_message(f));
    else lat__fail("read_idx: '%s' has bytes after the %lld data bytes its header declares",
                   path, (long long)total);
    return fail_close(f, t);
  }
  int rc = gzclose(f);
  if (rc != Z_OK) {
    lat_release(t);
    if (rc == Z_BUF_ERROR)
      return lat__fail("read_idx: '%s' is truncated (the gzip stream ends early)", path);
    return lat__fail("read_idx: '%s': error reading the end of the file", path);
  }
  return t;
}
