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
#define lat__failc lat_fail /* returns -1 (lat.h) */
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
  int64_t version; /* in-place writes so far; views share it, so a write through any counts */
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
/* Every in-place write calls this first, once its other checks have passed: refuses the write
 * (-1) where autograd could not follow it (grad mode and dst or src requiring gradients) or
 * where it would be lost (dst a copy made by narrow), else counts it in dst's version. src may
 * be NULL; rewrite is the out-of-place form to suggest ("t = t + x") or NULL. */
int lat__begin_write(lat_tensor *dst, const lat_tensor *src, const char *op, const char *rewrite);
/* Tensors and buffers are refused above this many bytes, before any allocation: no machine
 * gives more, and every product of sizes below it fits in int64_t with room to spare. */
#define LAT_MAX_BYTES_LOG2 48
#define LAT_MAX_BYTES ((int64_t)1 << LAT_MAX_BYTES_LOG2)
/* The element count of a new tensor of this shape, or -1 with a message naming the shape if a
 * size is negative, the dtype or ndim is invalid, or the bytes would exceed LAT_MAX_BYTES. */
int64_t lat__numel_checked(int dtype, int ndim, const int64_t *shape);

/* ---- autograd (autograd.c) ---- */
/* LAT_NODE_STATE_BYTES: room for the largest op state, conv2d's geometry */
enum { LAT_NODE_MAX_IN = 4, LAT_NODE_MAX_SAVED = 4, LAT_NODE_STATE_BYTES = 128 };
typedef int (*lat_backward_fn)(lat_node *n, const lat_tensor *gout);

struct lat_node {
  const char *name;                          /* op name, for messages */
  lat_backward_fn backward;
  bool freed;                                /* its backward ran and let go of what it kept */
  int n_in;
  lat_tensor **in;                           /* strong references to the inputs */
  bool *need;                                /* which inputs want a gradient, set each pass */
  lat_tensor *in_inline[LAT_NODE_MAX_IN];    /* in and need point here unless n_in is larger */
  bool need_inline[LAT_NODE_MAX_IN];
  int64_t *in_version;                       /* each input's storage version when recorded */
  int64_t in_version_inline[LAT_NODE_MAX_IN];
  int64_t out_version;                       /* the output's, for a saved output */
  bool inputs_unread;                        /* backward needs only the inputs' shapes, so an
                                                in-place change to one after use is harmless */
  lat_tensor *saved[LAT_NODE_MAX_SAVED];     /* extra tensors kept for backward (owned) */
  union {                                    /* the op's other arguments: see LAT_NODE_STATE */
    max_align_t align;
    unsigned char bytes[LAT_NODE_STATE_BYTES];
  } state;
};

/* The op's own struct in node n's state (zeroed when the node is recorded): the op writes its
 * arguments there and its backward reads them back by name, e.g.
 *   *LAT_NODE_STATE(n, narrow_saved) = (narrow_saved){.dim = d, .start = start, ...};  (op)
 *   const narrow_saved *arg = LAT_NODE_STATE(n, narrow_saved);  (backward: arg->start)
 * A type too large for the state is a compile-time error. */
#define LAT_NODE_STATE(n, type)                                                                \
  ((void)sizeof(struct { _Static_assert(sizeof(type) <= LAT_NODE_STATE_BYTES,                \
                                        #type " does not fit in a node's state"); char c; }), \
   (type *)(void *)(n)->state.bytes)

/* Whether an op over these inputs must record a node. */
bool lat__needs_grad(int n, lat_tensor *const *ins);
/* Attach a node to out (out->req_grad_ is set); returns the node to fill in, or NULL if
 * recording is not needed. The node holds references to the inputs and notes their versions
 * and out's, which backward checks: saved[] must hold either out's storage (lat__save_output)
 * or tensors private to the node. */
lat_node *lat__record(lat_tensor *out, const char *name, lat_backward_fn bw, int n,
                      lat_tensor *const *ins);
/* A new header on the same storage as t without its node: for saving an op's output. */
lat_tensor *lat__save_output(lat_tensor *t);
/* Where input k's gradient goes: a buffer shaped like in[k]. *accumulate tells whether the
 * buffer already holds a gradient (add to it) or is fresh (overwrite it). NULL on OOM. */
float *lat__grad_buf(lat_node *n, int k, bool *accumulate);

/* the CPU has AVX-512 and LAT_CPU does not force a lower level (cpu.c) */
bool lat__cpu_avx512(void);

/* ---- fast math ---- */
#include <math.h>
/* s[0] + ... + s[n-1] in 16 lanes (so that it vectorises without reassociating a single chain),
 * the lanes then added pairwise */
static inline float lat__sum_row(const float *restrict s, int64_t n) {
  float lane[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; j++) lane[j] += s[i + j];
  for (int j = 0; i < n; i++, j++) lane[j] += s[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; j++) lane[j] += lane[j + w];
  return lane[0];
}
/* clamp that lets NaN through, as PyTorch does (fminf/fmaxf would give a bound); vectorises */
static inline float lat__clampf(float x, float lo, float hi) {
  return x < lo ? lo : x > hi ? hi : x;
}
/* exp for float32 that the compiler can vectorise (glibc's expf is scalar without -ffast-math):
 * Cephes' range reduction x = n ln2 + r and degree-6 polynomial, then 2^n applied as two powers
 * of two 2^n1 2^(n - n1), both normal floats, so that only the last product rounds: results
 * are right through the whole float range, Inf above ln(FLT_MAX) = 88.7228, denormals below
 * -87.34 and 0 below -103.97 as expf gives. Max error 1 ulp, both from glibc's expf and from
 * the exact exp rounded to float (measured over every float in [-110, 90], denormals included);
 * tests/test_ops_elementwise.lua checks the 1 ulp against expf over a dense sweep. NaN gives
 * NaN; n is read from the float's bits rather than converted, and the shifts are unsigned, so
 * nothing is undefined behaviour (UBSan flagged the float-to-int conversion of NaN). */
static inline float lat__expf(float x) {
  float xc = lat__clampf(x, -104.0f, 89.0f); /* NaN stays NaN and runs through r and p */
  /* n = rint(x / ln2) by adding 1.5 * 2^23: n is then the low bits of the float j */
  union { float f; uint32_t i; } j = {.f = xc * 1.44269504088896341f + 12582912.0f};
  float n = j.f - 12582912.0f;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  /* 2^n = 2^n1 2^n2 with n1 = floor(n / 2), in unsigned arithmetic; n is in [-150, 128] */
  uint32_t e = j.i - 0x4B400000u + 150u, h = e >> 1;            /* n + 150, n1 + 75 */
  union { uint32_t i; float f; } s1 = {.i = (h + 52u) << 23}, s2 = {.i = (e - h + 52u) << 23};
  return p * s1.f * s2.f;
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

/* e / (1 + e)^2: with e = exp(-|x|) the derivative of sigmoid at x, with e = exp(-2|x|) a
 * quarter of tanh's. From x rather than from the output y, where y (1 - y) and 1 - y^2 lose all
 * digits as y nears 1 (2e-4 relative error at |x| = 4.5). */
static inline float lat__bump(float e) { return e / ((1.0f + e) * (1.0f + e)); }

/* erfc with a relative error below 2.2e-6 up to z = 7.1 (measured; 4e-6 at 8, more where the
 * result is denormal, beyond 9.3): Numerical Recipes' erfcc, a Chebyshev fit to erfc(z) exp(z^2)
 * with fractional error 1.2e-7, evaluated in float; vectorisable; 2 - erfc(-z) below 0.
 * Relative accuracy in the tail is what GELU's left side needs: the absolute error 1.5e-7 of
 * erf by Abramowitz and Stegun 7.1.26 was 2% of 1 + erf at x = -4.5. */
static inline float lat__erfcf(float z) {
  float a = fabsf(z), t = 1.0f / (1.0f + 0.5f * a);
  float p = -0.82215223f + t * 0.17087277f;
  p = 1.48851587f + t * p;
  p = -1.13520398f + t * p;
  p = 0.27886807f + t * p;
  p = -0.18628806f + t * p;
  p = 0.09678418f + t * p;
  p = 0.37409196f + t * p;
  p = 1.00002368f + t * p;
  p = -1.26551223f + t * p;
  float r = t * lat__expf(p - a * a);
  return z < 0 ? 2.0f - r : r;
}

/* ---- threads (threads.c) ---- */
int lat__threads(void);
/* While a loop splits work across nt > 1 threads, each of which calls sgemm, OpenBLAS must run
 * on its caller's thread only; the setting is process-wide, so such ops are not meant to be
 * called from two threads at once. */
void lat__blas_single_begin(int nt);
void lat__blas_single_end(int nt);
/* whether a loop of this many element-operations is worth splitting across threads. On a
 * 'parallel for simd' write the test as if (parallel : n > LAT_PAR_MIN): a bare if applies to
 * the simd part too (OpenMP 5), and GCC then runs small loops unvectorised (3-10x slower). */
#define LAT_PAR_MIN 32768
/* the same for loops that only stream memory (a load or two, a flop and a store an element):
 * below this, waking the passive threads costs more than a second core's share of the
 * bandwidth gives (tests/bench/run.sh, the elementwise rows at 2 threads) */
#define LAT_PAR_STREAM (1 << 20)

/* ---- broadcasting (ops_elementwise.c) ---- */
/* Broadcast shapes a and b (PyTorch rules) into out; returns ndim or -1 with error. */
int lat__broadcast_shape(const lat_tensor *a, const lat_tensor *b, int64_t *out, const char *op);
/* Sum src (shape src_shape) down to dst's shape (which broadcasts to src_shape) */
void lat__sum_to(float *dst, int dst_ndim, const int64_t *dst_shape, const float *src,
                 int src_ndim, const int64_t *src_shape, bool accumulate);

#endif
