/* io_shard_index.c: the index of a sharded checkpoint (model.safetensors.index.json, as Hugging
 * Face writes it: {"metadata": {...}, "weight_map": {"tensor": "shard file", ...}}) read as
 * hostile input. Loading the shards it names is lat.load's (lua/lat/io/init.lua). */
#include "io.h"
#include <stdlib.h>
#include <string.h>

enum { MAX_INDEX = 100000000, MAX_DEPTH = 64 };

typedef struct {
  char *tensor, *shard;
} shard_entry;

struct lat_shard_index {
  int n, cap;
  shard_entry *e; /* in tensor-name order */
  char *metadata; /* JSON text */
};

void lat_shard_index_free(lat_shard_index *x) {
  if (!x) return;
  for (int k = 0; k < x->n; k++) free(x->e[k].tensor), free(x->e[k].shard);
  free(x->e);
  free(x->metadata);
  free(x);
}

/* a shard is a file beside the index: a name, not a path that could lead elsewhere */
static int check_shard_name(const char *path, const shard_entry *e) {
  const char *f = e->shard;
  if (!*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0)
    return lat__failc("checkpoint index %s: tensor '%.200s' is in shard '%.200s', which is not "
                      "the name of a file beside the index", path, e->tensor, f);
  return 0;
}

static int by_tensor(const void *a, const void *b) {
  return strcmp(((const shard_entry *)a)->tensor, ((const shard_entry *)b)->tensor);
}

/* {"tensor": "shard", ...} */
static int parse_weight_map(lat_json *j, const char *path, lat_shard_index *x) {
  if (!lat__json_expect(j, '{', "weight_map must be an object of tensor -> shard file")) return -1;
  int empty = lat__json_eat(j, '}');
  if (!empty) do {
    if (x->n == x->cap) {
      int cap = x->cap ? 2 * x->cap : 64;
      shard_entry *e2 = realloc(x->e, (size_t)cap * sizeof *e2);
      if (!e2) return lat__failc("checkpoint index %s: out of memory", path);
      x->e = e2, x->cap = cap;
    }
    shard_entry *e = &x->e[x->n];
    e->tensor = lat__json_string(j);
    if (!e->tensor) return -1;
    e->shard = NULL;
    x->n++;
    if (!lat__json_expect(j, ':', "expected ':' after a key")) return -1;
    lat__json_ws(j);
    if (!j->err && (j->pos >= j->n || j->s[j->pos] != '"'))
      return lat__failc("checkpoint index %s: weight_map gives tensor '%.200s' no shard file "
                        "name (a string)", path, e->tensor);
    if (!(e->shard = lat__json_string(j))) return -1;
    if (check_shard_name(path, e) != 0) return -1;
  } while (lat__json_eat(j, ','));
  if (!empty && !lat__json_expect(j, '}', "expected ',' or '}' in weight_map")) return -1;
  if (x->n > 1) qsort(x->e, (size_t)x->n, sizeof *x->e, by_tensor);
  for (int k = 1; k < x->n; k++)
    if (strcmp(x->e[k - 1].tensor, x->e[k].tensor) == 0)
      return lat__failc("checkpoint index %s: weight_map names tensor '%.200s' twice", path,
                        x->e[k].tensor);
  return 0;
}

static int parse_index(lat_json *j, const char *path, lat_shard_index *x) {
  int seen_map = 0;
  if (!lat__json_expect(j, '{', "the index is not a JSON object")) return -1;
  int empty = lat__json_eat(j, '}');
  if (!empty) do {
    char *key = lat__json_string(j);
    if (!key || !lat__json_expect(j, ':', "expected ':' after a key")) {
      free(key);
      return -1;
    }
    int is_map = strcmp(key, "weight_map") == 0, is_meta = strcmp(key, "metadata") == 0;
    free(key);
    if ((is_map && seen_map) || (is_meta && x->metadata))
      return lat__failc("checkpoint index %s: the index has '%s' twice", path,
                        is_map ? "weight_map" : "metadata");
    if (is_map) {
      seen_map = 1;
      if (parse_weight_map(j, path, x) != 0) return -1;
    } else if (is_meta) {
      lat__json_ws(j);
      size_t at = j->pos;
      if (!j->err && (at >= j->n || j->s[at] != '{'))
        return lat__failc("checkpoint index %s: its metadata is not a JSON object", path);
      if (!lat__json_skip(j, MAX_DEPTH)) return -1;
      if (!(x->metadata = strndup(j->s + at, j->pos - at)))
        return lat__failc("checkpoint index %s: out of memory", path);
    } else if (!lat__json_skip(j, MAX_DEPTH)) { /* other keys are not lat's business */
      return -1;
    }
  } while (lat__json_eat(j, ','));
  if (!empty && !lat__json_expect(j, '}', "expected ',' or '}' in the index")) return -1;
  lat__json_ws(j);
  if (!j->err && j->pos != j->n)
    return lat__failc("checkpoint index %s: text after the index's closing '}'", path);
  if (!j->err && !seen_map)
    return lat__failc("checkpoint index %s: no weight_map (the object that names each tensor's "
                      "shard file)", path);
  return 0;
}

lat_shard_index *lat__parse_shard_index(const char *path, const char *s, size_t n) {
  lat_json j = {s, n, 0, NULL, 0};
  lat_shard_index *x = calloc(1, sizeof *x);
  if (!x) return lat__fail("checkpoint index %s: out of memory", path);
  int rc = parse_index(&j, path, x);
  if (j.err)
    lat__fail("checkpoint index %s: bad JSON at byte %zu: %s", path, j.at, j.err);
  if (rc == 0 && !j.err && !x->metadata && !(x->metadata = strdup("{}"))) {
    lat__fail("checkpoint index %s: out of memory", path);
    rc = -1;
  }
  if (rc != 0 || j.err) {
    lat_shard_index_free(x);
    return NULL;
  }
  return x;
}

lat_shard_index *lat_read_shard_index(const char *path) {
  if (!path) return lat__fail("checkpoint index: path is NULL");
  lat_source *src = lat__source_open(path);
  if (!src) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *text = malloc(cap);
  lat_shard_index *x = NULL;
  if (!text) {
    lat__fail("checkpoint index %s: out of memory", path);
    goto done;
  }
  for (;;) {
    if (n > MAX_INDEX) {
      lat__fail("checkpoint index %s: more than %d bytes, too large for an index", path,
                MAX_INDEX);
      goto done;
    }
    if (n == cap) {
      char *t2 = realloc(text, cap * 2);
      if (!t2) {
        lat__fail("checkpoint index %s: out of memory", path);
        goto done;
      }
      text = t2, cap *= 2;
    }
    int64_t got = lat__source_read(src, text + n, (int64_t)(cap - n));
    if (got < 0) goto done;
    if (got == 0) break;
    n += (size_t)got;
  }
  x = lat__parse_shard_index(path, text, n);
done:
  free(text);
  lat__source_close(src);
  return x;
}

int lat_shard_index_count(const lat_shard_index *x) { return x ? x->n : 0; }

const char *lat_shard_index_tensor(const lat_shard_index *x, int i) {
  if (!x || i < 0 || i >= x->n) return lat__fail("checkpoint index: no entry number %d", i);
  return x->e[i].tensor;
}

const char *lat_shard_index_shard(const lat_shard_index *x, int i) {
  if (!x || i < 0 || i >= x->n) return lat__fail("checkpoint index: no entry number %d", i);
  return x->e[i].shard;
}

const char *lat_shard_index_metadata(const lat_shard_index *x) { return x ? x->metadata : "{}"; }
