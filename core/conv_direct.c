/* conv_direct.c: stride-1 convolution without im2col, on AVX-512 register-tile kernels.
 *
 * Each image is copied once into a zero-padded buffer xp [C, Hp, Wp]. On the "grid" of
 * positions q = oh*Wp + ow of that buffer, reduction row k = (c, i, j) of the column matrix is
 * simply xp + off[k] + q with off[k] = c*Hp*Wp + i*Wp + j, so the column matrix is never built:
 *   forward  y[o][q]  = b[o] + sum_k w[o][k] xp[off[k] + q]             (kernel F)
 *   d input  dx       = the same kernel F over gy padded by (k-1-p), with the weights flipped
 *                       and their two channel axes swapped (a full correlation)
 *   d weight dw[o][k] = sum_(oh,ow) gy[o][oh][ow] xp[off[k] + oh*Wp + ow] (kernel D, on gy
 *                       transposed so that a vector runs over output channels)
 * Grid columns
 * ow >= OW are computed by F and never stored: outputs are written straight into y (or dx)
 * with masked stores. */
#include "conv.h"
#include <string.h>

#ifndef __AVX512F__

bool lat__conv_direct_ok(const conv_geom *g) { return false; }
int lat__conv_direct_forward(const conv_geom *g, const float *x, const float *w, const float *b,
                             float *y, int nt) {
  return lat__failc("conv2d: direct kernels not built (no AVX-512)");
}
int lat__conv_direct_backward(const conv_geom *g, const float *x, const float *w, const float *gy,
                              float *gx, bool acc_x, float *gw, bool acc_w, float *gb, bool acc_b,
                              int nt) {
  return lat__failc("conv2d: direct kernels not built (no AVX-512)");
}

#else
#include <immintrin.h>
#include <omp.h>

#define INLINE static inline __attribute__((always_inline))
enum { SLACK = 256 }; /* zero floats after each padded buffer: tiles read up to 8 vectors past */

bool lat__conv_direct_ok(const conv_geom *g) {
  return g->sh == 1 && g->sw == 1 && g->ph < g->kh && g->pw < g->kw && g->kh * g->kw > 1 &&
         g->H > 0 && g->W > 0 && g->C > 0 && g->O > 0;
}

/* ---- padded copies ---- */

/* d[0..n) = s[0..n) for the short rows of feature maps (memcpy's call costs more) */
INLINE void copy_row(float *restrict d, const float *restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
  }
}

/* dst [n, H + 2pt, W + 2pl] from src [n, H, W], zeros around; the SLACK after it stays zero */
static void pad_planes(const float *restrict src, int64_t n, int64_t H, int64_t W, int64_t pt,
                       int64_t pl, float *restrict dst) {
  int64_t Hp = H + 2 * pt, Wp = W + 2 * pl;
  for (int64_t c = 0; c < n; c++) {
    float *d = dst + c * Hp * Wp;
    const float *s = src + c * H * W;
    memset(d, 0, (size_t)(pt * Wp + pl) * sizeof *d);
    for (int64_t h = 0; h < H; h++) {
      float *r = d + (pt + h) * Wp + pl;
      copy_row(r, s + h * W, W);
      if (h + 1 < H)
        for (int64_t k = 0; k < 2 * pl; k++) r[W + k] = 0;
    }
    memset(d + (pt + H - 1) * Wp + pl + W, 0, (size_t)(pl + pt * Wp) * sizeof *d);
  }
}

/* ---- kernel F: rows of out = packed weights times shifted rows of a padded image ---- */

/* A masked store of one vector of grid positions: lanes m go to out + base + lane. */
typedef struct { int64_t base; __mmask16 m; } seg;

typedef struct {
  int64_t rows, K;       /* output channels, reduction length */
  const float *a;        /* weights packed in row blocks of 8, 4, 2, 1: each block [K][Rb] */
  const int32_t *off;    /* [K] offsets of the reduction rows in the padded image */
  int64_t Wg, OWv, OHv;  /* grid row width; valid output width and height */
  int64_t nvec;          /* grid vectors of 16 positions covering the valid outputs */
  const int32_t *sstart; /* [nvec + 1] first segment of each vector */
  const seg *segs;
} fplan;

/* segments of each grid vector; returns their count (at most nvec + OHv), writes if segs */
static int64_t make_segments(int64_t Wg, int64_t OWv, int64_t OHv, int64_t nvec, int32_t *sstart,
                             seg *segs) {
  int64_t n = 0;
  for (int64_t v = 0; v < nvec; v++) {
    if (sstart) sstart[v] = (int32_t)n;
    int64_t q0 = v * 16, a0 = q0 / Wg, a1 = (q0 + 15) / Wg;
    if (a1 > OHv - 1) a1 = OHv - 1;
    for (int64_t a = a0; a <= a1; a++) {
      int64_t lo = a * Wg - q0, hi = lo + OWv;
      if (lo < 0) lo = 0;
      if (hi > 16) hi = 16;
      if (hi <= lo) continue;
      if (segs) {
        segs[n].m = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
        segs[n].base = q0 - a * (Wg - OWv);
      }
      n++;
    }
  }
  if (sstart) sstart[nvec] = (int32_t)n;
  return n;
}

/* one tile: R rows x NV grid vectors from vector v0 (nv of them valid) */
INLINE void tile_f(const int R, const int NV, const fplan *p, const float *restrict a,
                   const float *restrict b, int64_t v0, int nv, const float *bias, bool beta,
                   float *out, int64_t plane) {
  __m512 acc[8][8];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
  const float *bq = b + v0 * 16;
  const int32_t *off = p->off;
  for (int64_t k = 0; k < p->K; k++) {
    const float *bk = bq + off[k];
    __m512 bv[8];
    for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(bk + 16 * v);
    for (int r = 0; r < R; r++) {
      __m512 w = _mm512_set1_ps(a[k * R + r]);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(w, bv[v], acc[r][v]);
    }
  }
  for (int v = 0; v < NV; v++) {
    if (v >= nv) break;
    const seg *s0 = p->segs + p->sstart[v0 + v], *s1 = p->segs + p->sstart[v0 + v + 1];
    for (int r = 0; r < R; r++) {
      float *o = out + r * plane;
      __m512 t = acc[r][v];
      if (beta)
        for (const seg *s = s0; s < s1; s++) t = _mm512_mask_add_ps(t, s->m, t, _mm512_maskz_loadu_ps(s->m, o + s->base));
      for (const seg *s = s0; s < s1; s++) _mm512_mask_storeu_ps(o + s->base, s->m, t);
    }
  }
}

#define TILE_F(R, NV)                                                                        \
  static void tile_f_##R(const fplan *p, const float *a, const float *b, int64_t v0, int nv,  \
                         const float *bias, bool beta, float *out, int64_t plane) {           \
    tile_f(R, NV, p, a, b, v0, nv, bias, beta, out, plane);                                   \
  }
TILE_F(8, 3)
TILE_F(4, 6)
TILE_F(2, 8)
TILE_F(1, 8)

static int block_rows(int64_t left) { return left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1; }

/* out [rows, OHv*OWv] (= or += when beta) from one padded image b */
static void run_f(const fplan *p, const float *b, const float *bias, bool beta, float *out) {
  int64_t plane = p->OHv * p->OWv;
  for (int64_t r0 = 0; r0 < p->rows;) {
    int R = block_rows(p->rows - r0);
    int NV = R == 8 ? 3 : R == 4 ? 6 : 8;
    const float *a = p->a + r0 * p->K, *bi = bias ? bias + r0 : NULL;
    float *o = out + r0 * plane;
    for (int64_t v0 = 0; v0 < p->nvec; v0 += NV) {
      int nv = (int)(p->nvec - v0 < NV ? p->nvec - v0 : NV);
      switch (R) {
      case 8: tile_f_8(p, a, b, v0, nv, bi, beta, o, plane); break;
      case 4: tile_f_4(p, a, b, v0, nv, bi, beta, o, plane); break;
      case 2: tile_f_2(p, a, b, v0, nv, bi, beta, o, plane); break;
      default: tile_f_1(p, a, b, v0, nv, bi, beta, o, plane); break;
      }
    }
    r0 += R;
  }
}

/* a [rows, K] packed in row blocks of 8, 4, 2, 1 ([K][Rb] each); src(r, k) gives an element */
#define PACK(dst, rows, K, src)                                                              \
  for (int64_t r0 = 0; r0 < (rows);) {                                                       \
    int R_ = block_rows((rows) - r0);                                                        \
    float *d_ = (dst) + r0 * (K);                                                            \
    for (int64_t k = 0; k < (K); k++)                                                        \
      for (int r_ = 0; r_ < R_; r_++) {                                                      \
        int64_t r = r0 + r_;                                                                 \
        d_[k * R_ + r_] = (src);                                                             \
      }                                                                                      \
    r0 += R_;                                                                                \
  }

/* ---- kernel D: dwt[k][o] += sum over output positions p = (oh, ow) of
 *      b[off[k] + oh*Wp + ow] * gt[p][o], gt being gy transposed to [P][Op] ---- */

typedef struct {
  int64_t K, Op;         /* reduction rows; output channels rounded up to 16 */
  const int32_t *off;    /* [K] offsets in the padded image */
  int64_t OH, OW, Wp;    /* output size; padded image row width */
} dplan;

INLINE void tile_d(const int RK, const int NV, const dplan *p, const float *restrict gt,
                   const float *restrict b, const int32_t *restrict off, float *dwt) {
  __m512 acc[6][4];
  const float *bk[6];
  for (int k = 0; k < RK; k++) bk[k] = b + off[k];
  for (int k = 0; k < RK; k++)
    for (int v = 0; v < NV; v++) acc[k][v] = _mm512_setzero_ps();
  int64_t Op = p->Op;
  for (int64_t oh = 0; oh < p->OH; oh++) {
    const float *g = gt + oh * p->OW * Op;
    int64_t q0 = oh * p->Wp;
    for (int64_t ow = 0; ow < p->OW; ow++) {
      __m512 gv[4];
      for (int v = 0; v < NV; v++) gv[v] = _mm512_loadu_ps(g + ow * Op + 16 * v);
      for (int k = 0; k < RK; k++) {
        __m512 x = _mm512_set1_ps(bk[k][q0 + ow]);
        for (int v = 0; v < NV; v++) acc[k][v] = _mm512_fmadd_ps(x, gv[v], acc[k][v]);
      }
    }
  }
  for (int k = 0; k < RK; k++)
    for (int v = 0; v < NV; v++) {
      float *d = dwt + k * Op + 16 * v;
      _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), acc[k][v]));
    }
}

#define TILE_D(RK, NV)                                                                       \
  static void tile_d_##RK##_##NV(const dplan *p, const float *gt, const float *b,             \
                                 const int32_t *off, float *dwt) {                            \
    tile_d(RK, NV, p, gt, b, off, dwt);                                                       \
  }
TILE_D(6, 4) TILE_D(6, 2) TILE_D(6, 1)
TILE_D(3, 4) TILE_D(3, 2) TILE_D(3, 1)
TILE_D(1, 4) TILE_D(1, 2) TILE_D(1, 1)

typedef void (*tile_d_fn)(const dplan *, const float *, const float *, const int32_t *, float *);
static const tile_d_fn tiles_d[3][3] = {{tile_d_6_4, tile_d_6_2, tile_d_6_1},
                                        {tile_d_3_4, tile_d_3_2, tile_d_3_1},
                                        {tile_d_1_4, tile_d_1_2, tile_d_1_1}};

/* dwt [K, Op] += from the transposed gradient gt [P, Op] and the padded image b */
static void run_d(const dplan *p, const float *gt, const float *b, float *dwt) {
  for (int64_t k0 = 0; k0 < p->K;) {
    int ik = p->K - k0 >= 6 ? 0 : p->K - k0 >= 3 ? 1 : 2, RK = ik == 0 ? 6 : ik == 1 ? 3 : 1;
    for (int64_t v0 = 0; v0 < p->Op / 16;) {
      int64_t left = p->Op / 16 - v0;
      int iv = left >= 4 ? 0 : left >= 2 ? 1 : 2, NV = iv == 0 ? 4 : iv == 1 ? 2 : 1;
      tiles_d[ik][iv](p, gt + 16 * v0, b, p->off + k0, dwt + k0 * p->Op + 16 * v0);
      v0 += NV;
    }
    k0 += RK;
  }
}

/* r[0..15] transposed in place */
INLINE void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

/* gt [P, Op] = gy [O, P] transposed, zero in columns O..Op-1 */
static void transpose_gy(const float *restrict gy, int64_t O, int64_t P, int64_t Op,
                         float *restrict gt) {
  for (int64_t p0 = 0; p0 < P; p0 += 16) {
    int64_t np = P - p0 < 16 ? P - p0 : 16;
    __mmask16 m = (__mmask16)((1u << np) - 1);
    for (int64_t o0 = 0; o0 < Op; o0 += 16) {
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = o0 + i < O ? _mm512_maskz_loadu_ps(m, gy + (o0 + i) * P + p0) : _mm512_setzero_ps();
      transpose16(r);
      for (int i = 0; i < np; i++) _mm512_storeu_ps(gt + (p0 + i) * Op + o0, r[i]);
    }
  }
}

/* ---- plans and scratch ---- */

/* offsets of rows (c, i, j) for `chans` planes of Hp x Wp */
static void make_offsets(int32_t *off, int64_t chans, int64_t kh, int64_t kw, int64_t Hp,
                         int64_t Wp) {
  for (int64_t c = 0; c < chans; c++)
    for (int64_t i = 0; i < kh; i++)
      for (int64_t j = 0; j < kw; j++) off[(c * kh + i) * kw + j] = (int32_t)(c * Hp * Wp + i * Wp + j);
}

/* one allocation carved into aligned pieces */
typedef struct { char *p; size_t bytes, used; } arena;

static void *take(arena *a, size_t bytes) {
  void *r = a->p ? a->p + a->used : NULL;
  a->used += (bytes + 63) & ~(size_t)63;
  return r;
}

static bool arena_open(arena *a) {
  a->bytes = a->used;
  a->p = lat__alloc(a->bytes);
  a->used = 0;
  if (!a->p) lat__fail("conv2d: out of memory for %zu bytes of scratch", a->bytes);
  return a->p != NULL;
}

static void fplan_init(fplan *p, int64_t rows, int64_t K, int64_t Wg, int64_t OWv, int64_t OHv) {
  p->rows = rows;
  p->K = K;
  p->Wg = Wg;
  p->OWv = OWv;
  p->OHv = OHv;
  p->nvec = ((OHv - 1) * Wg + OWv + 15) / 16;
}

/* take the plan's segment tables from the arena (sizing pass when a->p is NULL) */
static void fplan_segments(fplan *p, arena *a) {
  int64_t n = make_segments(p->Wg, p->OWv, p->OHv, p->nvec, NULL, NULL);
  int32_t *ss = take(a, (size_t)(p->nvec + 1) * sizeof *ss);
  seg *sg = take(a, (size_t)n * sizeof *sg);
  if (a->p) make_segments(p->Wg, p->OWv, p->OHv, p->nvec, ss, sg);
  p->sstart = ss;
  p->segs = sg;
}

/* ---- forward ---- */

int lat__conv_direct_forward(const conv_geom *g, const float *x, const float *w, const float *b,
                             float *y, int nt) {
  int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw, CHW = g->C * g->H * g->W;
  size_t xp_floats = (size_t)(g->C * Hp * Wp + SLACK);
  fplan p;
  fplan_init(&p, g->O, g->K, Wp, g->OW, g->OH);
  arena ar = {0};
  float *a = NULL, *xp = NULL;
  int32_t *off = NULL;
  for (int pass = 0; pass < 2; pass++) { /* sizing, then carving */
    if (pass == 1 && !arena_open(&ar)) return -1;
    a = take(&ar, (size_t)(g->O * g->K) * sizeof *a);
    off = take(&ar, (size_t)g->K * sizeof *off);
    fplan_segments(&p, &ar);
    xp = take(&ar, (size_t)nt * xp_floats * sizeof *xp);
  }
  PACK(a, g->O, g->K, w[r * g->K + k]);
  make_offsets(off, g->C, g->kh, g->kw, Hp, Wp);
  p.a = a;
  p.off = off;
  memset(xp, 0, (size_t)nt * xp_floats * sizeof *xp);
  #pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float *xb = xp + (size_t)omp_get_thread_num() * xp_floats;
    #pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++) {
      pad_planes(x + n * CHW, g->C, g->H, g->W, g->ph, g->pw, xb);
      run_f(&p, xb, b, false, y + n * g->O * g->P);
    }
  }
  lat__free(ar.p, ar.bytes);
  return 0;
}

/* ---- backward ---- */

int lat__conv_direct_backward(const conv_geom *g, const float *x, const float *w, const float *gy,
                              float *gx, bool acc_x, float *gw, bool acc_w, float *gb, bool acc_b,
                              int nt) {
  int64_t O = g->O, C = g->C, K = g->K, kh = g->kh, kw = g->kw, CHW = C * g->H * g->W;
  int64_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw;           /* padded input */
  int64_t qt = kh - 1 - g->ph, ql = kw - 1 - g->pw;               /* padding of gy for dx */
  int64_t Hg = g->OH + 2 * qt, Wg = g->OW + 2 * ql, KT = O * kh * kw;
  int64_t Op = (O + 15) / 16 * 16;
  size_t xp_floats = (size_t)(C * Hp * Wp + SLACK), gp_floats = (size_t)(O * Hg * Wg + SLACK);
  size_t part = (size_t)((gw ? K * Op : 0) + (gb ? O : 0) + 16);
  fplan p;
  fplan_init(&p, C, KT, Wg, g->W, g->H);
  arena ar = {0};
  float *at = NULL, *xp = NULL, *gp = NULL, *gq = NULL, *parts = NULL;
  int32_t *offt = NULL, *offx = NULL;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1 && !arena_open(&ar)) return -1;
    if (gx) {
      at = take(&ar, (size_t)(C * KT) * sizeof *at);
      offt = take(&ar, (size_t)KT * sizeof *offt);
      fplan_segments(&p, &ar);
      gp = take(&ar, (size_t)nt * gp_floats * sizeof *gp);
    }
    if (gw) {
      offx = take(&ar, (size_t)K * sizeof *offx);
      xp = take(&ar, (size_t)nt * xp_floats * sizeof *xp);
      gq = take(&ar, (size_t)nt * (size_t)(g->P * Op) * sizeof *gq);
    }
    parts = take(&ar, (size_t)nt * part * sizeof *parts);
  }
  if (gx) { /* at[c][(o, i, j)] = w[o][c][kh-1-i][kw-1-j] */
    PACK(at, C, KT, w[((k / (kh * kw) * C + r) * kh + (kh - 1 - k % (kh * kw) / kw)) * kw +
                      (kw - 1 - k % kw)]);
    make_offsets(offt, O, kh, kw, Hg, Wg);
    p.a = at;
    p.off = offt;
    memset(gp, 0, (size_t)nt * gp_floats * sizeof *gp);
  }
  dplan dp = {K, Op, offx, g->OH, g->OW, Wp};
  if (gw) {
    make_offsets(offx, C, kh, kw, Hp, Wp);
    memset(xp, 0, (size_t)nt * xp_floats * sizeof *xp);
  }
  memset(parts, 0, (size_t)nt * part * sizeof *parts);
  #pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int t = omp_get_thread_num();
    float *dw = parts + (size_t)t * part, *db = dw + (gw ? K * Op : 0);
    #pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++) {
      const float *gyn = gy + n * O * g->P;
      if (gb)
        for (int64_t o = 0; o < O; o++) {
          const float *r = gyn + o * g->P;
          float s = 0;
          #pragma omp simd reduction(+ : s)
          for (int64_t k = 0; k < g->P; k++) s += r[k];
          db[o] += s;
        }
      if (gw) {
        float *xb = xp + (size_t)t * xp_floats, *gt = gq + (size_t)t * (size_t)(g->P * Op);
        pad_planes(x + n * CHW, C, g->H, g->W, g->ph, g->pw, xb);
        transpose_gy(gyn, O, g->P, Op, gt);
        run_d(&dp, gt, xb, dw);
      }
      if (gx) {
        float *gpb = gp + (size_t)t * gp_floats;
        pad_planes(gyn, O, g->OH, g->OW, qt, ql, gpb);
        run_f(&p, gpb, NULL, acc_x, gx + n * CHW);
      }
    }
  }
  for (int t = 0; t < nt; t++) {
    const float *dwt = parts + (size_t)t * part, *db = dwt + (gw ? K * Op : 0);
    if (gw) /* dwt is [K, Op]: transpose back into gw [O, K] */
      for (int64_t o = 0; o < O; o++)
        for (int64_t k = 0; k < K; k++) {
          float v = dwt[k * Op + o];
          gw[o * K + k] = (t == 0 && !acc_w) ? v : gw[o * K + k] + v;
        }
    if (gb) {
      if (t == 0 && !acc_b) memcpy(gb, db, (size_t)O * sizeof *gb);
      else
        for (int64_t k = 0; k < O; k++) gb[k] += db[k];
    }
  }
  lat__free(ar.p, ar.bytes);
  return 0;
}

#endif
