/* ops_conv.c: 2-D convolution over NCHW tensors, forward and backward: argument checks, the
 * choice of path, and the im2col + cblas_sgemm path over chunks of images (split across
 * threads, each running a one-thread sgemm). The direct AVX-512 path is in conv_direct.c. */
#include "conv.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* C[M,N] (ldc) = op(A) op(B) + beta C */
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                 const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0)
      for (int64_t r = 0; r < M; r++) memset(C + r * ldc, 0, (size_t)N * sizeof *C);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* [lo, hi): the output columns ow whose input column ow*s - p + j lies inside [0, W) */
static void valid_cols(int64_t OW, int64_t W, int s, int p, int64_t j, int64_t *lo, int64_t *hi) {
  int64_t off = j - p; /* input column = ow*s + off */
  *lo = off >= 0 ? 0 : (-off + s - 1) / s;
  *hi = W - off <= 0 ? 0 : (W - off + s - 1) / s;
  if (*hi > OW) *hi = OW;
  if (*lo > *hi) *lo = *hi;
}

/* col[K, P] (row stride ld) from one image x[C, H, W]; zeros where the window meets padding */
static void im2col(const conv_geom *g, const float *restrict x, float *restrict col, int64_t ld) {
  for (int64_t c = 0; c < g->C; c++)
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++) {
        float *row = col + ((c * g->kh + i) * g->kw + j) * ld;
        const float *xc = x + c * g->H * g->W;
        int64_t lo, hi, off = j - g->pw;
        valid_cols(g->OW, g->W, g->sw, g->pw, j, &lo, &hi);
        for (int64_t oh = 0; oh < g->OH; oh++) {
          float *r = row + oh * g->OW;
          int64_t ih = oh * g->sh - g->ph + i;
          if (ih < 0 || ih >= g->H) {
            memset(r, 0, (size_t)g->OW * sizeof *r);
            continue;
          }
          const float *xr = xc + ih * g->W;
          for (int64_t ow = 0; ow < lo; ow++) r[ow] = 0;
          if (g->sw == 1) memcpy(r + lo, xr + lo + off, (size_t)(hi - lo) * sizeof *r);
          else
            for (int64_t ow = lo; ow < hi; ow++) r[ow] = xr[ow * g->sw + off];
          for (int64_t ow = hi; ow < g->OW; ow++) r[ow] = 0;
        }
      }
}

/* dx[C, H, W] += the columns of dcol[K, P] (row stride ld) put back where im2col took them */
static void col2im(const conv_geom *g, const float *restrict dcol, int64_t ld, float *restrict dx) {
  for (int64_t c = 0; c < g->C; c++)
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++) {
        const float *row = dcol + ((c * g->kh + i) * g->kw + j) * ld;
        float *xc = dx + c * g->H * g->W;
        int64_t lo, hi, off = j - g->pw;
        valid_cols(g->OW, g->W, g->sw, g->pw, j, &lo, &hi);
        for (int64_t oh = 0; oh < g->OH; oh++) {
          int64_t ih = oh * g->sh - g->ph + i;
          if (ih < 0 || ih >= g->H) continue;
          const float *r = row + oh * g->OW;
          float *xr = xc + ih * g->W;
          if (g->sw == 1)
            for (int64_t ow = lo; ow < hi; ow++) xr[ow + off] += r[ow];
          else
            for (int64_t ow = lo; ow < hi; ow++) xr[ow * g->sw + off] += r[ow];
        }
      }
}

/* ---- work split: chunks of images over threads, one-thread sgemm inside ---- */

static int64_t n_chunks(const conv_geom *g) { return (g->N + g->B - 1) / g->B; }

/* threads to use over chunks: 1 (and let sgemm thread itself) unless there are enough chunks */
static int split_threads(const conv_geom *g) {
  int T = lat__threads();
  double flops = 2.0 * (double)g->N * (double)g->O * (double)g->P * (double)g->K;
  if (T <= 1 || n_chunks(g) < T || flops < 4e6) return 1;
  return T;
}

/* LAT_CONV_PATH=im2col or direct forces a path (for tests and benchmarks); default: direct
 * kernels where they apply and there is an image per thread or the work is small */
static bool use_direct(const conv_geom *g) {
  if (!lat__cpu_avx512() || !lat__conv_direct_ok(g)) return false;
  const char *e = getenv("LAT_CONV_PATH");
  if (e && !strcmp(e, "im2col")) return false;
  if (e && !strcmp(e, "direct")) return true;
  double flops = 2.0 * (double)g->N * (double)g->O * (double)g->P * (double)g->K;
  return g->N >= lat__threads() || flops < 5e7;
}

static int direct_threads(const conv_geom *g) {
  int T = lat__threads();
  double flops = 2.0 * (double)g->N * (double)g->O * (double)g->P * (double)g->K;
  return T > 1 && g->N >= T && flops >= 4e6 ? T : 1;
}


/* scratch: per-thread blocks of `each` floats, from the caching allocator */
typedef struct { float *p; size_t bytes; } scratch;

static bool scratch_get(scratch *s, int nt, int64_t each) {
  s->bytes = (size_t)nt * (size_t)(each > 0 ? each : 1) * sizeof(float);
  s->p = lat__alloc(s->bytes);
  if (!s->p) lat__fail("conv2d: out of memory for %zu bytes of scratch", s->bytes);
  return s->p != NULL;
}
static void scratch_put(scratch *s) {
  if (s->p) lat__free(s->p, s->bytes);
  s->p = NULL;
}

/* ---- forward ---- */

static void conv_forward(const conv_geom *g, const float *x, const float *w, const float *b,
                         float *y, float *scr, int64_t each, int nt) {
  int64_t K = g->K, P = g->P, O = g->O, B = g->B, nc = n_chunks(g);
  #pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float *col = scr + (size_t)omp_get_thread_num() * (size_t)each; /* [K, B*P] */
    float *tmp = col + (g->x_is_col && B == 1 ? 0 : K * B * P);       /* [O, B*P] if B > 1 */
    #pragma omp for schedule(static)
    for (int64_t ch = 0; ch < nc; ch++) {
      int64_t n0 = ch * B, nb = g->N - n0 < B ? g->N - n0 : B;
      const float *xn = x + n0 * g->C * g->H * g->W;
      float *yn = y + n0 * O * P;
      if (nb == 1) {
        if (b)
          for (int64_t o = 0; o < O; o++)
            for (int64_t p = 0; p < P; p++) yn[o * P + p] = b[o];
        const float *cm = xn;
        if (!g->x_is_col) {
          im2col(g, xn, col, P);
          cm = col;
        }
        gemm(false, false, O, P, K, w, K, cm, P, b ? 1.0f : 0.0f, yn, P);
        continue;
      }
      /* several images: one gemm over [K, nb*P], then scatter the [O, nb*P] result */
      for (int64_t k = 0; k < nb; k++) {
        const float *xk = xn + k * g->C * g->H * g->W;
        if (g->x_is_col)
          for (int64_t r = 0; r < K; r++) memcpy(col + r * nb * P + k * P, xk + r * P, (size_t)P * 4);
        else im2col(g, xk, col + k * P, nb * P);
      }
      gemm(false, false, O, nb * P, K, w, K, col, nb * P, 0.0f, tmp, nb * P);
      for (int64_t k = 0; k < nb; k++)
        for (int64_t o = 0; o < O; o++) {
          const float *s = tmp + o * nb * P + k * P;
          float *d = yn + (k * O + o) * P, bo = b ? b[o] : 0.0f;
          for (int64_t p = 0; p < P; p++) d[p] = s[p] + bo;
        }
    }
  }
}

/* ---- backward ---- */

/* scratch per thread: col [K, B*P] (for dw), dcol [K, B*P] (for dx), gy gathered [O, B*P] (if
 * B > 1), partial dw [O*K], partial db [O] */
typedef struct { int64_t col, dcol, gy, dw, db, each; } bw_layout;

static bw_layout layout(const conv_geom *g, bool nx, bool nw, bool nb) {
  bw_layout l = {0};
  int64_t cp = g->K * g->B * g->P;
  int64_t at = 0;
  l.col = at; at += nw && !(g->x_is_col && g->B == 1) ? cp : 0;
  l.dcol = at; at += nx && !(g->x_is_col && g->B == 1) ? cp : 0;
  l.gy = at; at += g->B > 1 ? g->O * g->B * g->P : 0;
  l.dw = at; at += nw ? g->O * g->K : 0;
  l.db = at; at += nb ? g->O : 0;
  l.each = (at + 15) & ~(int64_t)15; /* keep each thread's block on its own cache lines */
  return l;
}

static void conv_backward_work(const conv_geom *g, const float *x, const float *w,
                               const float *gy, float *gx, bool acc_x, float *scr, bw_layout l,
                               bool nw, bool nb, int nt) {
  int64_t K = g->K, P = g->P, O = g->O, B = g->B, nc = n_chunks(g), CHW = g->C * g->H * g->W;
  bool nx = gx != NULL;
  #pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float *base = scr + (size_t)omp_get_thread_num() * (size_t)l.each;
    float *col = base + l.col, *dcol = base + l.dcol, *gyc = base + l.gy;
    float *dw = base + l.dw, *db = base + l.db;
    if (nw) memset(dw, 0, (size_t)(O * K) * sizeof *dw);
    if (nb) memset(db, 0, (size_t)O * sizeof *db);
    #pragma omp for schedule(static)
    for (int64_t ch = 0; ch < nc; ch++) {
      int64_t n0 = ch * B, nbt = g->N - n0 < B ? g->N - n0 : B, ld = nbt * P;
      const float *gyn = gy + n0 * O * P, *xn = x + n0 * CHW;
      const float *gm = gyn; /* the chunk's upstream gradient as [O, nbt*P] */
      if (nbt > 1) {
        for (int64_t k = 0; k < nbt; k++)
          for (int64_t o = 0; o < O; o++)
            memcpy(gyc + o * ld + k * P, gyn + (k * O + o) * P, (size_t)P * sizeof *gyc);
        gm = gyc;
      }
      if (nb)
        for (int64_t o = 0; o < O; o++) {
          const float *r = gm + o * ld;
          float s = 0;
          #pragma omp simd reduction(+ : s)
          for (int64_t p = 0; p < ld; p++) s += r[p];
          db[o] += s;
        }
      if (nw) { /* dw[O, K] += gy [O, ld] col^T [ld, K] */
        const float *cm;
        if (g->x_is_col && nbt == 1) cm = xn;
        else {
          for (int64_t k = 0; k < nbt; k++) {
            const float *xk = xn + k * CHW;
            if (g->x_is_col)
              for (int64_t r = 0; r < K; r++) memcpy(col + r * ld + k * P, xk + r * P, (size_t)P * 4);
            else im2col(g, xk, col + k * P, ld);
          }
          cm = col;
        }
        gemm(false, true, O, K, ld, gm, ld, cm, ld, 1.0f, dw, K);
      }
      if (nx) { /* dcol [K, ld] = w^T [K, O] gy [O, ld], then back to image layout */
        float *gxn = gx + n0 * CHW;
        if (g->x_is_col && nbt == 1) {
          gemm(true, false, K, P, O, w, K, gm, P, acc_x ? 1.0f : 0.0f, gxn, P);
          continue;
        }
        gemm(true, false, K, ld, O, w, K, gm, ld, 0.0f, dcol, ld);
        if (!acc_x) memset(gxn, 0, (size_t)(nbt * CHW) * sizeof *gxn);
        for (int64_t k = 0; k < nbt; k++) {
          if (g->x_is_col) {
            float *d = gxn + k * CHW;
            for (int64_t r = 0; r < K; r++)
              for (int64_t p = 0; p < P; p++) d[r * P + p] += dcol[r * ld + k * P + p];
          } else col2im(g, dcol + k * P, ld, gxn + k * CHW);
        }
      }
    }
  }
}

/* The geometry of x [N, C, H, W] convolved with w [O, C, kh, kw] (already checked), which
 * forward uses and the node keeps for backward */
static conv_geom geometry(const lat_tensor *x, const lat_tensor *w, int sh, int sw, int ph,
                          int pw) {
  conv_geom g = {.N = x->shape_[0], .C = x->shape_[1], .H = x->shape_[2], .W = x->shape_[3],
                 .O = w->shape_[0], .kh = w->shape_[2], .kw = w->shape_[3], .B = 1,
                 .sh = sh, .sw = sw, .ph = ph, .pw = pw};
  g.OH = (g.H + 2 * g.ph - g.kh) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.kw) / g.sw + 1;
  g.K = g.C * g.kh * g.kw;
  g.P = g.OH * g.OW;
  g.x_is_col = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  /* small outputs: several images per gemm so that it has at least ~256 columns */
  if (g.P > 0 && g.P < 256) {
    g.B = (256 + g.P - 1) / g.P;
    if (g.B > g.N) g.B = g.N > 0 ? g.N : 1;
  }
  return g;
}

static int conv_backward(lat_node *n, const lat_tensor *gout) {
  const conv_geom *g = LAT_NODE_STATE(n, conv_geom);
  bool nx = n->need[0], nw = n->need[1], nb = n->n_in > 2 && n->need[2];
  if (g->N == 0) { /* nothing flowed back: zero gradients for w and b, a zero-size one for x */
    for (int k = 0; k < n->n_in; k++) {
      if (!n->need[k]) continue;
      bool acc;
      float *d = lat__grad_buf(n, k, &acc);
      if (!d) return -1;
      if (!acc) memset(d, 0, (size_t)n->in[k]->numel_ * sizeof *d);
    }
    return 0;
  }
  bool acc_x = false, acc_w = false, acc_b = false;
  float *gx = nx ? lat__grad_buf(n, 0, &acc_x) : NULL;
  float *gw = nw ? lat__grad_buf(n, 1, &acc_w) : NULL;
  float *gb = nb ? lat__grad_buf(n, 2, &acc_b) : NULL;
  if ((nx && !gx) || (nw && !gw) || (nb && !gb)) return -1;
  if (use_direct(g))
    return lat__conv_direct_backward(g, n->in[0]->f, n->in[1]->f, gout->f, gx, acc_x, gw, acc_w,
                                     gb, acc_b, direct_threads(g));
  int nt = split_threads(g);
  bw_layout l = layout(g, nx, nw, nb);
  scratch s;
  if (!scratch_get(&s, nt, l.each)) return -1;
  lat__blas_single_begin(nt);
  conv_backward_work(g, n->in[0]->f, n->in[1]->f, gout->f, gx, acc_x, s.p, l, nw, nb, nt);
  lat__blas_single_end(nt);
  /* reduce the per-thread partial sums of dw and db */
  for (int t = 0; t < nt; t++) {
    const float *base = s.p + (size_t)t * (size_t)l.each;
    if (nw) {
      const float *d = base + l.dw;
      int64_t cnt = g->O * g->K;
      if (t == 0 && !acc_w) memcpy(gw, d, (size_t)cnt * sizeof *gw);
      else
        for (int64_t k = 0; k < cnt; k++) gw[k] += d[k];
    }
    if (nb) {
      const float *d = base + l.db;
      if (t == 0 && !acc_b) memcpy(gb, d, (size_t)g->O * sizeof *gb);
      else
        for (int64_t k = 0; k < g->O; k++) gb[k] += d[k];
    }
  }
  scratch_put(&s);
  return 0;
}

lat_tensor *lat_conv2d(lat_tensor *x, lat_tensor *w, lat_tensor *b, int stride_h, int stride_w,
                       int pad_h, int pad_w) {
  if (!lat__check_f32(x, "conv2d", "input") || !lat__check_f32(w, "conv2d", "weight"))
    return NULL;
  if (b && !lat__check_f32(b, "conv2d", "bias")) return NULL;
  if (x->ndim != 4)
    return lat__fail("conv2d: input must be [N, C, H, W], got %s (add a batch dimension of 1 "
                     "for a single image)", SHAPE(x));
  if (w->ndim != 4)
    return lat__fail("conv2d: weight must be [out_channels, in_channels, kh, kw], got %s",
                     SHAPE(w));
  if (x->shape_[1] != w->shape_[1])
    return lat__fail("conv2d: input has %lld channels, weight expects %lld (input %s, weight %s)",
                     (long long)x->shape_[1], (long long)w->shape_[1], SHAPE(x), SHAPE(w));
  if (b && (b->ndim != 1 || b->shape_[0] != w->shape_[0]))
    return lat__fail("conv2d: bias must be [%lld] (one per output channel), got %s",
                     (long long)w->shape_[0], SHAPE(b));
  if (stride_h < 1 || stride_w < 1)
    return lat__fail("conv2d: stride must be at least 1, got %d x %d", stride_h, stride_w);
  if (pad_h < 0 || pad_w < 0)
    return lat__fail("conv2d: padding must not be negative, got %d x %d", pad_h, pad_w);
  if (w->shape_[2] < 1 || w->shape_[3] < 1)
    return lat__fail("conv2d: kernel must be at least 1x1, weight is %s", SHAPE(w));
  int64_t PH = x->shape_[2] + 2 * (int64_t)pad_h, PW = x->shape_[3] + 2 * (int64_t)pad_w;
  if (w->shape_[2] > PH || w->shape_[3] > PW)
    return lat__fail("conv2d: kernel %lldx%lld is larger than the padded input %lldx%lld "
                     "(input %s, padding %dx%d)", (long long)w->shape_[2], (long long)w->shape_[3],
                     (long long)PH, (long long)PW, SHAPE(x), pad_h, pad_w);
  conv_geom g = geometry(x, w, stride_h, stride_w, pad_h, pad_w);
  if ((double)g.K * (double)(g.P > 256 ? g.P : 256) * 4 > (double)LAT_MAX_BYTES)
    return lat__fail("conv2d: input %s with weight %s needs an im2col buffer of more than 2^%d "
                     "bytes", SHAPE(x), SHAPE(w), LAT_MAX_BYTES_LOG2);
  int64_t shape[4] = {g.N, g.O, g.OH, g.OW};
  lat_tensor *y = lat__new(LAT_F32, 4, shape);
  if (!y) return NULL;
  if (g.N > 0 && g.O > 0 && g.P > 0 && use_direct(&g)) {
    if (lat__conv_direct_forward(&g, x->f, w->f, b ? b->f : NULL, y->f, direct_threads(&g))) {
      lat_release(y);
      return NULL;
    }
  } else if (g.N > 0 && g.O > 0 && g.P > 0) {
    int nt = split_threads(&g);
    int64_t each = (g.x_is_col && g.B == 1 ? 0 : g.K * g.B * g.P) + (g.B > 1 ? g.O * g.B * g.P : 0);
    each = (each + 15) & ~(int64_t)15;
    scratch s;
    if (!scratch_get(&s, nt, each)) {
      lat_release(y);
      return NULL;
    }
    lat__blas_single_begin(nt);
    conv_forward(&g, x->f, w->f, b ? b->f : NULL, y->f, s.p, each, nt);
    lat__blas_single_end(nt);
    scratch_put(&s);
  }
  lat_tensor *ins[3] = {x, w, b};
  lat_node *n = lat__record(y, "conv2d", conv_backward, b ? 3 : 2, ins);
  if (n) *LAT_NODE_STATE(n, conv_geom) = g;
  return y;
}
