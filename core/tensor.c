/* tensor.c: tensor headers, reference-counted storage, creation, dtype conversion, in-place
 * helpers and the check and version count that every in-place write goes through. Layout ops
 * (reshape, narrow, permute, expand, cat) live in ops_shape.c. */
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t lat__dtype_size(int dtype) { return dtype == LAT_U8 ? 1 : 4; }

int64_t lat__prod(const int64_t *shape, int n) {
  int64_t p = 1;
  for (int d = 0; d < n; d++) p *= shape[d];
  return p;
}

static const char *shape_of(int ndim, const int64_t *shape, char *buf, size_t n) {
  lat_tensor t = {.ndim = ndim};
  memcpy(t.shape_, shape, (size_t)ndim * sizeof *shape);
  return lat__shape_str(&t, buf, n);
}

int64_t lat__numel_checked(int dtype, int ndim, const int64_t *shape) {
  if (dtype < LAT_F32 || dtype > LAT_U8) return lat__fail("unknown dtype %d", dtype), -1;
  if (ndim < 0 || ndim > LAT_MAX_DIMS)
    return lat__fail("a tensor has 0 to %d dimensions, got %d", LAT_MAX_DIMS, ndim), -1;
  for (int d = 0; d < ndim; d++)
    if (shape[d] < 0)
      return lat__fail("dimension %d has negative size %lld", d + 1, (long long)shape[d]), -1;
  /* sizes of 0 count as 1 here, so that every partial product of the shape (which ops compute
   * as outer and inner sizes) fits too */
  int64_t n = 1, bytes;
  bool over = false, empty = false;
  for (int d = 0; d < ndim && !over; d++) {
    empty |= shape[d] == 0;
    over = __builtin_mul_overflow(n, shape[d] ? shape[d] : 1, &n);
  }
  if (over || __builtin_mul_overflow(n, (int64_t)lat__dtype_size(dtype), &bytes) ||
      bytes > LAT_MAX_BYTES)
    return lat__fail("a tensor of shape %s (%s) would take more than 2^%d bytes, the most lat "
                     "allocates", shape_of(ndim, shape, (char[200]){0}, 200), lat__dtype_name(dtype),
                     LAT_MAX_BYTES_LOG2), -1;
  return empty ? 0 : n;
}

static lat_tensor *header(int dtype, int ndim, const int64_t *shape) {
  int64_t numel = lat__numel_checked(dtype, ndim, shape);
  if (numel < 0) return NULL;
  lat_tensor *t = calloc(1, sizeof *t);
  if (!t) return lat__fail("out of memory for a tensor header");
  t->dtype_ = dtype;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++) t->shape_[d] = shape[d];
  t->numel_ = numel;
  t->refcount = 1;
  return t;
}

lat_tensor *lat__new(int dtype, int ndim, const int64_t *shape) {
  lat_tensor *t = header(dtype, ndim, shape);
  if (!t) return NULL;
  lat_storage *s = malloc(sizeof *s);
  size_t bytes = (size_t)t->numel_ * lat__dtype_size(dtype);
  void *p = s ? lat__alloc(bytes) : NULL;
  if (!p) {
    free(s);
    free(t);
    return lat__fail("out of memory allocating a %s tensor of %lld elements",
                     lat__dtype_name(dtype), (long long)lat__prod(shape, ndim));
  }
  s->ptr = p;
  s->bytes = bytes;
  s->refcount = 1;
  s->version = 0;
  t->storage = s;
  t->data = p;
  return t;
}

lat_tensor *lat__new_like(const lat_tensor *t) { return lat__new(t->dtype_, t->ndim, t->shape_); }

lat_tensor *lat__zeros_like(const lat_tensor *t) {
  lat_tensor *z = lat__new_like(t);
  if (z) memset(z->data, 0, (size_t)z->numel_ * lat__dtype_size(z->dtype_));
  return z;
}

lat_tensor *lat__view(lat_tensor *t, int64_t offset, int ndim, const int64_t *shape) {
  lat_tensor *v = header(t->dtype_, ndim, shape);
  if (!v) return NULL;
  v->storage = t->storage;
  t->storage->refcount++;
  v->narrow_copy_ = t->narrow_copy_;
  v->data = (char *)t->data + offset * (int64_t)lat__dtype_size(t->dtype_);
  return v;
}

lat_tensor *lat_empty(int dtype, int ndim, const int64_t *shape) {
  return lat__new(dtype, ndim, shape);
}

static void fill(lat_tensor *t, double v) {
  int64_t n = t->numel_;
  switch (t->dtype_) {
  case LAT_F32: {
    float x = (float)v;
    if (x == 0.0f) memset(t->f, 0, (size_t)n * 4);
    else
      for (int64_t k = 0; k < n; k++) t->f[k] = x;
    break;
  }
  case LAT_I32:
    for (int64_t k = 0; k < n; k++) t->i[k] = (int32_t)v;
    break;
  default: memset(t->u, (int)(uint8_t)v, (size_t)n);
  }
}

int lat_fill_(lat_tensor *t, double v) {
  if (!t) return lat__failc("fill_: tensor is nil");
  if (lat__begin_write(t, NULL, "fill_", "write t = lat.full(t.shape, v)")) return -1;
  fill(t, v);
  return 0;
}

lat_tensor *lat_full(int dtype, int ndim, const int64_t *shape, double value) {
  lat_tensor *t = lat__new(dtype, ndim, shape);
  if (t) fill(t, value); /* making a tensor is not a write into one: its version stays 0 */
  return t;
}

lat_tensor *lat_arange(double start, double stop, double step, int dtype) {
  if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
    return lat__fail("arange: step must be non-zero and all bounds finite");
  double count = ceil((stop - start) / step);
  if (count > (double)LAT_MAX_BYTES) /* before the cast, which could not hold it */
    return lat__fail("arange: %g to %g in steps of %g would have %g elements, more than a tensor "
                     "can hold", start, stop, step, count);
  int64_t n = count > 0 ? (int64_t)count : 0;
  lat_tensor *t = lat__new(dtype, 1, &n);
  if (!t) return NULL;
  for (int64_t k = 0; k < n; k++) {
    double v = start + (double)k * step;
    if (dtype == LAT_F32) t->f[k] = (float)v;
    else if (dtype == LAT_I32) t->i[k] = (int32_t)v;
    else t->u[k] = (uint8_t)v;
  }
  return t;
}

lat_tensor *lat_retain(lat_tensor *t) {
  if (t) t->refcount++;
  return t;
}

void lat__node_free(lat_node *n); /* autograd.c */

void lat_release(lat_tensor *t) {
  if (!t || --t->refcount > 0) return;
  if (t->storage && --t->storage->refcount == 0) {
    lat__free(t->storage->ptr, t->storage->bytes);
    free(t->storage);
  }
  if (t->node) lat__node_free(t->node);
  lat_release(t->grad_);
  lat_release(t->bgrad_);
  free(t);
}

lat_tensor *lat_clone(lat_tensor *t) {
  if (!t) return lat__fail("clone: tensor is nil");
  lat_tensor *c = lat__new_like(t);
  if (c) memcpy(c->data, t->data, (size_t)t->numel_ * lat__dtype_size(t->dtype_));
  return c;
}

lat_tensor *lat_detach(lat_tensor *t) {
  if (!t) return lat__fail("detach: tensor is nil");
  return lat__view(t, 0, t->ndim, t->shape_);
}

lat_tensor *lat_to_dtype(lat_tensor *t, int dtype) {
  if (!t) return lat__fail("to_dtype: tensor is nil");
  if (dtype == t->dtype_) return lat_retain(t);
  lat_tensor *c = lat__new(dtype, t->ndim, t->shape_);
  if (!c) return NULL;
  int64_t n = t->numel_;
  for (int64_t k = 0; k < n; k++) {
    double v = t->dtype_ == LAT_F32 ? t->f[k] : t->dtype_ == LAT_I32 ? t->i[k] : t->u[k];
    if (dtype == LAT_F32) c->f[k] = (float)v;
    else if (dtype == LAT_I32) c->i[k] = (int32_t)v;
    else c->u[k] = (uint8_t)(int64_t)v;
  }
  return c;
}

int lat_set_requires_grad(lat_tensor *t, int flag) {
  if (!t) return lat__failc("requires_grad: tensor is nil");
  if (flag && t->dtype_ != LAT_F32)
    return lat__failc("requires_grad: only float32 tensors can require gradients, this one is %s",
                      lat__dtype_name(t->dtype_));
  if (!flag && t->node)
    return lat__failc("requires_grad: cannot turn gradients off for the output of an op (%s); "
                      "use detach()", t->node->name);
  t->req_grad_ = flag != 0;
  return 0;
}

int lat_same_shape(lat_tensor *a, lat_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape_[d] != b->shape_[d]) return 0;
  return 1;
}

bool lat__check_f32(const lat_tensor *t, const char *op, const char *arg) {
  if (!t) return lat__fail("%s: %s is nil", op, arg), false;
  if (t->dtype_ != LAT_F32)
    return lat__fail("%s: %s must be float32, got %s", op, arg, lat__dtype_name(t->dtype_)), false;
  return true;
}

int lat__norm_dim(const lat_tensor *t, int dim, const char *op) {
  int nd = t->ndim;
  int d = dim < 0 ? dim + nd : dim;
  if (d < 0 || d >= nd) {
    if (dim >= 0) /* say it both ways: Lua counts dimensions from 1, C from 0 */
      lat__fail("%s: dimension %d (counting from 1; %d from 0) is out of range for a tensor of "
                "shape %s, which has %d dimension%s", op, dim + 1, dim, SHAPE(t), nd,
                nd == 1 ? "" : "s");
    else
      lat__fail("%s: dimension %d is out of range for a tensor of shape %s, which has %d "
                "dimension%s", op, dim, SHAPE(t), nd, nd == 1 ? "" : "s");
    return -1;
  }
  return d;
}

int lat__begin_write(lat_tensor *dst, const lat_tensor *src, const char *op, const char *rewrite) {
  if (!rewrite) rewrite = "use an out-of-place op";
  if (dst->narrow_copy_)
    return lat__failc("%s: the target is a copy that narrow made (along a dimension other than the "
                      "first: tensors are contiguous), so writing into it would not change the "
                      "tensor it was narrowed from; write into a clone() of it to change a copy "
                      "on purpose", op);
  if (lat_is_grad_enabled() && dst->req_grad_)
    return lat__failc("%s: the target requires gradients, and autograd cannot see an in-place "
                      "change to it; %s, or make the change inside lat.no_grad(function() ... end) "
                      "if no gradient should flow through it", op, rewrite);
  if (lat_is_grad_enabled() && src && src->req_grad_)
    return lat__failc("%s: the source requires gradients, which an in-place op cannot pass on; "
                      "%s, or detach() the source if no gradient should flow through it", op,
                      rewrite);
  dst->storage->version++;
  return 0;
}

int64_t lat_data_version(lat_tensor *t) { return t ? t->storage->version : -1; }

int lat_mark_written(lat_tensor *t, const char *op) {
  if (!t) return lat__failc("%s: tensor is nil", op ? op : "write");
  return lat__begin_write(t, NULL, op ? op : "write", NULL);
}

/* op names are those of the Lua methods (add_ for axpy_, mul_ for scale_) */
static int check_inplace(lat_tensor *y, lat_tensor *x, const char *op, const char *rewrite) {
  if (!lat__check_f32(y, op, "target")) return -1;
  if (x) {
    if (!lat__check_f32(x, op, "source")) return -1;
    if (!lat_same_shape(x, y))
      return lat__failc("%s: target has shape %s but source has shape %s", op, SHAPE(y), SHAPE(x));
  }
  return lat__begin_write(y, x, op, rewrite);
}

int lat_copy_(lat_tensor *dst, lat_tensor *src) {
  if (!dst || !src) return lat__failc("copy_: tensor is nil");
  if (!lat_same_shape(dst, src) || dst->dtype_ != src->dtype_)
    return lat__failc("copy_: target is %s %s but source is %s %s", lat__dtype_name(dst->dtype_),
                      SHAPE(dst), lat__dtype_name(src->dtype_), SHAPE(src));
  if (lat__begin_write(dst, src, "copy_", "use the source itself instead of a copy")) return -1;
  memmove(dst->data, src->data, (size_t)src->numel_ * lat__dtype_size(src->dtype_));
  return 0;
}

int lat_axpy_(lat_tensor *y, double alpha, lat_tensor *x) {
  if (check_inplace(y, x, "add_", "write t = t + alpha * x")) return -1;
  float a = (float)alpha;
  float *restrict yy = y->f;
  const float *restrict xx = x->f;
  int64_t n = y->numel_;
  #pragma omp parallel for simd if (parallel : n > LAT_PAR_MIN * 8)
  for (int64_t k = 0; k < n; k++) yy[k] += a * xx[k];
  return 0;
}

int lat_scale_(lat_tensor *t, double alpha) {
  if (check_inplace(t, NULL, "mul_", "write t = t * s")) return -1;
  float a = (float)alpha;
  int64_t n = t->numel_;
  for (int64_t k = 0; k < n; k++) t->f[k] *= a;
  return 0;
}

int lat_clamp_(lat_tensor *t, double lo, double hi) {
  if (check_inplace(t, NULL, "clamp_", "write t = t:clamp(lo, hi)")) return -1;
  float l = (float)lo, h = (float)hi;
  int64_t n = t->numel_;
  for (int64_t k = 0; k < n; k++) t->f[k] = lat__clampf(t->f[k], l, h);
  return 0;
}
