/* internal.h: what the files of liblat share and users of lat.h do not see. */
#ifndef LAT_INTERNAL_H
#define LAT_INTERNAL_H

#include "lat.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- errors (error.c) ---- */
/* Formats the thread-local message; returns NULL so ops can write `return lat__fail(...)`. */
void *lat__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int lat__failc(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* returns -1 */
/* "[2, 3, 4]" into buf; for messages */
const char *lat__shape_str(const lat_tensor *t, char *buf, size_t n);
#define SHAPE(t) lat__shape_str((t), (char[96]){0}, 96)
const char *lat__dtype_name(int dtype);

/* ---- memory (alloc.c) ---- */
void *lat__alloc(size_t bytes);          /* 64-byte aligned, from the cache when possible */
void lat__free(void *p, size_t bytes);   /* back to the cache */

struct lat_storage {
  void *ptr;
  size_t bytes;
  int refcount;
};

/* ---- tensors (tensor.c) ---- */
size_t lat__dtype_size(int dtype);
/* A new tensor with fresh storage and no node; the data is uninitialised. */
lat_tensor *lat__new(int dtype, int ndim, const int64_t *shape);
lat_tensor *lat__new_like(const lat_tensor *t);
lat_tensor *lat__zeros_like(const lat_tensor *t);
/* A new header sharing t's storage (offset in elements), no node, given shape. */
lat_tensor *lat__view(lat_tensor *t, int64_t offset, int ndim, const int64_t *shape);
int lat__norm_dim(const lat_tensor *t, int dim, const char *op); /* -1 (with error) if invalid */
bool lat__check_f32(const lat_tensor *t, const char *op, const char *arg);
/* the product of sizes that are known to be valid (those of an existing tensor) */
int64_t lat__prod(const int64_t *shape, int n);
/* Tensors and buffers are refused above this many bytes, before any allocation: no machine
 * gives more, and every product of sizes below it fits in int64_t with room to spare. */
#define LAT_MAX_BYTES_LOG2 48
#define LAT_MAX_BYTES ((int64_t)1 << LAT_MAX_BYTES_LOG2)
/* The element count of a new tensor of this shape, or -1 with a message naming the shape if a
 * size is negative, the dtype or ndim is invalid, or the bytes would exceed LAT_MAX_BYTES. */
int64_t lat__numel_checked(int dtype, int ndim, const int64_t *shape);

/* ---- autograd (autograd.c) ---- */
enum { LAT_NODE_MAX_IN = 4, LAT_NODE_MAX_SAVED = 4 };
typedef int (*lat_backward_fn)(lat_node *n, const lat_tensor *gout);

struct lat_node {
  const char *name;                          /* op name, for messages */
  lat_backward_fn backward;
  int n_in;
  lat_tensor **in;                           /* strong references to the inputs */
  bool *need;                                /* which inputs want a gradient, set each pass */
  lat_tensor *in_inline[LAT_NODE_MAX_IN];    /* in and need point here unless n_in is larger */
  bool need_inline[LAT_NODE_MAX_IN];
  lat_tensor *saved[LAT_NODE_MAX_SAVED];     /* extra tensors kept for backward (owned) */
  double f[4];                               /* scalar arguments */
  int64_t i[8];
  int dims[LAT_MAX_DIMS];
};

/* Whether an op over these inputs must record a node. */
bool lat__needs_grad(int n, lat_tensor *const *ins);
/* Attach a node to out (out->req_grad_ is set); returns the node to fill in, or NULL if
 * recording is not needed. The node holds references to the inputs. */
lat_node *lat__record(lat_tensor *out, const char *name, lat_backward_fn bw, int n,
                      lat_tensor *const *ins);
/* A new header on the same storage as t without its node: for saving an op's output. */
lat_tensor *lat__save_output(lat_tensor *t);
/* Where input k's gradient goes: a buffer shaped like in[k]. *accumulate tells whether the
 * buffer already holds a gradient (add to it) or is fresh (overwrite it). NULL on OOM. */
float *lat__grad_buf(lat_node *n, int k, bool *accumulate);

/* ---- fast math ---- */
#include <math.h>
/* exp for float32 that the compiler can vectorise (glibc's expf is scalar without -ffast-math):
 * Cephes' range reduction x = n ln2 + r and degree-6 polynomial, within 2 ulp of expf; inputs
 * below -88 give 0 (so -inf gives 0), above 88 are clamped (softmax only passes x <= 0). */
static inline float lat__expf(float x) {
  x = x < -88.0f ? -88.0f : x > 88.0f ? 88.0f : x;
  float n = rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union { int32_t i; float f; } scale = {.i = ((int32_t)n + 127) << 23}; /* 2^n; 0 for n = -127 */
  return p * scale.f;
}

/* tanh from one exp, vectorisable: (1 - e) / (1 + e) with e = exp(-2|x|), and the odd series
 * x - x^3/3 + 2x^5/15 - 17x^7/315 below |x| = 1/8, where 1 - e would lose digits */
static inline float lat__tanhf(float x) {
  float a = fabsf(x), x2 = x * x;
  float e = lat__expf(-2.0f * a);
  float t = (1.0f - e) / (1.0f + e);
  float p = a * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  return copysignf(a < 0.125f ? p : t, x);
}

/* erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), vectorisable */
static inline float lat__erff(float x) {
  float a = fabsf(x);
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
            t * (-1.453152027f + t * 1.061405429f))));
  return copysignf(1.0f - p * lat__expf(-a * a), x);
}

/* ---- threads (threads.c) ---- */
int lat__threads(void);
/* While a loop splits work across nt > 1 threads, each of which calls sgemm, OpenBLAS must run
 * on its caller's thread only; the setting is process-wide, so such ops are not meant to be
 * called from two threads at once. */
void lat__blas_single_begin(int nt);
void lat__blas_single_end(int nt);
/* whether a loop of this many element-operations is worth splitting across threads */
#define LAT_PAR_MIN 32768

/* ---- broadcasting (ops_elementwise.c) ---- */
/* Broadcast shapes a and b (PyTorch rules) into out; returns ndim or -1 with error. */
int lat__broadcast_shape(const lat_tensor *a, const lat_tensor *b, int64_t *out, const char *op);
/* Sum src (shape src_shape) down to dst's shape (which broadcasts to src_shape) */
void lat__sum_to(float *dst, int dst_ndim, const int64_t *dst_shape, const float *src,
                 int src_ndim, const int64_t *src_shape, bool accumulate);

#endif
