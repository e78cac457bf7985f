/* ops_softmax.c: softmax and log-softmax along any dimension, and cross-entropy fused with
 * log-softmax (log-sum-exp) for stability, forward and backward side by side. */
#include "internal.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* A tensor seen as [outer, size, inner] around dimension d. */
typedef struct { int64_t outer, size, inner; } lat_axis;

static lat_axis axis_of(const lat_tensor *x, int d) {
  lat_axis a = {lat__prod(x->shape_, d), x->shape_[d],
                lat__prod(x->shape_ + d + 1, x->ndim - d - 1)};
  return a;
}

/* columns of a strided (inner > 1) softmax handled together, so scratch fits on the stack */
enum { COLS = 256 };

/* ---------------- forward ---------------- */

/* One contiguous row of n: y = softmax(x) or log_softmax(x). */
static void row_forward(float *restrict y, const float *restrict x, int64_t n, bool log_) {
  float m = -INFINITY;
  #pragma omp simd reduction(max : m)
  for (int64_t k = 0; k < n; k++) m = x[k] > m ? x[k] : m;
  if (m == -INFINITY) m = 0; /* a row of -inf: exp gives 0s, the sum 0, the result nan as torch */
  float s = 0;
  if (log_) {
    #pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; k++) s += lat__expf(x[k] - m);
    float lse = m + logf(s);
    for (int64_t k = 0; k < n; k++) y[k] = x[k] - lse;
  } else {
    #pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; k++) {
      float e = lat__expf(x[k] - m);
      y[k] = e;
      s += e;
    }
    float r = 1.0f / s;
    for (int64_t k = 0; k < n; k++) y[k] *= r;
  }
}

/* Columns [c0, c0 + w) of block o of a strided softmax (inner > 1). */
static void cols_forward(float *y, const float *x, lat_axis a, int64_t o, int64_t c0, int64_t w,
                         bool log_) {
  float m[COLS], s[COLS];
  const float *xb = x + o * a.size * a.inner + c0;
  float *yb = y + o * a.size * a.inner + c0;
  for (int64_t i = 0; i < w; i++) {
    m[i] = -INFINITY;
    s[i] = 0;
  }
  for (int64_t k = 0; k < a.size; k++)
    for (int64_t i = 0; i < w; i++) {
      float v = xb[k * a.inner + i];
      m[i] = v > m[i] ? v : m[i];
    }
  for (int64_t i = 0; i < w; i++)
    if (m[i] == -INFINITY) m[i] = 0;
  for (int64_t k = 0; k < a.size; k++)
    for (int64_t i = 0; i < w; i++) {
      float e = lat__expf(xb[k * a.inner + i] - m[i]);
      if (!log_) yb[k * a.inner + i] = e;
      s[i] += e;
    }
  for (int64_t i = 0; i < w; i++) s[i] = log_ ? m[i] + logf(s[i]) : 1.0f / s[i];
  for (int64_t k = 0; k < a.size; k++)
    for (int64_t i = 0; i < w; i++) {
      int64_t j = k * a.inner + i;
      yb[j] = log_ ? xb[j] - s[i] : yb[j] * s[i];
    }
}

/* ---------------- backward ----------------
 * softmax:     gx = y * (g - sum_k g y)
 * log_softmax: gx = g - exp(y) * sum_k g */

static void row_backward(float *restrict gx, const float *restrict g, const float *restrict y,
                         int64_t n, bool log_, bool acc) {
  float s = 0;
  if (log_) {
    #pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; k++) s += g[k];
    for (int64_t k = 0; k < n; k++) {
      float d = g[k] - lat__expf(y[k]) * s;
      gx[k] = acc ? gx[k] + d : d;
    }
  } else {
    #pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; k++) s += g[k] * y[k];
    for (int64_t k = 0; k < n; k++) {
      float d = y[k] * (g[k] - s);
      gx[k] = acc ? gx[k] + d : d;
    }
  }
}

static void cols_backward(float *gx, const float *g, const float *y, lat_axis a, int64_t o,
                          int64_t c0, int64_t w, bool log_, bool acc) {
  float s[COLS];
  int64_t base = o * a.size * a.inner + c0;
  for (int64_t i = 0; i < w; i++) s[i] = 0;
  for (int64_t k = 0; k < a.size; k++)
    for (int64_t i = 0; i < w; i++) {
      int64_t j = base + k * a.inner + i;
      s[i] += log_ ? g[j] : g[j] * y[j];
    }
  for (int64_t k = 0; k < a.size; k++)
    for (int64_t i = 0; i < w; i++) {
      int64_t j = base + k * a.inner + i;
      float d = log_ ? g[j] - lat__expf(y[j]) * s[i] : y[j] * (g[j] - s[i]);
      gx[j] = acc ? gx[j] + d : d;
    }
}

typedef struct {
  bool log; /* log_softmax */
  int dim;  /* from 0 */
} softmax_saved;

static int softmax_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0];
  const float *y = n->saved[0]->f;
  const softmax_saved *arg = LAT_NODE_STATE(n, softmax_saved);
  bool log_ = arg->log, acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  lat_axis a = axis_of(x, arg->dim);
  if (a.inner == 1) {
    #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && a.outer > 1)
    for (int64_t o = 0; o < a.outer; o++)
      row_backward(gx + o * a.size, gout->f + o * a.size, y + o * a.size, a.size, log_, acc);
  } else {
    int64_t blocks = (a.inner + COLS - 1) / COLS, units = a.outer * blocks;
    #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && units > 1)
    for (int64_t u = 0; u < units; u++) {
      int64_t o = u / blocks, c0 = (u % blocks) * COLS;
      int64_t w = a.inner - c0 < COLS ? a.inner - c0 : COLS;
      cols_backward(gx, gout->f, y, a, o, c0, w, log_, acc);
    }
  }
  return 0;
}

static lat_tensor *softmax_common(lat_tensor *x, int dim, bool log_) {
  const char *op = log_ ? "log_softmax" : "softmax";
  if (!lat__check_f32(x, op, "input")) return NULL;
  if (x->ndim == 0) return lat__fail("%s: the input is a scalar; it needs a dimension", op);
  int d = lat__norm_dim(x, dim, op);
  if (d < 0) return NULL;
  lat_tensor *y = lat__new_like(x);
  if (!y) return NULL;
  lat_axis a = axis_of(x, d);
  if (a.inner == 1) { /* the common case: the last dimension, contiguous rows */
    #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && a.outer > 1)
    for (int64_t o = 0; o < a.outer; o++)
      row_forward(y->f + o * a.size, x->f + o * a.size, a.size, log_);
  } else {
    int64_t blocks = (a.inner + COLS - 1) / COLS, units = a.outer * blocks;
    #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && units > 1)
    for (int64_t u = 0; u < units; u++) {
      int64_t o = u / blocks, c0 = (u % blocks) * COLS;
      int64_t w = a.inner - c0 < COLS ? a.inner - c0 : COLS;
      cols_forward(y->f, x->f, a, o, c0, w, log_);
    }
  }
  lat_node *n = lat__record(y, op, softmax_backward, 1, &x);
  if (n) {
    *LAT_NODE_STATE(n, softmax_saved) = (softmax_saved){.log = log_, .dim = d};
    if (!(n->saved[0] = lat__save_output(y))) {
      lat_release(y);
      return NULL;
    }
  }
  return y;
}

lat_tensor *lat_softmax(lat_tensor *x, int dim) { return softmax_common(x, dim, false); }
lat_tensor *lat_log_softmax(lat_tensor *x, int dim) { return softmax_common(x, dim, true); }

/* ---------------- cross-entropy ----------------
 * logits [..., C], labels int32 [...]: loss_r = logsumexp(x_r) - x_r[label_r] for each row r
 * whose label is not ignore_index. Reduction: none (per row, 0 where ignored, in the labels'
 * shape), mean over the rows not ignored, or sum. As in PyTorch, 'mean' with every label
 * ignored gives nan (0 / 0) and a zero gradient. Backward: (softmax(x_r) - onehot) * g_r. */

typedef struct {
  int ignore_index, reduction; /* lat_cross_entropy's arguments */
  int64_t count;               /* rows whose label is not ignore_index */
} cross_entropy_saved;

static int cross_entropy_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0], *labels = n->in[1];
  const float *lse = n->saved[0]->f;
  const cross_entropy_saved *arg = LAT_NODE_STATE(n, cross_entropy_saved);
  int ignore = arg->ignore_index, red = arg->reduction;
  int64_t count = arg->count, C = x->shape_[x->ndim - 1], R = labels->numel_;
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  float gs = red == LAT_REDUCE_MEAN ? (count ? gout->f[0] / (float)count : 0.0f) : gout->f[0];
  #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && R > 1)
  for (int64_t r = 0; r < R; r++) {
    int32_t lab = labels->i[r];
    float *gr = gx + r * C;
    const float *xr = x->f + r * C;
    if (lab == ignore) {
      if (!acc) memset(gr, 0, (size_t)C * sizeof *gr);
      continue;
    }
    float g = red == LAT_REDUCE_NONE ? gout->f[r] : gs, l = lse[r];
    if (acc)
      for (int64_t k = 0; k < C; k++) gr[k] += g * lat__expf(xr[k] - l);
    else
      for (int64_t k = 0; k < C; k++) gr[k] = g * lat__expf(xr[k] - l);
    gr[lab] -= g;
  }
  return 0;
}

/* "[1, 4]" for flat position r of a tensor of the given shape */
static const char *index_str(const lat_tensor *t, int64_t r, char *buf, size_t n) {
  int64_t idx[LAT_MAX_DIMS];
  for (int d = t->ndim - 1; d >= 0; d--) {
    idx[d] = t->shape_[d] ? r % t->shape_[d] : 0;
    r = t->shape_[d] ? r / t->shape_[d] : 0;
  }
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < t->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)idx[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

lat_tensor *lat_cross_entropy(lat_tensor *logits, lat_tensor *labels, int ignore_index,
                              int reduction) {
  const char *op = "cross_entropy";
  if (!lat__check_f32(logits, op, "logits")) return NULL;
  if (!labels) return lat__fail("%s: labels is nil", op);
  if (labels->dtype_ != LAT_I32)
    return lat__fail("%s: labels must be int32 class numbers, got %s (convert with :int())", op,
                     lat__dtype_name(labels->dtype_));
  if (reduction < LAT_REDUCE_NONE || reduction > LAT_REDUCE_SUM)
    return lat__fail("%s: unknown reduction %d (0 none, 1 mean, 2 sum)", op, reduction);
  if (logits->ndim < 1) return lat__fail("%s: logits must be [..., classes], got a scalar", op);
  int64_t C = logits->shape_[logits->ndim - 1];
  lat_tensor lead = {0}; /* the logits' shape without the class dimension, for checks */
  lead.ndim = logits->ndim - 1;
  memcpy(lead.shape_, logits->shape_, sizeof lead.shape_);
  lead.shape_[lead.ndim] = 0;
  bool same = labels->ndim == lead.ndim;
  for (int d = 0; same && d < lead.ndim; d++) same = labels->shape_[d] == lead.shape_[d];
  if (!same)
    return lat__fail("%s: logits %s need labels of shape %s (the logits' shape without the last, "
                     "class dimension), got labels %s", op, SHAPE(logits), SHAPE(&lead),
                     SHAPE(labels));
  int64_t R = labels->numel_, count = 0;
  for (int64_t r = 0; r < R; r++) {
    int32_t lab = labels->i[r];
    if (lab == ignore_index) continue;
    if (lab < 0 || lab >= C)
      return lat__fail("%s: label %d at position %s (0-based) is out of range [0, %lld) for %lld "
                       "classes", op, lab, index_str(labels, r, (char[96]){0}, 96),
                       (long long)C, (long long)C);
    count++;
  }
  bool rec = lat__needs_grad(1, &logits);
  lat_tensor *lse = rec ? lat__new(LAT_F32, 1, &R) : NULL;
  lat_tensor *loss = reduction == LAT_REDUCE_NONE ? lat__new(LAT_F32, labels->ndim, labels->shape_)
                                                   : lat__new(LAT_F32, 0, NULL);
  if (!loss || (rec && !lse)) {
    lat_release(loss);
    lat_release(lse);
    return NULL;
  }
  float *per = reduction == LAT_REDUCE_NONE ? loss->f : NULL;
  double total = 0;
  #pragma omp parallel for reduction(+ : total) if (logits->numel_ > LAT_PAR_MIN && R > 1)
  for (int64_t r = 0; r < R; r++) {
    int32_t lab = labels->i[r];
    if (lab == ignore_index) {
      if (per) per[r] = 0;
      continue;
    }
    const float *xr = logits->f + r * C;
    float m = -INFINITY, s = 0;
    #pragma omp simd reduction(max : m)
    for (int64_t k = 0; k < C; k++) m = xr[k] > m ? xr[k] : m;
    if (m == -INFINITY) m = 0;
    #pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < C; k++) s += lat__expf(xr[k] - m);
    float l = m + logf(s);
    if (lse) lse->f[r] = l;
    float v = l - xr[lab];
    if (per) per[r] = v;
    total += v;
  }
  if (reduction == LAT_REDUCE_SUM) loss->f[0] = (float)total;
  else if (reduction == LAT_REDUCE_MEAN) loss->f[0] = count ? (float)(total / (double)count) : NAN;
  lat_tensor *ins[2] = {logits, labels};
  lat_node *n = lat__record(loss, op, cross_entropy_backward, 2, ins);
  if (n) {
    *LAT_NODE_STATE(n, cross_entropy_saved) =
        (cross_entropy_saved){.ignore_index = ignore_index, .reduction = reduction, .count = count};
    n->saved[0] = lse;
  } else {
    lat_release(lse);
  }
  return loss;
}
