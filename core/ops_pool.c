/* ops_pool.c: 2-D max and average pooling over [N, C, H, W] (or [C, H, W]) tensors, forward and
 * backward; max pooling keeps its argmax as int32 indices into each input plane. */
#include "internal.h"
#include <math.h>
#include <string.h>

/* computed once by pool_check; the node keeps it for backward */
typedef struct {
  int64_t planes, H, W, OH, OW; /* planes = N*C */
  int kh, kw, sh, sw, ph, pw;
} pool_geom;

static bool pool_check(const lat_tensor *x, const char *op, int kh, int kw, int sh, int sw, int ph,
                       int pw, pool_geom *g) {
  if (!lat__check_f32(x, op, "input")) return false;
  if (x->ndim != 4 && x->ndim != 3)
    return lat__fail("%s: input must be [N, C, H, W] or [C, H, W], got %s", op, SHAPE(x)), false;
  if (kh < 1 || kw < 1)
    return lat__fail("%s: kernel must be at least 1x1, got %dx%d", op, kh, kw), false;
  if (sh < 1 || sw < 1)
    return lat__fail("%s: stride must be at least 1, got %d x %d", op, sh, sw), false;
  if (ph < 0 || pw < 0)
    return lat__fail("%s: padding must not be negative, got %d x %d", op, ph, pw), false;
  if (2 * ph > kh || 2 * pw > kw)
    return lat__fail("%s: padding %dx%d is more than half the kernel %dx%d", op, ph, pw, kh, kw),
           false;
  int nd = x->ndim;
  g->H = x->shape_[nd - 2];
  g->W = x->shape_[nd - 1];
  g->planes = lat__prod(x->shape_, nd - 2);
  if (kh > g->H + 2 * ph || kw > g->W + 2 * pw)
    return lat__fail("%s: kernel %dx%d is larger than the padded input %lldx%lld (input %s, "
                     "padding %dx%d)", op, kh, kw, (long long)(g->H + 2 * ph),
                     (long long)(g->W + 2 * pw), SHAPE(x), ph, pw), false;
  g->OH = (g->H + 2 * ph - kh) / sh + 1;
  g->OW = (g->W + 2 * pw - kw) / sw + 1;
  g->kh = kh; g->kw = kw; g->sh = sh; g->sw = sw; g->ph = ph; g->pw = pw;
  return true;
}

static lat_tensor *pool_output(const lat_tensor *x, const pool_geom *g, int dtype) {
  int64_t shape[4];
  memcpy(shape, x->shape_, (size_t)x->ndim * sizeof *shape);
  shape[x->ndim - 2] = g->OH;
  shape[x->ndim - 1] = g->OW;
  return lat__new(dtype, x->ndim, shape);
}

/* the window of output (oh, ow) clipped to the input: rows [h0, h1), columns [w0, w1) */
#define WINDOW                                                                                 \
  int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;                                     \
  int64_t h1 = h0 + g->kh, w1 = w0 + g->kw;                                                     \
  if (h0 < 0) h0 = 0;                                                                           \
  if (w0 < 0) w0 = 0;                                                                           \
  if (h1 > g->H) h1 = g->H;                                                                     \
  if (w1 > g->W) w1 = g->W;

/* whether to split the planes across threads */
static bool par_planes(const pool_geom *g) {
  return g->planes > 1 && g->planes * g->OH * g->OW * g->kh * g->kw > LAT_PAR_MIN;
}

/* ---- max pooling ---- */

static void max_forward(const pool_geom *g, const float *x, float *y, int32_t *idx) {
  int64_t HW = g->H * g->W, OP = g->OH * g->OW;
  #pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t pl = 0; pl < g->planes; pl++) {
    const float *xp = x + pl * HW;
    float *yp = y + pl * OP;
    int32_t *ip = idx ? idx + pl * OP : NULL;
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {
      /* the common case: 2x2 windows side by side (same order and tie rule as below) */
      for (int64_t oh = 0; oh < g->OH; oh++)
        for (int64_t ow = 0; ow < g->OW; ow++) {
          int64_t at = 2 * oh * g->W + 2 * ow, cand[4] = {at, at + 1, at + g->W, at + g->W + 1};
          float m = -INFINITY;
          int64_t best = at;
          for (int k = 0; k < 4; k++) {
            float v = xp[cand[k]];
            if (v > m || isnan(v)) m = v, best = cand[k];
          }
          yp[oh * g->OW + ow] = m;
          if (ip) ip[oh * g->OW + ow] = (int32_t)best;
        }
      continue;
    }
    for (int64_t oh = 0; oh < g->OH; oh++)
      for (int64_t ow = 0; ow < g->OW; ow++) {
        WINDOW
        float m = -INFINITY;
        int64_t best = h0 * g->W + w0;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) {
            float v = xp[ih * g->W + iw];
            if (v > m || isnan(v)) { /* as PyTorch: the first maximum, the last NaN */
              m = v;
              best = ih * g->W + iw;
            }
          }
        yp[oh * g->OW + ow] = m;
        if (ip) ip[oh * g->OW + ow] = (int32_t)best;
      }
  }
}

static int max_pool_backward(lat_node *n, const lat_tensor *gout) {
  const pool_geom *g = LAT_NODE_STATE(n, pool_geom);
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  const int32_t *idx = n->saved[0]->i;
  int64_t HW = g->H * g->W, OP = g->OH * g->OW;
  const float *gy = gout->f;
  #pragma omp parallel for schedule(static) if (g->planes > 1 && g->planes * HW > LAT_PAR_MIN)
  for (int64_t pl = 0; pl < g->planes; pl++) {
    float *gp = gx + pl * HW;
    if (!acc) memset(gp, 0, (size_t)HW * sizeof *gp);
    const float *gyp = gy + pl * OP;
    const int32_t *ip = idx + pl * OP;
    for (int64_t k = 0; k < OP; k++) gp[ip[k]] += gyp[k];
  }
  return 0;
}

lat_tensor *lat_max_pool2d(lat_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw) {
  pool_geom g;
  if (!pool_check(x, "max_pool2d", kh, kw, sh, sw, ph, pw, &g)) return NULL;
  if (g.H * g.W > INT32_MAX)
    return lat__fail("max_pool2d: planes of %lld elements are too large for int32 indices",
                     (long long)(g.H * g.W));
  lat_tensor *y = pool_output(x, &g, LAT_F32);
  if (!y) return NULL;
  lat_tensor *idx = NULL;
  if (lat__needs_grad(1, &x)) {
    idx = pool_output(x, &g, LAT_I32);
    if (!idx) {
      lat_release(y);
      return NULL;
    }
  }
  max_forward(&g, x->f, y->f, idx ? idx->i : NULL);
  lat_node *n = lat__record(y, "max_pool2d", max_pool_backward, 1, &x);
  if (n) {
    *LAT_NODE_STATE(n, pool_geom) = g;
    n->saved[0] = idx;
  } else lat_release(idx);
  return y;
}

/* ---- average pooling (padding counts as zeros in the divisor, as PyTorch's default) ---- */

static bool is_2x2(const pool_geom *g) {
  return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0;
}

static void avg_forward(const pool_geom *g, const float *x, float *y) {
  int64_t HW = g->H * g->W, OP = g->OH * g->OW;
  float scale = 1.0f / (float)(g->kh * g->kw);
  #pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t pl = 0; pl < g->planes; pl++) {
    const float *xp = x + pl * HW;
    float *yp = y + pl * OP;
    if (is_2x2(g)) {
      for (int64_t oh = 0; oh < g->OH; oh++) {
        const float *r0 = xp + 2 * oh * g->W, *r1 = r0 + g->W;
        for (int64_t ow = 0; ow < g->OW; ow++)
          yp[oh * g->OW + ow] = 0.25f * ((r0[2 * ow] + r0[2 * ow + 1]) + (r1[2 * ow] + r1[2 * ow + 1]));
      }
      continue;
    }
    for (int64_t oh = 0; oh < g->OH; oh++)
      for (int64_t ow = 0; ow < g->OW; ow++) {
        WINDOW
        float s = 0;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) s += xp[ih * g->W + iw];
        yp[oh * g->OW + ow] = s * scale;
      }
  }
}

static void avg_backward(const pool_geom *g, const float *gy, float *gx, bool acc) {
  int64_t HW = g->H * g->W, OP = g->OH * g->OW;
  float scale = 1.0f / (float)(g->kh * g->kw);
  #pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t pl = 0; pl < g->planes; pl++) {
    float *gp = gx + pl * HW;
    const float *gyp = gy + pl * OP;
    if (is_2x2(g) && !acc && g->H % 2 == 0 && g->W % 2 == 0) { /* every input in one window */
      for (int64_t oh = 0; oh < g->OH; oh++) {
        float *r0 = gp + 2 * oh * g->W, *r1 = r0 + g->W;
        for (int64_t ow = 0; ow < g->OW; ow++) {
          float d = 0.25f * gyp[oh * g->OW + ow];
          r0[2 * ow] = r0[2 * ow + 1] = r1[2 * ow] = r1[2 * ow + 1] = d;
        }
      }
      continue;
    }
    if (!acc) memset(gp, 0, (size_t)HW * sizeof *gp);
    for (int64_t oh = 0; oh < g->OH; oh++)
      for (int64_t ow = 0; ow < g->OW; ow++) {
        WINDOW
        float d = gyp[oh * g->OW + ow] * scale;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) gp[ih * g->W + iw] += d;
      }
  }
}

static int avg_pool_backward(lat_node *n, const lat_tensor *gout) {
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  avg_backward(LAT_NODE_STATE(n, pool_geom), gout->f, gx, acc);
  return 0;
}

lat_tensor *lat_avg_pool2d(lat_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw) {
  pool_geom g;
  if (!pool_check(x, "avg_pool2d", kh, kw, sh, sw, ph, pw, &g)) return NULL;
  lat_tensor *y = pool_output(x, &g, LAT_F32);
  if (!y) return NULL;
  avg_forward(&g, x->f, y->f);
  lat_node *n = lat__record(y, "avg_pool2d", avg_pool_backward, 1, &x);
  if (n) *LAT_NODE_STATE(n, pool_geom) = g;
  return y;
}
