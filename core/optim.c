/* optim.c: fused in-place optimiser updates (SGD, AdamW) and the sum of squares for clipping.
 *
 * Each update follows the order of operations of torch.optim (PyTorch 1.13, single-tensor path)
 * in float32, with fmaf exactly where PyTorch's (GCC-built, AVX2) kernels fuse, so that SGD and
 * AdamW agree with it bit for bit; this file is compiled with -ffp-contract=off so that the
 * compiler fuses nothing else. */
#include "internal.h"
#include <math.h>
#include <stdlib.h>

static int check_pair(lat_tensor *p, lat_tensor *t, const char *op, const char *what) {
  if (!lat__check_f32(t, op, what)) return -1;
  if (!lat_same_shape(t, p))
    return lat__failc("%s: %s has shape %s but the parameter has shape %s", op, what, SHAPE(t),
                      SHAPE(p));
  return 0;
}

int lat_sgd_step_(lat_tensor *p, lat_tensor *grad, lat_tensor *momentum_buf, double lr,
                  double momentum, double dampening, int nesterov, double weight_decay,
                  int first) {
  const char *op = "sgd_step_";
  if (!lat__check_f32(p, op, "parameter") || check_pair(p, grad, op, "gradient")) return -1;
  if (momentum != 0 && check_pair(p, momentum_buf, op, "momentum buffer")) return -1;
  if (lat__begin_write(p, NULL, op, NULL) ||
      (momentum != 0 && lat__begin_write(momentum_buf, NULL, op, NULL)))
    return -1;
  float *restrict w = p->f, *restrict buf = momentum != 0 ? momentum_buf->f : NULL;
  const float *restrict g = grad->f;
  const float wd = (float)weight_decay, mom = (float)momentum, damp1 = (float)(1 - dampening);
  const float neg_lr = (float)-lr;
  const bool use_mom = momentum != 0, nest = nesterov != 0, init = first != 0;
  int64_t n = p->numel_;
  #pragma omp parallel for simd if (parallel : n > LAT_PAR_MIN * 8)
  for (int64_t k = 0; k < n; k++) {
    float d = wd != 0 ? fmaf(w[k], wd, g[k]) : g[k];        /* d = g + wd * p */
    if (use_mom) {
      float b = init ? d : fmaf(d, damp1, buf[k] * mom);     /* b = mom * b + (1 - damp) * d */
      buf[k] = b;
      d = nest ? fmaf(b, mom, d) : b;                        /* nesterov: d + mom * b */
    }
    w[k] = fmaf(d, neg_lr, w[k]);                            /* p -= lr * d */
  }
  return 0;
}

int lat_adamw_step_(lat_tensor *p, lat_tensor *grad, lat_tensor *m, lat_tensor *v, int64_t step,
                    double lr, double beta1, double beta2, double eps, double weight_decay) {
  const char *op = "adamw_step_";
  if (!lat__check_f32(p, op, "parameter") || check_pair(p, grad, op, "gradient") ||
      check_pair(p, m, op, "first moment") || check_pair(p, v, op, "second moment"))
    return -1;
  if (step < 1) return lat__failc("%s: step must be at least 1, got %lld", op, (long long)step);
  if (lat__begin_write(p, NULL, op, NULL) || lat__begin_write(m, NULL, op, NULL) ||
      lat__begin_write(v, NULL, op, NULL))
    return -1;
  float *restrict w = p->f, *restrict mm = m->f, *restrict vv = v->f;
  const float *restrict g = grad->f;
  const float decay = (float)(1 - lr * weight_decay);
  const float b1 = (float)beta1, b2 = (float)beta2;
  const float omb1 = (float)(1 - beta1), omb2 = (float)(1 - beta2);
  const double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
  const float neg_step_size = (float)(-lr / bc1), bc2_sqrt = (float)sqrt(bc2);
  const float epsf = (float)eps;
  int64_t n = p->numel_;
  #pragma omp parallel for simd if (parallel : n > LAT_PAR_MIN * 8)
  for (int64_t k = 0; k < n; k++) {
    float wk = w[k] * decay;                                 /* decoupled weight decay */
    float gk = g[k];
    float mk = fmaf(gk, omb1, mm[k] * b1);                   /* m = b1 m + (1 - b1) g */
    float vk = fmaf(omb2 * gk, gk, vv[k] * b2);              /* v = b2 v + (1 - b2) g^2 */
    mm[k] = mk;
    vv[k] = vk;
    float denom = sqrtf(vk) / bc2_sqrt + epsf;
    w[k] = wk + neg_step_size * mk / denom;                  /* p -= lr / bc1 * m / denom */
  }
  return 0;
}

/* Summed in chunks of fixed size, each in double, the chunk sums added in order: the same
 * result at any thread count. */
enum { SUMSQ_CHUNK = 1 << 16 };

static double sumsq_chunk(const float *x, int64_t n) {
  double s = 0;
  #pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; k++) s += (double)x[k] * x[k];
  return s;
}

int lat_sum_squares(lat_tensor *t, double *out) {
  if (!lat__check_f32(t, "sum_squares", "input")) return -1;
  if (!out) return lat__failc("sum_squares: output pointer is nil");
  int64_t n = t->numel_, chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
  if (chunks <= 1) { *out = sumsq_chunk(t->f, n); return 0; }
  double *part = malloc((size_t)chunks * sizeof *part);
  if (!part) return lat__failc("sum_squares: out of memory for %lld partial sums", (long long)chunks);
  const float *x = t->f;
  #pragma omp parallel for if (n > LAT_PAR_MIN * 8)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t lo = c * SUMSQ_CHUNK, len = n - lo < SUMSQ_CHUNK ? n - lo : SUMSQ_CHUNK;
    part[c] = sumsq_chunk(x + lo, len);
  }
  double s = 0;
  for (int64_t c = 0; c < chunks; c++) s += part[c];
  free(part);
  *out = s;
  return 0;
}
