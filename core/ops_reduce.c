/* ops_reduce.c: sum and max over any set of dimensions, and argmax along one. */
#include "broadcast.h"
#include <math.h>
#include <string.h>

/* The kept shape (reduced dims set to 1) and the output shape (reduced dims dropped unless
 * keepdim). Returns the output ndim or -1. */
static int reduced_shapes(const lat_tensor *x, int ndims, const int *dims, int keepdim,
                          int64_t *kept, int64_t *out, bool *reduce, const char *op) {
  memset(reduce, 0, LAT_MAX_DIMS * sizeof *reduce);
  for (int k = 0; k < ndims; k++) {
    int d = lat__norm_dim(x, dims[k], op);
    if (d < 0) return -1;
    if (reduce[d]) return lat__failc("%s: dimension %d given twice", op, d + 1);
    reduce[d] = true;
  }
  if (ndims == 0)
    for (int d = 0; d < x->ndim; d++) reduce[d] = true;
  int nd = 0;
  for (int d = 0; d < x->ndim; d++) {
    kept[d] = reduce[d] ? 1 : x->shape_[d];
    if (!reduce[d] || keepdim) out[nd++] = kept[d];
  }
  return nd;
}

/* ---- sum ---- */

typedef struct {
  bool reduced[LAT_MAX_DIMS]; /* which of the input's dimensions were summed over */
} sum_saved;

static int sum_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0];
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  /* broadcast gout (in the kept shape) over x */
  int64_t kept[LAT_MAX_DIMS];
  const bool *reduced = LAT_NODE_STATE(n, sum_saved)->reduced;
  for (int d = 0; d < x->ndim; d++) kept[d] = reduced[d] ? 1 : x->shape_[d];
  lat_bcast bc;
  const int64_t *shapes[2] = {kept, x->shape_};
  int ndims[2] = {x->ndim, x->ndim};
  lat_bcast_init(&bc, x->ndim, x->shape_, 2, shapes, ndims);
  int64_t sg = bc.st[0][bc.nd - 1];
  #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && bc.rows > 1)
  for (int64_t r = 0; r < bc.rows; r++) {
    int64_t off[2];
    lat_bcast_row(&bc, 2, r, off);
    const float *g = gout->f + off[0];
    float *d = gx + off[1];
    if (acc)
      for (int64_t i = 0; i < bc.inner; i++) d[i] += g[i * sg];
    else
      for (int64_t i = 0; i < bc.inner; i++) d[i] = g[i * sg];
  }
  return 0;
}

lat_tensor *lat_sum(lat_tensor *x, int ndims, const int *dims, int keepdim) {
  if (!lat__check_f32(x, "sum", "input")) return NULL;
  int64_t kept[LAT_MAX_DIMS], shape[LAT_MAX_DIMS];
  bool reduce[LAT_MAX_DIMS];
  int nd = reduced_shapes(x, ndims, dims, keepdim, kept, shape, reduce, "sum");
  if (nd < 0) return NULL;
  lat_tensor *y = lat__new(LAT_F32, nd, shape);
  if (!y) return NULL;
  int64_t m = y->numel_;
  if (m == 1) { /* everything: a double accumulator keeps long sums accurate */
    double s = 0;
    #pragma omp parallel for reduction(+ : s) if (x->numel_ > LAT_PAR_MIN)
    for (int64_t k = 0; k < x->numel_; k++) s += x->f[k];
    y->f[0] = (float)s;
  } else {
    lat__sum_to(y->f, x->ndim, kept, x->f, x->ndim, x->shape_, false);
  }
  lat_node *n = lat__record(y, "sum", sum_backward, 1, &x);
  if (n) {
    n->inputs_unread = true;
    memcpy(LAT_NODE_STATE(n, sum_saved)->reduced, reduce, sizeof reduce);
  }
  return y;
}

/* ---- amax ---- */

static int amax_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0];
  const int32_t *arg = n->saved[0]->i;
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  if (!acc) memset(gx, 0, (size_t)x->numel_ * sizeof *gx);
  for (int64_t o = 0; o < gout->numel_; o++) gx[arg[o]] += gout->f[o];
  return 0;
}

lat_tensor *lat_amax(lat_tensor *x, int ndims, const int *dims, int keepdim) {
  if (!lat__check_f32(x, "amax", "input")) return NULL;
  int64_t kept[LAT_MAX_DIMS], shape[LAT_MAX_DIMS];
  bool reduce[LAT_MAX_DIMS];
  int nd = reduced_shapes(x, ndims, dims, keepdim, kept, shape, reduce, "amax");
  if (nd < 0) return NULL;
  for (int d = 0; d < x->ndim; d++)
    if (reduce[d] && x->shape_[d] == 0) return lat__fail("amax: reducing an empty dimension");
  lat_tensor *y = lat__new(LAT_F32, nd, shape);
  lat_tensor *arg = y ? lat__new(LAT_I32, nd, shape) : NULL;
  if (!arg) {
    lat_release(y);
    return NULL;
  }
  for (int64_t o = 0; o < y->numel_; o++) {
    y->f[o] = -INFINITY;
    arg[0].i[o] = -1;
  }
  lat_bcast bc;
  const int64_t *shapes[2] = {kept, x->shape_};
  int ndm[2] = {x->ndim, x->ndim};
  lat_bcast_init(&bc, x->ndim, x->shape_, 2, shapes, ndm);
  int64_t so = bc.st[0][bc.nd - 1];
  for (int64_t r = 0; r < bc.rows; r++) {
    int64_t off[2];
    lat_bcast_row(&bc, 2, r, off);
    const float *s = x->f + off[1];
    for (int64_t i = 0; i < bc.inner; i++) {
      int64_t o = off[0] + i * so;
      float v = s[i];
      if (v > y->f[o] || arg->i[o] < 0 || (v != v && y->f[o] == y->f[o])) {
        y->f[o] = v;
        arg->i[o] = (int32_t)(off[1] + i);
      }
    }
  }
  lat_node *n = lat__record(y, "amax", amax_backward, 1, &x);
  if (n) n->saved[0] = arg;
  else lat_release(arg);
  return y;
}

/* ---- argmax along one dim: int32 positions (0-based), no gradient ---- */

lat_tensor *lat_argmax(lat_tensor *x, int dim, int keepdim) {
  if (!lat__check_f32(x, "argmax", "input")) return NULL;
  int d = lat__norm_dim(x, dim, "argmax");
  if (d < 0) return NULL;
  if (x->shape_[d] == 0) return lat__fail("argmax: dimension %d is empty", d + 1);
  int64_t kept[LAT_MAX_DIMS], shape[LAT_MAX_DIMS];
  bool reduce[LAT_MAX_DIMS];
  int nd = reduced_shapes(x, 1, &d, keepdim, kept, shape, reduce, "argmax");
  lat_tensor *y = lat__new(LAT_I32, nd, shape);
  if (!y) return NULL;
  int64_t outer = lat__prod(x->shape_, d), size = x->shape_[d];
  int64_t inner = lat__prod(x->shape_ + d + 1, x->ndim - d - 1);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *s = x->f + o * size * inner + i;
      int64_t best = 0;
      for (int64_t k = 1; k < size; k++) { /* as PyTorch: the first maximum, or the first NaN */
        float v = s[k * inner], m = s[best * inner];
        if (v > m || (v != v && m == m)) best = k;
      }
      y->i[o * inner + i] = (int32_t)best;
    }
  return y;
}
