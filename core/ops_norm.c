/* ops_norm.c: layer norm (over the last dimension) and batch norm (per channel of [N, C] or
 * [N, C, H, W]), forward and backward side by side. Both save the mean and 1/std they used. */
#include "internal.h"
#include <math.h>
#include <string.h>

/* Checks an optional per-feature tensor (weight, bias, running stats): float32 [n] or NULL. */
static bool check_vec(const lat_tensor *t, int64_t n, const char *op, const char *arg,
                      const lat_tensor *x) {
  if (!t) return true;
  if (!lat__check_f32(t, op, arg)) return false;
  if (t->ndim != 1 || t->shape_[0] != n)
    return lat__fail("%s: %s must be [%lld] for input %s, got %s", op, arg, (long long)n,
                     SHAPE(x), SHAPE(t)), false;
  return true;
}

/* The gradient of the normalised value xhat = (x - mean) * rstd back to x, over a set of m
 * values, given gh = dL/dxhat summed as sg = sum gh and sgx = sum gh * xhat:
 * gx = rstd * (gh - sg / m - xhat * sgx / m). */

/* ---------------- layer norm ---------------- */

/* The saved statistics of n groups: the mean as a float and the rest of the double mean (the
 * mean is hi + lo), and 1/std. With a mean far above the spread (mean/std = 100), x - hi is
 * exact and the rounding of the mean to float alone would be the largest error of xhat. */
typedef struct { lat_tensor *hi, *lo, *rstd; } norm_stats;

/* xhat = (x - mean) rstd, with the mean as hi + lo */
static inline float normalised(float x, float hi, float lo, float rs) {
  return ((x - hi) - lo) * rs;
}

/* the output (shaped like x) and the statistics of n groups; all or none */
static bool new_with_stats(const lat_tensor *x, int64_t n, lat_tensor **y, norm_stats *st) {
  *y = lat__new_like(x);
  st->hi = *y ? lat__new(LAT_F32, 1, &n) : NULL;
  st->lo = st->hi ? lat__new(LAT_F32, 1, &n) : NULL;
  st->rstd = st->lo ? lat__new(LAT_F32, 1, &n) : NULL;
  if (st->rstd) return true;
  lat_release(*y);
  lat_release(st->hi);
  lat_release(st->lo);
  return false;
}

static void set_stats(norm_stats *st, int64_t i, double mean, double var, double eps) {
  float hi = (float)mean;
  st->hi->f[i] = hi;
  st->lo->f[i] = (float)(mean - (double)hi);
  st->rstd->f[i] = (float)(1.0 / sqrt(var + eps));
}

/* keeps the statistics in the node for backward, or frees them */
static void save_stats(lat_node *n, norm_stats *st) {
  if (n) {
    n->saved[0] = st->hi;
    n->saved[1] = st->lo;
    n->saved[2] = st->rstd;
    return;
  }
  lat_release(st->hi);
  lat_release(st->lo);
  lat_release(st->rstd);
}

/* The two passes of the mean and variance, in double: in float, a sum of values with a large
 * mean loses the digits that the spread lives in. */
static double sum_d(const float *restrict x, int64_t n) {
  double s = 0;
  #pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; k++) s += x[k];
  return s;
}

static double squared_deviations_d(const float *restrict x, int64_t n, double mu) {
  double v = 0;
  #pragma omp simd reduction(+ : v)
  for (int64_t k = 0; k < n; k++) v += (x[k] - mu) * (x[k] - mu);
  return v;
}

static int layer_norm_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0], *w = n->in[1];
  const float *mean = n->saved[0]->f, *mlo = n->saved[1]->f, *rstd = n->saved[2]->f;
  const float *g = gout->f;
  int64_t D = x->shape_[x->ndim - 1], R = D ? x->numel_ / D : 0;
  bool acc;
  if (n->need[0]) {
    float *gx = lat__grad_buf(n, 0, &acc);
    if (!gx) return -1;
    const float *wf = w ? w->f : NULL;
    #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && R > 1)
    for (int64_t r = 0; r < R; r++) {
      const float *xr = x->f + r * D, *gr = g + r * D;
      float *o = gx + r * D, mu = mean[r], lo = mlo[r], rs = rstd[r], sg = 0, sgx = 0;
      for (int64_t k = 0; k < D; k++) {
        float gh = wf ? gr[k] * wf[k] : gr[k];
        sg += gh;
        sgx += gh * normalised(xr[k], mu, lo, rs);
      }
      sg /= (float)D;
      sgx /= (float)D;
      for (int64_t k = 0; k < D; k++) {
        float gh = wf ? gr[k] * wf[k] : gr[k];
        float d = rs * (gh - sg - normalised(xr[k], mu, lo, rs) * sgx);
        o[k] = acc ? o[k] + d : d;
      }
    }
  }
  /* weight and bias: sums over rows, parallel over blocks of columns (no per-thread copies) */
  bool nw = n->need[1], nb = n->need[2];
  if (nw || nb) {
    bool accw = false, accb = false;
    float *gw = nw ? lat__grad_buf(n, 1, &accw) : NULL;
    float *gb = nb ? lat__grad_buf(n, 2, &accb) : NULL;
    if ((nw && !gw) || (nb && !gb)) return -1;
    if (gw && !accw) memset(gw, 0, (size_t)D * sizeof *gw);
    if (gb && !accb) memset(gb, 0, (size_t)D * sizeof *gb);
    enum { B = 64 };
    int64_t blocks = (D + B - 1) / B;
    #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && blocks > 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
      int64_t k0 = blk * B, k1 = k0 + B < D ? k0 + B : D;
      for (int64_t r = 0; r < R; r++) {
        const float *xr = x->f + r * D, *gr = g + r * D;
        float mu = mean[r], lo = mlo[r], rs = rstd[r];
        if (gw)
          for (int64_t k = k0; k < k1; k++) gw[k] += gr[k] * normalised(xr[k], mu, lo, rs);
        if (gb)
          for (int64_t k = k0; k < k1; k++) gb[k] += gr[k];
      }
    }
  }
  return 0;
}

lat_tensor *lat_layer_norm(lat_tensor *x, lat_tensor *w, lat_tensor *b, double eps) {
  const char *op = "layer_norm";
  if (!lat__check_f32(x, op, "input")) return NULL;
  if (x->ndim < 1) return lat__fail("%s: the input is a scalar; it needs a last dimension", op);
  if (!(eps >= 0)) return lat__fail("%s: eps must be >= 0, got %g", op, eps);
  int64_t D = x->shape_[x->ndim - 1], R = D ? x->numel_ / D : 0;
  if (!check_vec(w, D, op, "weight", x) || !check_vec(b, D, op, "bias", x)) return NULL;
  lat_tensor *y;
  norm_stats st;
  if (!new_with_stats(x, R, &y, &st)) return NULL;
  const float *wf = w ? w->f : NULL, *bf = b ? b->f : NULL;
  #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && R > 1)
  for (int64_t r = 0; r < R; r++) {
    const float *xr = x->f + r * D;
    float *yr = y->f + r * D;
    double md = sum_d(xr, D) / (double)D;
    set_stats(&st, r, md, squared_deviations_d(xr, D, md) / (double)D, eps);
    float mu = st.hi->f[r], lo = st.lo->f[r], rs = st.rstd->f[r];
    for (int64_t k = 0; k < D; k++) {
      float v = normalised(xr[k], mu, lo, rs);
      if (wf) v *= wf[k];
      if (bf) v += bf[k];
      yr[k] = v;
    }
  }
  lat_tensor *ins[3] = {x, w, b};
  save_stats(lat__record(y, op, layer_norm_backward, 3, ins), &st);
  return y;
}

/* ---------------- batch norm ----------------
 * x is [N, C] or [N, C, H, W], seen as [N, C, S] with S = H W (1 for 2-D); channel c holds the
 * m = N S values x[n, c, :]. Training: normalise with the batch mean and biased variance, and
 * update the running stats in place as PyTorch does (running_var takes the unbiased variance,
 * m / (m - 1) times the biased one). Evaluation: normalise with the running stats, which are
 * then constants for backward. Running stats are not inputs of the node: no gradient flows to
 * them. */

typedef struct {
  bool training; /* normalised with the batch's statistics, not the running ones */
} batch_norm_saved;

static int batch_norm_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0], *w = n->in[1];
  const float *mean = n->saved[0]->f, *mlo = n->saved[1]->f, *rstd = n->saved[2]->f;
  const float *g = gout->f;
  bool training = LAT_NODE_STATE(n, batch_norm_saved)->training;
  int64_t N = x->shape_[0], C = x->shape_[1], S = x->ndim == 4 ? x->shape_[2] * x->shape_[3] : 1;
  double m = (double)(N * S);
  bool accx = false, accw = false, accb = false;
  float *gx = n->need[0] ? lat__grad_buf(n, 0, &accx) : NULL;
  float *gw = n->need[1] ? lat__grad_buf(n, 1, &accw) : NULL;
  float *gb = n->need[2] ? lat__grad_buf(n, 2, &accb) : NULL;
  if ((n->need[0] && !gx) || (n->need[1] && !gw) || (n->need[2] && !gb)) return -1;
  #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && C > 1)
  for (int64_t c = 0; c < C; c++) {
    float mu = mean[c], lo = mlo[c], rs = rstd[c], wc = w ? w->f[c] : 1.0f;
    double sg = 0, sgx = 0; /* sums of g and g * xhat over the channel */
    /* in evaluation mode gx needs neither sum (an attack on a model in evaluation mode) */
    bool sums = training || gw || gb;
    for (int64_t i = 0; sums && i < N; i++) {
      const float *xp = x->f + (i * C + c) * S, *gp = g + (i * C + c) * S;
      float a = 0, bsum = 0;
      #pragma omp simd reduction(+ : a, bsum)
      for (int64_t s = 0; s < S; s++) {
        a += gp[s];
        bsum += gp[s] * ((xp[s] - mu) - lo);
      }
      sg += a;
      sgx += (double)bsum * rs;
    }
    if (gw) gw[c] = accw ? gw[c] + (float)sgx : (float)sgx;
    if (gb) gb[c] = accb ? gb[c] + (float)sg : (float)sg;
    if (!gx) continue;
    float k = wc * rs;
    /* training: gx = k (g - sg/m - xhat sgx/m); evaluation: gx = k g */
    float c0 = training ? (float)(sg / m) : 0.0f, c1 = training ? (float)(sgx / m) * rs : 0.0f;
    for (int64_t i = 0; i < N; i++) {
      const float *xp = x->f + (i * C + c) * S, *gp = g + (i * C + c) * S;
      float *o = gx + (i * C + c) * S;
      if (!training && accx) {
        #pragma omp simd
        for (int64_t s = 0; s < S; s++) o[s] += k * gp[s];
      } else if (!training) {
        #pragma omp simd
        for (int64_t s = 0; s < S; s++) o[s] = k * gp[s];
      } else if (accx) {
        #pragma omp simd
        for (int64_t s = 0; s < S; s++) o[s] += k * (gp[s] - c0 - ((xp[s] - mu) - lo) * c1);
      } else {
        #pragma omp simd
        for (int64_t s = 0; s < S; s++) o[s] = k * (gp[s] - c0 - ((xp[s] - mu) - lo) * c1);
      }
    }
  }
  return 0;
}

lat_tensor *lat_batch_norm(lat_tensor *x, lat_tensor *w, lat_tensor *b, lat_tensor *running_mean,
                           lat_tensor *running_var, int training, double momentum, double eps) {
  const char *op = "batch_norm";
  if (!lat__check_f32(x, op, "input")) return NULL;
  if (x->ndim != 2 && x->ndim != 4)
    return lat__fail("%s: input must be [N, C] or [N, C, H, W], got %s", op, SHAPE(x));
  if (!(eps >= 0)) return lat__fail("%s: eps must be >= 0, got %g", op, eps);
  int64_t N = x->shape_[0], C = x->shape_[1], S = x->ndim == 4 ? x->shape_[2] * x->shape_[3] : 1;
  int64_t m = N * S;
  if (!check_vec(w, C, op, "weight", x) || !check_vec(b, C, op, "bias", x) ||
      !check_vec(running_mean, C, op, "running mean", x) ||
      !check_vec(running_var, C, op, "running variance", x))
    return NULL;
  if (training && m < 2)
    return lat__fail("%s: training needs more than one value per channel, got input %s (use "
                     "evaluation mode or a larger batch)", op, SHAPE(x));
  if (!training && (!running_mean || !running_var))
    return lat__fail("%s: evaluation mode needs the running mean and variance (pass them, or "
                     "use training mode for batch statistics)", op);
  lat_tensor *y;
  norm_stats st;
  if (!new_with_stats(x, C, &y, &st)) return NULL;
  float *rm = running_mean ? running_mean->f : NULL, *rv = running_var ? running_var->f : NULL;
  const float *wf = w ? w->f : NULL, *bf = b ? b->f : NULL;
  #pragma omp parallel for if (x->numel_ > LAT_PAR_MIN && C > 1)
  for (int64_t c = 0; c < C; c++) {
    if (training) {
      double s = 0, v = 0;
      for (int64_t i = 0; i < N; i++) s += sum_d(x->f + (i * C + c) * S, S);
      double md = s / (double)m;
      for (int64_t i = 0; i < N; i++) v += squared_deviations_d(x->f + (i * C + c) * S, S, md);
      double var = v / (double)m;
      set_stats(&st, c, md, var, eps);
      if (rm) rm[c] = (float)((1.0 - momentum) * rm[c] + momentum * md);
      if (rv)
        rv[c] = (float)((1.0 - momentum) * rv[c] + momentum * var * (double)m / (double)(m - 1));
    } else {
      set_stats(&st, c, rm[c], rv[c], eps);
    }
    float mu = st.hi->f[c], lo = st.lo->f[c], rs = st.rstd->f[c];
    float k = wf ? wf[c] * rs : rs, sh = bf ? bf[c] : 0.0f;
    for (int64_t i = 0; i < N; i++) {
      const float *xp = x->f + (i * C + c) * S;
      float *yp = y->f + (i * C + c) * S;
      #pragma omp simd
      for (int64_t j = 0; j < S; j++) yp[j] = ((xp[j] - mu) - lo) * k + sh;
    }
  }
  lat_tensor *ins[3] = {x, w, b};
  lat_node *n = lat__record(y, op, batch_norm_backward, 3, ins);
  if (n) LAT_NODE_STATE(n, batch_norm_saved)->training = training != 0;
  save_stats(n, &st);
  return y;
}
