/* ops_index.c: indexing ops (embedding, gather, index_select) whose backward scatter-adds, and
 * training-mode dropout. Index tensors are int32 and every value is checked before any read;
 * messages name positions and dimensions counting from 1 (as in Lua), index values from 0. */
#include "internal.h"
#include <stdio.h>
#include <string.h>

/* ---- shared checks ---- */

/* "[2, 3]": the position of flat element k of a tensor of this shape, counting from 1 */
static const char *pos_str(const lat_tensor *t, int64_t k, char *buf, size_t n) {
  int64_t idx[LAT_MAX_DIMS];
  for (int d = t->ndim - 1; d >= 0; d--) {
    int64_t s = t->shape_[d] ? t->shape_[d] : 1;
    idx[d] = k % s;
    k /= s;
  }
  size_t w = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < t->ndim && w < n; d++)
    w += (size_t)snprintf(buf + w, n - w, d ? ", %lld" : "%lld", (long long)idx[d] + 1);
  if (w < n) snprintf(buf + w, n - w, "]");
  return buf;
}
#define POS(t, k) pos_str((t), (k), (char[96]){0}, 96)

static bool check_index(const lat_tensor *t, const char *op, const char *arg) {
  if (!t) return lat__fail("%s: %s is nil", op, arg), false;
  if (t->dtype_ != LAT_I32)
    return lat__fail("%s: %s must be an int32 tensor, got %s %s", op, arg,
                     lat__dtype_name(t->dtype_), SHAPE(t)), false;
  return true;
}

/* the first value of index outside [0, size), or -1 if all are inside */
static int64_t first_bad(const lat_tensor *index, int64_t size) {
  const int32_t *v = index->i;
  for (int64_t k = 0; k < index->numel_; k++)
    if (v[k] < 0 || (int64_t)v[k] >= size) return k;
  return -1;
}

/* t viewed as [outer, t->shape_[dim], inner] */
static void split3(const lat_tensor *t, int dim, int64_t *outer, int64_t *inner) {
  *outer = lat__prod(t->shape_, dim);
  *inner = lat__prod(t->shape_ + dim + 1, t->ndim - dim - 1);
}

/* A private copy of an index for backward, so that later writes to the caller's tensor can
 * neither change the gradient nor send the scatter out of bounds. */
static lat_tensor *keep_index(lat_node *n, lat_tensor *index) {
  if (!n) return index;
  n->saved[0] = lat_clone(index);
  return n->saved[0];
}

/* what gather's and index_select's nodes keep besides the copy of the index */
typedef struct {
  int dim; /* the dimension indexed, from 0 */
} index_saved;

/* y's node for gather and index_select (float32 inputs only): the dim and a copy of the index */
static lat_tensor *record_indexed(lat_tensor *y, lat_tensor *x, const char *name,
                                  lat_backward_fn bw, int d, lat_tensor *index) {
  if (x->dtype_ != LAT_F32) return y;
  lat_node *n = lat__record(y, name, bw, 1, &x);
  if (n) {
    LAT_NODE_STATE(n, index_saved)->dim = d;
    if (!keep_index(n, index)) {
      lat_release(y);
      return NULL;
    }
  }
  return y;
}

/* ---- embedding ---- */

static int embedding_backward(lat_node *n, const lat_tensor *gout) {
  const lat_tensor *w = n->in[0], *ids = n->saved[0];
  int64_t D = w->shape_[1];
  bool acc;
  float *gw = lat__grad_buf(n, 0, &acc);
  if (!gw) return -1;
  if (!acc) memset(gw, 0, (size_t)w->numel_ * sizeof(float));
  for (int64_t k = 0; k < ids->numel_; k++) {
    float *dst = gw + (int64_t)ids->i[k] * D;
    const float *src = gout->f + k * D;
    for (int64_t j = 0; j < D; j++) dst[j] += src[j];
  }
  return 0;
}

lat_tensor *lat_embedding(lat_tensor *weight, lat_tensor *ids) {
  if (!lat__check_f32(weight, "embedding", "weight") || !check_index(ids, "embedding", "ids"))
    return NULL;
  if (weight->ndim != 2)
    return lat__fail("embedding: weight must be [vocabulary, dim], got %s", SHAPE(weight));
  if (ids->ndim + 1 > LAT_MAX_DIMS)
    return lat__fail("embedding: ids %s have too many dimensions (at most %d)", SHAPE(ids),
                     LAT_MAX_DIMS - 1);
  int64_t V = weight->shape_[0], D = weight->shape_[1];
  int64_t bad = first_bad(ids, V);
  if (bad >= 0)
    return lat__fail("embedding: ids%s = %d is out of range for a weight of shape %s: ids must "
                     "be in 0..%lld (ids have shape %s; positions count from 1)", POS(ids, bad),
                     ids->i[bad], SHAPE(weight), (long long)V - 1, SHAPE(ids));
  int64_t shape[LAT_MAX_DIMS];
  memcpy(shape, ids->shape_, (size_t)ids->ndim * sizeof *shape);
  shape[ids->ndim] = D;
  lat_tensor *y = lat__new(LAT_F32, ids->ndim + 1, shape);
  if (!y) return NULL;
  int64_t n = ids->numel_;
  #pragma omp parallel for if (n * D > LAT_PAR_MIN && n > 1)
  for (int64_t k = 0; k < n; k++)
    memcpy(y->f + k * D, weight->f + (int64_t)ids->i[k] * D, (size_t)D * sizeof(float));
  lat_node *node = lat__record(y, "embedding", embedding_backward, 1, &weight);
  if (node && !keep_index(node, ids)) {
    lat_release(y);
    return NULL;
  }
  return y;
}

/* ---- gather ---- */

/* Walk every element of index (same ndim as x, each size at most x's outside dim); call body
 * with k = flat position in index and off = x's offset without the dim term. */
#define GATHER_WALK(x, index, dim, xst, body)                                                  \
  do {                                                                                         \
    int nd_ = (index)->ndim;                                                                   \
    int64_t idx_[LAT_MAX_DIMS] = {0}, base_ = 0;                                               \
    for (int64_t k = 0; k < (index)->numel_; k++) {                                            \
      int64_t off = base_;                                                                     \
      body;                                                                                    \
      for (int d_ = nd_ - 1; d_ >= 0; d_--) {                                                  \
        int64_t st_ = d_ == (dim) ? 0 : (xst)[d_];                                             \
        if (++idx_[d_] < (index)->shape_[d_]) {                                                \
          base_ += st_;                                                                        \
          break;                                                                               \
        }                                                                                      \
        base_ -= st_ * (idx_[d_] - 1);                                                         \
        idx_[d_] = 0;                                                                          \
      }                                                                                        \
    }                                                                                          \
  } while (0)

static void strides(const lat_tensor *t, int64_t *st) {
  int64_t s = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    st[d] = s;
    s *= t->shape_[d];
  }
}

static int gather_backward(lat_node *n, const lat_tensor *gout) {
  const lat_tensor *x = n->in[0], *index = n->saved[0];
  int dim = LAT_NODE_STATE(n, index_saved)->dim;
  int64_t xst[LAT_MAX_DIMS];
  strides(x, xst);
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  if (!acc) memset(gx, 0, (size_t)x->numel_ * sizeof(float));
  const int32_t *v = index->i;
  const float *g = gout->f;
  GATHER_WALK(x, index, dim, xst, gx[off + (int64_t)v[k] * xst[dim]] += g[k]);
  return 0;
}

lat_tensor *lat_gather(lat_tensor *x, int dim, lat_tensor *index) {
  if (!x) return lat__fail("gather: input is nil");
  if (!check_index(index, "gather", "index")) return NULL;
  int d = lat__norm_dim(x, dim, "gather");
  if (d < 0) return NULL;
  bool ok = index->ndim == x->ndim;
  for (int j = 0; ok && j < x->ndim; j++) ok = j == d || index->shape_[j] <= x->shape_[j];
  if (!ok)
    return lat__fail("gather: index %s does not fit input %s along dimension %d: it needs the "
                     "same number of dimensions, and in every other dimension a size no larger "
                     "than the input's", SHAPE(index), SHAPE(x), d + 1);
  int64_t bad = first_bad(index, x->shape_[d]);
  if (bad >= 0)
    return lat__fail("gather: index%s = %d is out of range for dimension %d of input %s: values "
                     "must be in 0..%lld (index has shape %s; positions and dimensions count "
                     "from 1)", POS(index, bad), index->i[bad], d + 1, SHAPE(x),
                     (long long)x->shape_[d] - 1, SHAPE(index));
  lat_tensor *y = lat__new(x->dtype_, index->ndim, index->shape_);
  if (!y) return NULL;
  int64_t xst[LAT_MAX_DIMS];
  strides(x, xst);
  const int32_t *v = index->i;
  if (x->dtype_ == LAT_U8) {
    const uint8_t *src = x->u;
    uint8_t *dst = y->u;
    GATHER_WALK(x, index, d, xst, dst[k] = src[off + (int64_t)v[k] * xst[d]]);
  } else { /* float32 and int32 alike: copy 4-byte words */
    const uint32_t *src = x->data;
    uint32_t *dst = y->data;
    GATHER_WALK(x, index, d, xst, dst[k] = src[off + (int64_t)v[k] * xst[d]]);
  }
  return record_indexed(y, x, "gather", gather_backward, d, index);
}

/* ---- index_select ---- */

static int index_select_backward(lat_node *n, const lat_tensor *gout) {
  const lat_tensor *x = n->in[0], *index = n->saved[0];
  int dim = LAT_NODE_STATE(n, index_saved)->dim;
  int64_t outer, inner, size = x->shape_[dim], m = index->numel_;
  split3(x, dim, &outer, &inner);
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  if (!acc) memset(gx, 0, (size_t)x->numel_ * sizeof(float));
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < m; j++) {
      float *dst = gx + (o * size + index->i[j]) * inner;
      const float *src = gout->f + (o * m + j) * inner;
      for (int64_t i = 0; i < inner; i++) dst[i] += src[i];
    }
  return 0;
}

lat_tensor *lat_index_select(lat_tensor *x, int dim, lat_tensor *index) {
  if (!x) return lat__fail("index_select: input is nil");
  if (!check_index(index, "index_select", "index")) return NULL;
  int d = lat__norm_dim(x, dim, "index_select");
  if (d < 0) return NULL;
  if (index->ndim > 1)
    return lat__fail("index_select: index must have one dimension, got %s", SHAPE(index));
  int64_t bad = first_bad(index, x->shape_[d]);
  if (bad >= 0)
    return lat__fail("index_select: index[%lld] = %d is out of range for dimension %d of input "
                     "%s: values must be in 0..%lld (positions and dimensions count from 1)",
                     (long long)bad + 1, index->i[bad], d + 1, SHAPE(x),
                     (long long)x->shape_[d] - 1);
  int64_t shape[LAT_MAX_DIMS], outer, inner, size = x->shape_[d], m = index->numel_;
  memcpy(shape, x->shape_, sizeof shape);
  shape[d] = m;
  lat_tensor *y = lat__new(x->dtype_, x->ndim, shape);
  if (!y) return NULL;
  split3(x, d, &outer, &inner);
  size_t es = lat__dtype_size(x->dtype_), row = (size_t)inner * es;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < m; j++)
      memcpy((char *)y->data + (size_t)(o * m + j) * row,
             (const char *)x->data + (size_t)(o * size + index->i[j]) * row, row);
  return record_indexed(y, x, "index_select", index_select_backward, d, index);
}

/* ---- dropout ---- */

/* saved[0] is the mask with the scale folded in: 1/(1-p) where kept, 0 where dropped */
static int dropout_backward(lat_node *n, const lat_tensor *gout) {
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  const float *restrict g = gout->f, *restrict m = n->saved[0]->f;
  int64_t cnt = gout->numel_;
  #pragma omp parallel for simd if (parallel : cnt > LAT_PAR_MIN)
  for (int64_t k = 0; k < cnt; k++) gx[k] = acc ? gx[k] + g[k] * m[k] : g[k] * m[k];
  return 0;
}

lat_tensor *lat_dropout(lat_tensor *x, double p, lat_rng *rng) {
  if (!lat__check_f32(x, "dropout", "input")) return NULL;
  if (!rng) return lat__fail("dropout: generator is nil");
  if (!(p >= 0 && p <= 1))
    return lat__fail("dropout: probability %g is not in [0, 1]", p);
  lat_tensor *mask = lat__new_like(x);
  if (!mask) return NULL;
  /* keep with probability 1 - p, drawn as lat_bernoulli_ draws, then scale */
  if (lat_bernoulli_(mask, rng, 1.0 - p)) {
    lat_release(mask);
    return NULL;
  }
  float scale = p < 1 ? (float)(1.0 / (1.0 - p)) : 0.0f;
  int64_t cnt = x->numel_;
  lat_tensor *y = lat__new_like(x);
  if (!y) {
    lat_release(mask);
    return NULL;
  }
  float *restrict m = mask->f, *restrict out = y->f;
  const float *restrict in = x->f;
  #pragma omp parallel for simd if (parallel : cnt > LAT_PAR_MIN)
  for (int64_t k = 0; k < cnt; k++) {
    m[k] *= scale;
    out[k] = in[k] * m[k];
  }
  lat_node *n = lat__record(y, "dropout", dropout_backward, 1, &x);
  if (n) n->saved[0] = mask;
  else lat_release(mask);
  return y;
}
