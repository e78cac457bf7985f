/* io_save.c: writing checkpoints in the safetensors layout, optionally zstd-compressed and with
 * float32 tensors as F16 or BF16, through a temporary file renamed over the old one, so that a
 * killed run leaves the old file whole. */
#include "io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  lat_tensor *t;
  int stored; /* the dtype in the file, LAT_FILE_ */
} item;

static int64_t stored_bytes(const item *it) {
  return it->t->numel_ * (int64_t)lat__file_dtypes[it->stored].size;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const item *)a)->name, ((const item *)b)->name);
}

/* the data section's order: the widest dtypes first, so that every tensor stays aligned */
static int by_layout(const void *a, const void *b) {
  const item *x = a, *y = b;
  int sx = lat__file_dtypes[x->stored].size, sy = lat__file_dtypes[y->stored].size;
  if (sx != sy) return sx > sy ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int check_items(const char *path, int n, const char **names, lat_tensor **tensors,
                       int float_stored, item *it) {
  for (int k = 0; k < n; k++) {
    if (!names[k]) return lat__failc("checkpoint %s: tensor %d has no name", path, k + 1);
    if (!tensors[k]) return lat__failc("checkpoint %s: tensor '%.200s' is NULL", path, names[k]);
    if (strcmp(names[k], "__metadata__") == 0)
      return lat__failc("checkpoint %s: '__metadata__' is reserved and cannot name a tensor", path);
    if (tensors[k]->dtype_ < LAT_F32 || tensors[k]->dtype_ > LAT_U8)
      return lat__failc("checkpoint %s: tensor '%.200s' has an unknown dtype", path, names[k]);
    it[k].name = names[k], it[k].t = tensors[k];
    /* lat's own dtypes are the first LAT_FILE_ numbers */
    it[k].stored = tensors[k]->dtype_ == LAT_F32 ? float_stored : tensors[k]->dtype_;
  }
  qsort(it, (size_t)n, sizeof *it, by_name);
  for (int k = 1; k < n; k++)
    if (strcmp(it[k - 1].name, it[k].name) == 0)
      return lat__failc("checkpoint %s: two tensors are named '%.200s'", path, it[k].name);
  qsort(it, (size_t)n, sizeof *it, by_layout);
  return 0;
}

/* the JSON header, padded with spaces to a multiple of 8 bytes; *data gets the data size */
static int build_header(const char *path, int n, const item *it, const char *meta, lat_buf *b,
                        int64_t *data) {
  int64_t pos = 0;
  lat__buf_puts(b, "{");
  if (meta) {
    lat__buf_puts(b, "\"__metadata__\":");
    lat__buf_puts(b, meta);
    if (n) lat__buf_puts(b, ",");
  }
  for (int k = 0; k < n; k++) {
    const lat_tensor *t = it[k].t;
    int64_t bytes = stored_bytes(&it[k]);
    lat__buf_json_string(b, it[k].name);
    lat__buf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", lat__file_dtypes[it[k].stored].name);
    for (int d = 0; d < t->ndim; d++)
      lat__buf_printf(b, d ? ",%lld" : "%lld", (long long)t->shape_[d]);
    lat__buf_printf(b, "],\"data_offsets\":[%lld,%lld]}%s", (long long)pos,
                    (long long)(pos + bytes), k + 1 < n ? "," : "");
    pos += bytes;
  }
  lat__buf_puts(b, "}");
  while (b->ok && b->n % 8) lat__buf_puts(b, " ");
  if (!b->ok) return lat__failc("checkpoint %s: out of memory for the header", path);
  *data = pos;
  if (lat__check_header(path, b->p, b->n) != 0) {
    char why[512];
    snprintf(why, sizeof why, "%s", lat_error());
    return lat__failc("cannot write a valid header (%s)", why);
  }
  return 0;
}

/* writes a tensor's values as it->stored, converting them through a buffer where they differ */
static int write_values(lat_sink *s, const item *it) {
  const lat_tensor *t = it->t;
  if (it->stored == t->dtype_) return lat__sink_write(s, t->data, (size_t)stored_bytes(it));
  enum { CHUNK = 1 << 14 };
  uint16_t out[CHUNK];
  for (int64_t k = 0; k < t->numel_; k += CHUNK) {
    int64_t n = t->numel_ - k < CHUNK ? t->numel_ - k : CHUNK;
    lat__encode_values(it->stored, out, t->f + k, n);
    if (lat__sink_write(s, out, (size_t)n * sizeof *out)) return -1;
  }
  return 0;
}

int lat_save_safetensors(const char *path, int n, const char **names, lat_tensor **tensors,
                         const char *metadata_json, int zstd_level, const char *float_dtype) {
  if (!path) return lat__failc("checkpoint: path is NULL");
  int float_stored = float_dtype ? lat__file_dtype(float_dtype) : LAT_FILE_F32;
  if (float_stored != LAT_FILE_F32 && float_stored != LAT_FILE_F16 &&
      float_stored != LAT_FILE_BF16)
    return lat__failc("checkpoint %s: float32 tensors are written as F32, F16 or BF16, not as "
                      "'%.40s'", path, float_dtype);
  if (n < 0 || (n > 0 && (!names || !tensors)))
    return lat__failc("checkpoint %s: %d tensors given without names or tensors", path, n);
  if (metadata_json && lat__parse_metadata(path, metadata_json, strlen(metadata_json)) != 0)
    return -1;
  item *it = malloc(((size_t)n + 1) * sizeof *it);
  lat_buf b = {NULL, 0, 0, 1};
  int64_t data = 0;
  int rc = -1;
  if (!it) {
    lat__fail("checkpoint %s: out of memory", path);
    goto done;
  }
  if (check_items(path, n, names, tensors, float_stored, it) != 0) goto done;
  if (build_header(path, n, it, metadata_json, &b, &data) != 0) goto done;
  lat_sink *s = lat__sink_open(path, zstd_level, 8 + (int64_t)b.n + data);
  if (!s) goto done;
  unsigned char len8[8];
  for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)b.n >> (8 * k));
  int bad = lat__sink_write(s, len8, 8) || lat__sink_write(s, b.p, b.n);
  for (int k = 0; k < n && !bad; k++) bad = write_values(s, &it[k]);
  if (bad) lat__sink_abort(s);
  else rc = lat__sink_commit(s);
done:
  free(it);
  free(b.p);
  return rc;
}
