/* ops_shape.c: layout ops. reshape and narrow along the first dimension are views (shared
 * storage); permute, transpose, expand, cat and other narrows copy (in-place writes into such a
 * narrow are refused). All are differentiable. */
#include "internal.h"
#include <string.h>

/* ---- reshape ---- */

static int reshape_backward(lat_node *n, const lat_tensor *gout) {
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  if (acc)
    for (int64_t k = 0; k < gout->numel_; k++) gx[k] += gout->f[k];
  else memcpy(gx, gout->f, (size_t)gout->numel_ * sizeof(float));
  return 0;
}

lat_tensor *lat_reshape(lat_tensor *t, int ndim, const int64_t *shape) {
  if (!t) return lat__fail("reshape: tensor is nil");
  if (ndim < 0 || ndim > LAT_MAX_DIMS)
    return lat__fail("reshape: a tensor has 0 to %d dimensions, got %d", LAT_MAX_DIMS, ndim);
  int64_t s[LAT_MAX_DIMS], known = 1;
  int infer = -1;
  for (int d = 0; d < ndim; d++) {
    s[d] = shape[d];
    if (s[d] == -1) {
      if (infer >= 0) return lat__fail("reshape: only one dimension can be -1");
      infer = d;
    } else if (s[d] < 0) {
      return lat__fail("reshape: invalid size %lld", (long long)s[d]);
    } else if (__builtin_mul_overflow(known, s[d], &known)) {
      return lat__fail("reshape: cannot reshape %s to a shape of more than 2^63 elements",
                       SHAPE(t));
    }
  }
  if (infer >= 0) {
    if (known == 0 || t->numel_ % known)
      return lat__fail("reshape: cannot infer the -1 dimension reshaping %s (%lld elements)",
                       SHAPE(t), (long long)t->numel_);
    s[infer] = t->numel_ / known;
    known *= s[infer];
  }
  if (known != t->numel_) {
    lat_tensor want = {.ndim = ndim};
    memcpy(want.shape_, s, (size_t)ndim * sizeof *s);
    return lat__fail("reshape: cannot reshape %s (%lld elements) to %s (%lld elements)", SHAPE(t),
                     (long long)t->numel_, SHAPE(&want), (long long)known);
  }
  lat_tensor *v = lat__view(t, 0, ndim, s);
  lat_node *n = v && t->dtype_ == LAT_F32 ? lat__record(v, "reshape", reshape_backward, 1, &t) : NULL;
  if (n) n->inputs_unread = true;
  return v;
}

/* ---- narrow ---- */

/* t viewed as [outer, size, inner] around dim */
static void split3(const lat_tensor *t, int dim, int64_t *outer, int64_t *inner) {
  *outer = lat__prod(t->shape_, dim);
  *inner = lat__prod(t->shape_ + dim + 1, t->ndim - dim - 1);
}

typedef struct {
  int dim;              /* from 0 */
  int64_t start, length;
} narrow_saved;

static int narrow_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0];
  const narrow_saved *arg = LAT_NODE_STATE(n, narrow_saved);
  int dim = arg->dim;
  int64_t start = arg->start, len = arg->length, outer, inner;
  split3(x, dim, &outer, &inner);
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  if (!acc) memset(gx, 0, (size_t)x->numel_ * sizeof(float));
  int64_t size = x->shape_[dim];
  for (int64_t o = 0; o < outer; o++) {
    float *dst = gx + (o * size + start) * inner;
    const float *src = gout->f + o * len * inner;
    for (int64_t k = 0; k < len * inner; k++) dst[k] += src[k];
  }
  return 0;
}

lat_tensor *lat_narrow(lat_tensor *t, int dim, int64_t start, int64_t length) {
  if (!t) return lat__fail("narrow: tensor is nil");
  int d = lat__norm_dim(t, dim, "narrow");
  if (d < 0) return NULL;
  if (start < 0 || length < 0 || start + length > t->shape_[d])
    return lat__fail("narrow: elements %lld to %lld (counting from 1; %lld to %lld from 0) do "
                     "not fit dimension %d (counting from 1) of size %lld in a tensor of shape %s",
                     (long long)start + 1, (long long)(start + length), (long long)start,
                     (long long)(start + length - 1), d + 1, (long long)t->shape_[d], SHAPE(t));
  int64_t shape[LAT_MAX_DIMS], outer, inner;
  memcpy(shape, t->shape_, sizeof shape);
  shape[d] = length;
  split3(t, d, &outer, &inner);
  lat_tensor *y;
  if (outer == 1) {
    y = lat__view(t, start * inner, t->ndim, shape);
  } else {
    y = lat__new(t->dtype_, t->ndim, shape);
    if (!y) return NULL;
    y->narrow_copy_ = 1; /* so that in-place writes, which would not reach t, are refused */
    size_t es = lat__dtype_size(t->dtype_);
    for (int64_t o = 0; o < outer; o++)
      memcpy((char *)y->data + (size_t)(o * length * inner) * es,
             (char *)t->data + (size_t)((o * t->shape_[d] + start) * inner) * es,
             (size_t)(length * inner) * es);
  }
  if (!y || t->dtype_ != LAT_F32) return y;
  lat_node *n = lat__record(y, "narrow", narrow_backward, 1, &t);
  if (n) {
    n->inputs_unread = true;
    *LAT_NODE_STATE(n, narrow_saved) = (narrow_saved){.dim = d, .start = start, .length = length};
  }
  return y;
}

/* ---- permute ---- */

/* dst[i_perm] = src[i]: generic strided copy of src (shape) into the permuted layout */
static void permute_copy(void *dst, const void *src, size_t es, int nd, const int64_t *shape,
                         const int *perm, bool accumulate) {
  int64_t sst[LAT_MAX_DIMS] = {0}, dshape[LAT_MAX_DIMS] = {0}, st[LAT_MAX_DIMS] = {0};
  int64_t s = 1;
  for (int d = nd - 1; d >= 0; d--) {
    sst[d] = s;
    s *= shape[d];
  }
  for (int d = 0; d < nd; d++) {
    dshape[d] = shape[perm[d]];
    st[d] = sst[perm[d]]; /* src stride when walking dst dimension d */
  }
  int64_t total = s, inner = nd ? dshape[nd - 1] : 1, in_st = nd ? st[nd - 1] : 1;
  int64_t idx[LAT_MAX_DIMS] = {0};
  for (int64_t o = 0; o < total; o += inner) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; d++) off += idx[d] * st[d];
    if (es == 4) {
      const uint32_t *sp = (const uint32_t *)src + off;
      uint32_t *dp = (uint32_t *)dst + o;
      if (accumulate) {
        float *df = (float *)dst + o;
        const float *sf = (const float *)src + off;
        for (int64_t i = 0; i < inner; i++) df[i] += sf[i * in_st];
      } else
        for (int64_t i = 0; i < inner; i++) dp[i] = sp[i * in_st];
    } else {
      const uint8_t *sp = (const uint8_t *)src + off;
      uint8_t *dp = (uint8_t *)dst + o;
      for (int64_t i = 0; i < inner; i++) dp[i] = sp[i * in_st];
    }
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < dshape[d]) break;
      idx[d] = 0;
    }
  }
}

typedef struct {
  int perm[LAT_MAX_DIMS]; /* output dimension d is input dimension perm[d] */
} permute_saved;

static int permute_backward(lat_node *n, const lat_tensor *gout) {
  int nd = gout->ndim, inv[LAT_MAX_DIMS];
  const int *perm = LAT_NODE_STATE(n, permute_saved)->perm;
  for (int d = 0; d < nd; d++) inv[perm[d]] = d;
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  permute_copy(gx, gout->f, 4, nd, gout->shape_, inv, acc);
  return 0;
}

lat_tensor *lat_permute(lat_tensor *t, const int *perm) {
  if (!t) return lat__fail("permute: tensor is nil");
  int nd = t->ndim, seen[LAT_MAX_DIMS] = {0}, p[LAT_MAX_DIMS];
  int64_t shape[LAT_MAX_DIMS];
  for (int d = 0; d < nd; d++) {
    p[d] = perm[d] < 0 ? perm[d] + nd : perm[d];
    if (p[d] < 0 || p[d] >= nd || seen[p[d]]++)
      return lat__fail("permute: the order given is not a permutation of the %d dimensions of %s",
                       nd, SHAPE(t));
    shape[d] = t->shape_[p[d]];
  }
  lat_tensor *y = lat__new(t->dtype_, nd, shape);
  if (!y) return NULL;
  permute_copy(y->data, t->data, lat__dtype_size(t->dtype_), nd, t->shape_, p, false);
  if (t->dtype_ != LAT_F32) return y;
  lat_node *n = lat__record(y, "permute", permute_backward, 1, &t);
  if (n) {
    n->inputs_unread = true;
    memcpy(LAT_NODE_STATE(n, permute_saved)->perm, p, sizeof p);
  }
  return y;
}

lat_tensor *lat_transpose(lat_tensor *t, int d0, int d1) {
  if (!t) return lat__fail("transpose: tensor is nil");
  int a = lat__norm_dim(t, d0, "transpose"), b = a < 0 ? -1 : lat__norm_dim(t, d1, "transpose");
  if (b < 0) return NULL;
  int perm[LAT_MAX_DIMS];
  for (int d = 0; d < t->ndim; d++) perm[d] = d;
  perm[a] = b;
  perm[b] = a;
  return lat_permute(t, perm);
}

/* ---- expand ---- */

static int expand_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0];
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  lat__sum_to(gx, x->ndim, x->shape_, gout->f, gout->ndim, gout->shape_, acc);
  return 0;
}

lat_tensor *lat_expand(lat_tensor *t, int ndim, const int64_t *shape) {
  if (!lat__check_f32(t, "expand", "input")) return NULL;
  lat_tensor want = {.ndim = ndim};
  if (ndim < t->ndim || ndim > LAT_MAX_DIMS)
    return lat__fail("expand: cannot expand %s to %d dimensions", SHAPE(t), ndim);
  memcpy(want.shape_, shape, (size_t)ndim * sizeof *shape);
  for (int d = 0; d < ndim; d++) {
    int dt = d - (ndim - t->ndim);
    if (want.shape_[d] == -1 && dt >= 0) want.shape_[d] = t->shape_[dt];
  }
  int64_t out[LAT_MAX_DIMS];
  int nd = lat__broadcast_shape(t, &want, out, "expand");
  if (nd < 0) return NULL;
  for (int d = 0; d < ndim; d++)
    if (out[d] != want.shape_[d])
      return lat__fail("expand: cannot expand %s to %s", SHAPE(t), SHAPE(&want));
  lat_tensor *y = lat__new(LAT_F32, ndim, want.shape_);
  if (!y) return NULL;
  int64_t inner = ndim ? want.shape_[ndim - 1] : 1;
  int64_t st[LAT_MAX_DIMS], s = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    int dt = d - (ndim - t->ndim);
    int64_t size = dt >= 0 ? t->shape_[dt] : 1;
    st[d] = size == 1 ? 0 : s;
    s *= size;
  }
  int64_t idx[LAT_MAX_DIMS] = {0};
  for (int64_t o = 0; o < y->numel_; o += inner) {
    int64_t off = 0;
    for (int d = 0; d < ndim - 1; d++) off += idx[d] * st[d];
    int64_t is = ndim ? st[ndim - 1] : 0;
    for (int64_t i = 0; i < inner; i++) y->f[o + i] = t->f[off + i * is];
    for (int d = ndim - 2; d >= 0; d--) {
      if (++idx[d] < want.shape_[d]) break;
      idx[d] = 0;
    }
  }
  lat_node *n = lat__record(y, "expand", expand_backward, 1, &t);
  if (n) n->inputs_unread = true;
  return y;
}

/* ---- cat ---- */

typedef struct {
  int dim; /* from 0 */
} cat_saved;

static int cat_backward(lat_node *n, const lat_tensor *gout) {
  int dim = LAT_NODE_STATE(n, cat_saved)->dim;
  int64_t outer, inner, total = gout->shape_[dim], pos = 0;
  split3(gout, dim, &outer, &inner);
  for (int k = 0; k < n->n_in; k++) {
    int64_t len = n->in[k]->shape_[dim];
    if (n->need[k]) {
      bool acc;
      float *gx = lat__grad_buf(n, k, &acc);
      if (!gx) return -1;
      for (int64_t o = 0; o < outer; o++) {
        const float *src = gout->f + (o * total + pos) * inner;
        float *dst = gx + o * len * inner;
        for (int64_t i = 0; i < len * inner; i++) dst[i] = acc ? dst[i] + src[i] : src[i];
      }
    }
    pos += len;
  }
  return 0;
}

lat_tensor *lat_cat(int n, lat_tensor **ts, int dim) {
  if (n <= 0) return lat__fail("cat: needs at least one tensor");
  for (int k = 0; k < n; k++)
    if (!ts[k]) return lat__fail("cat: tensor %d is nil", k + 1);
  lat_tensor *t0 = ts[0];
  int d = lat__norm_dim(t0, dim, "cat");
  if (d < 0) return NULL;
  int64_t shape[LAT_MAX_DIMS];
  memcpy(shape, t0->shape_, sizeof shape);
  shape[d] = 0;
  for (int k = 0; k < n; k++) {
    lat_tensor *t = ts[k];
    bool ok = t->ndim == t0->ndim && t->dtype_ == t0->dtype_;
    for (int j = 0; ok && j < t->ndim; j++) ok = j == d || t->shape_[j] == t0->shape_[j];
    if (!ok)
      return lat__fail("cat: tensor %d is %s %s but tensor 1 is %s %s; all must agree except in "
                       "dimension %d", k + 1, lat__dtype_name(t->dtype_), SHAPE(t),
                       lat__dtype_name(t0->dtype_), SHAPE(t0), d + 1);
    if (__builtin_add_overflow(shape[d], t->shape_[d], &shape[d]))
      return lat__fail("cat: the sizes in dimension %d add up to more than 2^63", d + 1);
  }
  lat_tensor *y = lat__new(t0->dtype_, t0->ndim, shape);
  if (!y) return NULL;
  int64_t outer, inner, pos = 0;
  split3(y, d, &outer, &inner);
  size_t es = lat__dtype_size(t0->dtype_);
  for (int k = 0; k < n; k++) {
    int64_t len = ts[k]->shape_[d];
    for (int64_t o = 0; o < outer; o++)
      memcpy((char *)y->data + (size_t)((o * shape[d] + pos) * inner) * es,
             (char *)ts[k]->data + (size_t)(o * len * inner) * es, (size_t)(len * inner) * es);
    pos += len;
  }
  if (t0->dtype_ != LAT_F32) return y;
  lat_node *node = lat__record(y, "cat", cat_backward, n, ts);
  if (node) {
    node->inputs_unread = true;
    LAT_NODE_STATE(node, cat_saved)->dim = d;
  }
  return y;
}
