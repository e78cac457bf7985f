/* io_safetensors.c: reading checkpoints in the safetensors layout (8-byte little-endian header
 * length, a JSON header, the tensors' bytes) as hostile input, converting the dtypes lat does
 * not keep (io_dtype.c) as they are read; io_save.c writes them. */
#include "io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors stores little-endian data; this file assumes a little-endian machine"
#endif

enum { MAX_HEADER = 100000000 }; /* as in the safetensors reference implementation */

typedef struct {
  char *name;
  int stored, ndim; /* stored: the file's dtype, LAT_FILE_ */
  int64_t shape[LAT_MAX_DIMS];
  int64_t begin, end;
} entry;

typedef struct {
  entry *e;
  int n, cap;
  size_t meta_at, meta_end; /* the __metadata__ object inside the header text; 0, 0 if none */
} header;

struct lat_checkpoint {
  int n;
  char **names;
  lat_tensor **tensors;
  int *stored; /* each tensor's dtype in the file, LAT_FILE_ */
  char *metadata;
};

/* dtypes of the safetensors format that lat has no dtype for */
static const char *const OTHER_DTYPES[] = {"U64", "U32", "U16", "F8_E4M3", "F8_E5M2", "F4",
                                           "F6_E2M3", "F6_E3M2", "F8_E8M0", "E8M0", "C64"};

static void header_free(header *h) {
  for (int k = 0; k < h->n; k++) free(h->e[k].name);
  free(h->e);
  memset(h, 0, sizeof *h);
}

static const char *shape_str(const entry *e, char *buf, size_t n) {
  lat_tensor t = {0};
  t.ndim = e->ndim;
  memcpy(t.shape_, e->shape, sizeof e->shape);
  return lat__shape_str(&t, buf, n);
}

/* ---------------------------------------------------------------- parsing the header */

static int parse_dtype(lat_json *j, entry *e, const char *path) {
  char *s = lat__json_string(j);
  if (!s) return -1;
  e->stored = lat__file_dtype(s);
  if (e->stored >= 0) {
    free(s);
    return 0;
  }
  int known = 0;
  for (size_t d = 0; d < sizeof OTHER_DTYPES / sizeof *OTHER_DTYPES; d++)
    known |= strcmp(s, OTHER_DTYPES[d]) == 0;
  if (known)
    lat__fail("checkpoint %s: tensor '%.200s' has dtype %s, which lat does not read: lat has no "
              "dtype that holds it (it reads " LAT_FILE_DTYPES_READ ")", path, e->name, s);
  else
    lat__fail("checkpoint %s: tensor '%.200s' has an unknown dtype '%.40s' (lat reads "
              LAT_FILE_DTYPES_READ ")", path, e->name, s);
  free(s);
  return -1;
}

static int parse_shape(lat_json *j, entry *e, const char *path) {
  if (!lat__json_expect(j, '[', "expected '[' to open a shape")) return -1;
  if (lat__json_eat(j, ']')) return 0;
  do {
    int64_t v = lat__json_uint(j);
    if (v < 0) return -1;
    if (e->ndim == LAT_MAX_DIMS)
      return lat__failc("checkpoint %s: tensor '%.200s' has more than %d dimensions", path,
                        e->name, LAT_MAX_DIMS);
    e->shape[e->ndim++] = v;
  } while (lat__json_eat(j, ','));
  return lat__json_expect(j, ']', "expected ',' or ']' in a shape") ? 0 : -1;
}

static int parse_offsets(lat_json *j, entry *e) {
  if (!lat__json_expect(j, '[', "expected '[' to open data_offsets")) return -1;
  e->begin = lat__json_uint(j);
  if (!lat__json_expect(j, ',', "data_offsets must hold two numbers")) return -1;
  e->end = lat__json_uint(j);
  if (!lat__json_expect(j, ']', "data_offsets must hold two numbers")) return -1;
  return 0;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, each key exactly once */
static int parse_entry(lat_json *j, entry *e, const char *path) {
  static const char *const KEYS[] = {"dtype", "shape", "data_offsets"};
  int seen[3] = {0};
  if (!lat__json_expect(j, '{', "expected '{' to open a tensor's description")) return -1;
  int empty = lat__json_eat(j, '}');
  if (!empty) do {
    char *key = lat__json_string(j);
    if (!key) return -1;
    int k = 0;
    while (k < 3 && strcmp(key, KEYS[k]) != 0) k++;
    if (k == 3 || seen[k]) {
      lat__fail(k == 3 ? "checkpoint %s: tensor '%.200s' has an unknown field '%.100s'"
                       : "checkpoint %s: tensor '%.200s' has the field '%.100s' twice",
                path, e->name, key);
      free(key);
      return -1;
    }
    free(key);
    seen[k] = 1;
    if (!lat__json_expect(j, ':', "expected ':' after a key")) return -1;
    int rc = k == 0 ? parse_dtype(j, e, path)
           : k == 1 ? parse_shape(j, e, path) : parse_offsets(j, e);
    if (rc != 0) return -1;
  } while (lat__json_eat(j, ','));
  if (!empty && !lat__json_expect(j, '}', "expected ',' or '}' in a tensor's description"))
    return -1;
  for (int k = 0; k < 3; k++)
    if (!seen[k])
      return lat__failc("checkpoint %s: tensor '%.200s' lacks the field '%s'", path, e->name,
                        KEYS[k]);
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* {"key": "value", ...}; every key once */
static int parse_metadata(lat_json *j, const char *path) {
  if (!lat__json_expect(j, '{', "__metadata__ must be an object of strings")) return -1;
  char **keys = NULL;
  int n = 0, cap = 0, rc = -1;
  int empty = lat__json_eat(j, '}');
  if (!empty) do {
    char *key = lat__json_string(j);
    if (!key) goto done;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      char **k2 = realloc(keys, (size_t)cap * sizeof *keys);
      if (!k2) { free(key); lat__fail("checkpoint %s: out of memory", path); goto done; }
      keys = k2;
    }
    keys[n++] = key;
    if (!lat__json_expect(j, ':', "expected ':' after a key")) goto done;
    lat__json_ws(j);
    if (!j->err && (j->pos >= j->n || j->s[j->pos] != '"')) {
      lat__fail("checkpoint %s: __metadata__ entry '%.200s' is not a string (safetensors metadata "
                "maps strings to strings)", path, key);
      goto done;
    }
    free(lat__json_string(j));
  } while (lat__json_eat(j, ','));
  if (!empty && !lat__json_expect(j, '}', "expected ',' or '}' in __metadata__")) goto done;
  if (n > 1) qsort(keys, (size_t)n, sizeof *keys, cmp_str);
  for (int k = 1; k < n; k++)
    if (strcmp(keys[k - 1], keys[k]) == 0) {
      lat__fail("checkpoint %s: __metadata__ has the key '%.200s' twice", path, keys[k]);
      goto done;
    }
  rc = 0;
done:
  for (int k = 0; k < n; k++) free(keys[k]);
  free(keys);
  return rc;
}

/* 0 if j has no syntax error, else -1 with the message (a semantic message may be set already) */
static int syntax(const lat_json *j, const char *path, int rc) {
  if (j->err)
    return lat__failc("checkpoint %s: bad header JSON at byte %zu of the header: %s", path,
                      j->at, j->err);
  return rc;
}

int lat__parse_metadata(const char *path, const char *s, size_t n) {
  lat_json j = {s, n, 0, NULL, 0};
  int rc = parse_metadata(&j, path);
  lat__json_ws(&j);
  if (j.err)
    return lat__failc("checkpoint %s: metadata: bad JSON at byte %zu: %s", path, j.at, j.err);
  if (rc == 0 && j.pos != n)
    return lat__failc("checkpoint %s: metadata: text after the object", path);
  return rc;
}

static int parse_header(const char *path, const char *s, size_t n, header *h) {
  lat_json j = {s, n, 0, NULL, 0};
  memset(h, 0, sizeof *h);
  lat__json_ws(&j);
  if (j.pos >= n || s[j.pos] != '{')
    return lat__failc("checkpoint %s: not a safetensors checkpoint: the header is not a JSON "
                      "object", path);
  j.pos++;
  int empty = lat__json_eat(&j, '}');
  if (!empty) do {
    char *name = lat__json_string(&j);
    if (!name || !lat__json_expect(&j, ':', "expected ':' after a key")) {
      free(name);
      goto fail;
    }
    if (strcmp(name, "__metadata__") == 0) {
      free(name);
      if (h->meta_end) {
        lat__fail("checkpoint %s: the header has __metadata__ twice", path);
        goto fail;
      }
      lat__json_ws(&j);
      h->meta_at = j.pos;
      if (parse_metadata(&j, path) != 0) goto fail;
      h->meta_end = j.pos;
      continue;
    }
    if (h->n == h->cap) {
      int cap = h->cap ? 2 * h->cap : 16;
      entry *e2 = realloc(h->e, (size_t)cap * sizeof *e2);
      if (!e2) {
        free(name);
        lat__fail("checkpoint %s: out of memory", path);
        goto fail;
      }
      h->e = e2, h->cap = cap;
    }
    entry *e = &h->e[h->n++];
    memset(e, 0, sizeof *e);
    e->name = name;
    if (parse_entry(&j, e, path) != 0) goto fail;
  } while (lat__json_eat(&j, ','));
  if (!empty && !lat__json_expect(&j, '}', "expected ',' or '}' after a tensor")) goto fail;
  lat__json_ws(&j);
  if (j.pos != n) {
    lat__fail("checkpoint %s: bad header JSON at byte %zu of the header: text after the closing "
              "'}'", path, j.pos);
    goto fail;
  }
  return 0;
fail:
  syntax(&j, path, -1);
  header_free(h);
  return -1;
}

/* ---------------------------------------------------------------- checking the layout */

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
  const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* Sorts h by name and checks each entry's size and that the entries tile the data section
 * [0, *total) without gaps or overlaps. data (-1 if unknown) is the data section's size, used to
 * tell an offset out of range from a hole. order receives the entries in offset order; *kept
 * gets the bytes the tensors take once converted to lat's dtypes (INT64_MAX if more). */
static int check_layout(const char *path, header *h, int64_t data, entry **order, int64_t *total,
                        int64_t *kept) {
  char b1[96];
  if (h->n > 1) qsort(h->e, (size_t)h->n, sizeof *h->e, cmp_name);
  *kept = 0;
  for (int k = 0; k < h->n; k++) {
    entry *e = &h->e[k];
    if (k > 0 && strcmp(h->e[k - 1].name, e->name) == 0)
      return lat__failc("checkpoint %s: the header names tensor '%.200s' twice", path, e->name);
    const lat_file_dtype *fd = &lat__file_dtypes[e->stored];
    int64_t bytes = fd->size, as_kept;
    for (int d = 0; d < e->ndim; d++)
      if (__builtin_mul_overflow(bytes, e->shape[d], &bytes))
        return lat__failc("checkpoint %s: tensor '%.200s' has shape %s, too large", path, e->name,
                          shape_str(e, b1, sizeof b1));
    if (__builtin_mul_overflow(bytes / fd->size, (int64_t)lat__dtype_size(fd->dtype), &as_kept) ||
        __builtin_add_overflow(*kept, as_kept, kept))
      *kept = INT64_MAX;
    if (e->end < e->begin)
      return lat__failc("checkpoint %s: tensor '%.200s': data_offsets [%lld, %lld] out of range: "
                        "the end comes before the beginning", path, e->name,
                        (long long)e->begin, (long long)e->end);
    if (e->end - e->begin != bytes)
      return lat__failc("checkpoint %s: tensor '%.200s': size mismatch: shape %s of %s needs %lld "
                        "bytes, data_offsets [%lld, %lld] hold %lld", path, e->name,
                        shape_str(e, b1, sizeof b1), fd->name, (long long)bytes,
                        (long long)e->begin, (long long)e->end, (long long)(e->end - e->begin));
    order[k] = e;
  }
  if (h->n > 1) qsort(order, (size_t)h->n, sizeof *order, cmp_offset);
  int64_t pos = 0;
  for (int k = 0; k < h->n; k++) {
    entry *e = order[k];
    if (e->begin < pos)
      return lat__failc("checkpoint %s: tensors '%.200s' and '%.200s' overlap: data_offsets [%lld, "
                        "%lld] and [%lld, %lld]", path, order[k - 1]->name, e->name,
                        (long long)order[k - 1]->begin, (long long)order[k - 1]->end,
                        (long long)e->begin, (long long)e->end);
    if (e->begin > pos && data >= 0 && e->end > data)
      return lat__failc("checkpoint %s: tensor '%.200s': data_offsets [%lld, %lld] out of range: "
                        "the data section has %lld bytes", path, e->name, (long long)e->begin,
                        (long long)e->end, (long long)data);
    if (e->begin > pos)
      return lat__failc("checkpoint %s: bytes %lld to %lld of the data belong to no tensor (tensor "
                        "'%.200s' starts at %lld)", path, (long long)pos, (long long)e->begin,
                        e->name, (long long)e->begin);
    pos = e->end;
  }
  *total = pos;
  return 0;
}

/* Parses and checks a header the writer made; 0 if a reader would accept it. */
int lat__check_header(const char *path, const char *s, size_t n) {
  header h;
  if (parse_header(path, s, n, &h) != 0) return -1;
  entry **order = malloc(((size_t)h.n + 1) * sizeof *order);
  int64_t total = 0, kept = 0;
  int rc = order ? check_layout(path, &h, -1, order, &total, &kept)
                 : lat__failc("checkpoint %s: out of memory", path);
  free(order);
  header_free(&h);
  return rc;
}

/* ---------------------------------------------------------------- loading */

static lat_checkpoint *fail_load(lat_source *src, header *h, entry **order, lat_tensor **ts,
                                 char *text) {
  if (ts && h)
    for (int k = 0; k < h->n; k++) lat_release(ts[k]);
  free(ts);
  free(order);
  if (h) header_free(h);
  free(text);
  lat__source_close(src);
  return NULL;
}

static lat_checkpoint *truncated(const char *path, int64_t want, int64_t have) {
  return lat__fail("checkpoint %s: truncated: header says %lld bytes of data, file has %lld", path,
                   (long long)want, (long long)have);
}

/* bytes left in src after what was read, counted up to a limit */
static int64_t count_rest(lat_source *src) {
  char buf[4096];
  int64_t n = 0, r = 0;
  while (n < ((int64_t)1 << 26) && (r = lat__source_read(src, buf, sizeof buf)) > 0) n += r;
  return r < 0 ? -1 : n;
}

enum { STAGE_BYTES = 1 << 16 }; /* a whole number of values of every stored dtype */

/* Reads tensor e's bytes (the next in src) into t, converting them from the stored dtype
 * through stage (STAGE_BYTES) where the two differ. total is for the message of a truncation. */
static int read_tensor(lat_source *src, const char *path, const entry *e, lat_tensor *t,
                       void *stage, int64_t total) {
  int64_t want = e->end - e->begin, done = 0;
  const lat_file_dtype *fd = &lat__file_dtypes[e->stored];
  int convert = e->stored != fd->dtype;
  while (done < want) {
    int64_t n = !convert ? want : want - done < STAGE_BYTES ? want - done : STAGE_BYTES;
    int64_t got = lat__source_read(src, convert ? stage : t->data, n);
    if (got < 0) return -1;
    if (got < n) return truncated(path, total, e->begin + done + got), -1;
    if (convert) {
      int64_t first = done / fd->size, count = n / fd->size;
      void *out = (char *)t->data + first * (int64_t)lat__dtype_size(fd->dtype);
      int64_t bad = lat__decode_values(e->stored, out, stage, count);
      if (bad >= 0) {
        char why[200];
        lat__bad_value(e->stored, stage, bad, first + bad, why, sizeof why);
        return lat__failc("checkpoint %s: tensor '%.200s' (%s): %s", path, e->name, fd->name,
                          why);
      }
    }
    done += n;
  }
  return 0;
}

lat_checkpoint *lat_load_safetensors(const char *path) {
  if (!path) return lat__fail("checkpoint: path is NULL");
  lat_source *src = lat__source_open(path);
  if (!src) return NULL;
  int64_t size = lat__source_size(src);
  unsigned char len8[8];
  int64_t got = lat__source_read(src, len8, 8);
  if (got < 0) return fail_load(src, NULL, NULL, NULL, NULL);
  if (got < 8) {
    lat__fail("checkpoint %s: not a safetensors checkpoint: %lld bytes, too short for the 8-byte "
              "header length", path, (long long)got);
    return fail_load(src, NULL, NULL, NULL, NULL);
  }
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; k--) hlen = hlen << 8 | len8[k];
  if (hlen > MAX_HEADER) {
    lat__fail("checkpoint %s: not a safetensors checkpoint: the header length (the first 8 bytes) "
              "would be %llu bytes, more than the %d that safetensors allows", path,
              (unsigned long long)hlen, MAX_HEADER);
    return fail_load(src, NULL, NULL, NULL, NULL);
  }
  if (size >= 0 && hlen > (uint64_t)size - 8) {
    lat__fail("checkpoint %s: not a safetensors checkpoint, or truncated: the header length (the "
              "first 8 bytes) is %llu bytes, but the file has %lld", path,
              (unsigned long long)hlen, (long long)size);
    return fail_load(src, NULL, NULL, NULL, NULL);
  }
  char *text = malloc(hlen + 1);
  if (!text) {
    lat__fail("checkpoint %s: out of memory for a header of %llu bytes", path,
              (unsigned long long)hlen);
    return fail_load(src, NULL, NULL, NULL, NULL);
  }
  got = lat__source_read(src, text, (int64_t)hlen);
  if (got < 0) return fail_load(src, NULL, NULL, NULL, text);
  if (got < (int64_t)hlen) {
    lat__fail("checkpoint %s: truncated: the header length says %llu bytes of header, the file "
              "has %lld after the first 8", path, (unsigned long long)hlen, (long long)got);
    return fail_load(src, NULL, NULL, NULL, text);
  }
  text[hlen] = 0;
  header h;
  if (parse_header(path, text, hlen, &h) != 0) return fail_load(src, NULL, NULL, NULL, text);
  entry **order = malloc(((size_t)h.n + 1) * sizeof *order);
  lat_tensor **ts = calloc((size_t)h.n + 1, sizeof *ts);
  int64_t data = size >= 0 ? size - 8 - (int64_t)hlen : -1, total = 0, kept = 0;
  if (!order || !ts) {
    lat__fail("checkpoint %s: out of memory", path);
    return fail_load(src, &h, order, ts, text);
  }
  if (check_layout(path, &h, data, order, &total, &kept) != 0)
    return fail_load(src, &h, order, ts, text);
  if (lat__source_check(src, 8 + (int64_t)hlen + total) != 0)
    return fail_load(src, &h, order, ts, text);
  /* converted to lat's dtypes, the tensors may take more memory than the file (F16: twice) */
  char who[300];
  snprintf(who, sizeof who, "checkpoint %.250s", path);
  if (kept > total && lat__check_decoded(who, kept, 0, 0) != 0)
    return fail_load(src, &h, order, ts, text);
  if (data >= 0 && data < total) {
    truncated(path, total, data);
    return fail_load(src, &h, order, ts, text);
  }
  if (data > total) {
    lat__fail("checkpoint %s: %lld bytes after the last tensor's data (the header accounts for "
              "%lld)", path, (long long)(data - total), (long long)total);
    return fail_load(src, &h, order, ts, text);
  }
  /* read the tensors in file order; ts is indexed like h.e (name order) */
  void *stage = NULL;
  for (int k = 0; k < h.n; k++) {
    entry *e = order[k];
    int dtype = lat__file_dtypes[e->stored].dtype;
    lat_tensor *t = lat__new(dtype, e->ndim, e->shape);
    if (!t) {
      char why[256];
      snprintf(why, sizeof why, "%s", lat_error());
      lat__fail("checkpoint %s: tensor '%.200s': %s", path, e->name, why);
      free(stage);
      return fail_load(src, &h, order, ts, text);
    }
    ts[e - h.e] = t;
    if (e->stored != dtype && !stage && !(stage = malloc(STAGE_BYTES))) {
      lat__fail("checkpoint %s: out of memory", path);
      return fail_load(src, &h, order, ts, text);
    }
    if (read_tensor(src, path, e, t, stage, total) != 0) {
      free(stage);
      return fail_load(src, &h, order, ts, text);
    }
  }
  free(stage);
  if (data < 0) {
    int64_t rest = count_rest(src);
    if (rest < 0) return fail_load(src, &h, order, ts, text);
    if (rest > 0) {
      lat__fail("checkpoint %s: %s%lld bytes after the last tensor's data (the header accounts "
                "for %lld)", path, rest >= ((int64_t)1 << 26) ? "at least " : "", (long long)rest,
                (long long)total);
      return fail_load(src, &h, order, ts, text);
    }
  }
  lat_checkpoint *c = calloc(1, sizeof *c);
  char **names = calloc((size_t)h.n + 1, sizeof *names);
  int *stored = calloc((size_t)h.n + 1, sizeof *stored);
  char *meta = h.meta_end ? strndup(text + h.meta_at, h.meta_end - h.meta_at) : strdup("{}");
  if (!c || !names || !stored || !meta) {
    free(c), free(names), free(stored), free(meta);
    lat__fail("checkpoint %s: out of memory", path);
    return fail_load(src, &h, order, ts, text);
  }
  for (int k = 0; k < h.n; k++) {
    names[k] = h.e[k].name, h.e[k].name = NULL;
    stored[k] = h.e[k].stored;
  }
  c->n = h.n, c->names = names, c->tensors = ts, c->stored = stored, c->metadata = meta;
  fail_load(src, &h, order, NULL, text); /* frees what is not kept */
  return c;
}

int lat_checkpoint_count(const lat_checkpoint *c) { return c ? c->n : 0; }

const char *lat_checkpoint_name(const lat_checkpoint *c, int i) {
  if (!c || i < 0 || i >= c->n) return lat__fail("checkpoint: no tensor number %d", i);
  return c->names[i];
}

lat_tensor *lat_checkpoint_tensor(const lat_checkpoint *c, int i) {
  if (!c || i < 0 || i >= c->n) return lat__fail("checkpoint: no tensor number %d", i);
  return lat_retain(c->tensors[i]);
}

const char *lat_checkpoint_stored_dtype(const lat_checkpoint *c, int i) {
  if (!c || i < 0 || i >= c->n) return lat__fail("checkpoint: no tensor number %d", i);
  return lat__file_dtypes[c->stored[i]].name;
}

const char *lat_checkpoint_metadata(const lat_checkpoint *c) { return c ? c->metadata : "{}"; }

void lat_checkpoint_free(lat_checkpoint *c) {
  if (!c) return;
  for (int k = 0; k < c->n; k++) {
    free(c->names[k]);
    lat_release(c->tensors[k]);
  }
  free(c->names);
  free(c->tensors);
  free(c->stored);
  free(c->metadata);
  free(c);
}
