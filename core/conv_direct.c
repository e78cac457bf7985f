/* conv_direct.c: convolution without im2col, on AVX-512 register-tile kernels (chosen at run time).
 *
 * Each image is copied once into a zero-padded buffer xp [C, Hp, Wp]. On the "grid" of
 * positions q = oh*Wp + ow of that buffer, reduction row k = (c, i, j) of the column matrix is
 * simply xp + off[k] + q with off[k] = c*Hp*Wp + i*Wp + j, so the column matrix is never built:
 *   forward  y[o][q]  = b[o] + sum_k w[o][k] xp[off[k] + q]             (kernel F)
 *   d input  dx       = the same kernel F over gy padded by (k-1-p), with the weights flipped
 *                       and their two channel axes swapped (a full correlation)
 *   d weight dw[o][k] = sum_(oh,ow) gy[o][oh][ow] xp[off[k] + oh*Wp + ow] (kernel D, on gy
 *                       transposed so that a vector runs over output channels)
 * Grid columns ow >= OW are computed by F and never stored: outputs are written straight into
 * y (or dx) with masked stores. Strides above 1 split the padded input into its phases (see
 * input_planes) so that the same kernels apply; d input then runs F once per phase. */
#include "conv.h"
#include <string.h>

/* The kernels are compiled for AVX-512 whatever the build's -march, and run only where
 * lat__cpu_avx512() says so (ops_conv.c asks before calling anything here). */
#include <immintrin.h>
#include <omp.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif

#define INLINE static inline __attribute__((always_inline))
enum { SLACK = 256 }; /* zero floats after each padded buffer: tiles read up to 8 vectors past */

bool lat__conv_direct_ok(const conv_geom *g) {
  if (g->H <= 0 || g->W <= 0 || g->C <= 0 || g->O <= 0 || g->kh * g->kw == 1) return false;
  /* offsets into the padded input (or padded gy) are int32 */
  double span = (double)(g->C > g->O ? g->C : g->O) * (double)(g->H + 2 * g->ph + 2 * g->kh) *
                (double)(g->W + 2 * g->pw + 2 * g->kw);
  if (span > 2e9) return false;
  if (g->sh == 1 && g->sw == 1) return g->ph < g->kh && g->pw < g->kw;
  /* strided: every phase of the input is used by some tap */
  return g->sh <= g->kh && g->sw <= g->kw && g->sh * g->sw <= 16;
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

/* one tile: R rows x NV grid vectors from vector v0 */
INLINE void tile_f(const int R, const int NV, const fplan *p, const float *restrict a,
                   const float *restrict b, int64_t v0, const float *bias, bool beta,
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
  static void tile_f_##R##_##NV(const fplan *p, const float *a, const float *b, int64_t v0,   \
                                const float *bias, bool beta, float *out, int64_t plane) {    \
    tile_f(R, NV, p, a, b, v0, bias, beta, out, plane);                                       \
  }
TILE_F(8, 1) TILE_F(8, 2) TILE_F(8, 3)
TILE_F(4, 1) TILE_F(4, 2) TILE_F(4, 3) TILE_F(4, 4) TILE_F(4, 5) TILE_F(4, 6)
TILE_F(2, 1) TILE_F(2, 2) TILE_F(2, 3) TILE_F(2, 4) TILE_F(2, 5) TILE_F(2, 6) TILE_F(2, 7)
TILE_F(2, 8)
TILE_F(1, 1) TILE_F(1, 2) TILE_F(1, 3) TILE_F(1, 4) TILE_F(1, 5) TILE_F(1, 6) TILE_F(1, 7)
TILE_F(1, 8)

typedef void (*tile_f_fn)(const fplan *, const float *, const float *, int64_t, const float *,
                          bool, float *, int64_t);
/* by rows (8, 4, 2, 1) and vectors; the widest of each row count comes first in use, the
 * narrower ones finish a row block exactly */
static const tile_f_fn tiles_f[4][9] = {
    {NULL, tile_f_8_1, tile_f_8_2, tile_f_8_3},
    {NULL, tile_f_4_1, tile_f_4_2, tile_f_4_3, tile_f_4_4, tile_f_4_5, tile_f_4_6},
    {NULL, tile_f_2_1, tile_f_2_2, tile_f_2_3, tile_f_2_4, tile_f_2_5, tile_f_2_6, tile_f_2_7,
     tile_f_2_8},
    {NULL, tile_f_1_1, tile_f_1_2, tile_f_1_3, tile_f_1_4, tile_f_1_5, tile_f_1_6, tile_f_1_7,
     tile_f_1_8}};

static int block_rows(int64_t left) { return left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1; }

/* out [rows, OHv*OWv] (= or += when beta) from one padded image b */
static void run_f(const fplan *p, const float *b, const float *bias, bool beta, float *out) {
  int64_t plane = p->OHv * p->OWv;
  for (int64_t r0 = 0; r0 < p->rows;) {
    int R = block_rows(p->rows - r0), ri = R == 8 ? 0 : R == 4 ? 1 : R == 2 ? 2 : 3;
    int NV = R == 8 ? 3 : R == 4 ? 6 : 8;
    const float *a = p->a + r0 * p->K, *bi = bias ? bias + r0 : NULL;
    float *o = out + r0 * plane;
    for (int64_t v0 = 0; v0 < p->nvec;) {
      int nv = (int)(p->nvec - v0 < NV ? p->nvec - v0 : NV);
      tiles_f[ri][nv](p, a, b, v0, bi, beta, o, plane);
      v0 += nv;
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

/* ---- the input as phase planes ----
 * With stride s the rows of the column matrix are not contiguous in the padded input, but they
 * are in its phases: plane (a, b) of channel c holds xp[c][sh*h + a][sw*w + b], size Hh x Wh,
 * and tap (i, j) reads plane (i % sh, j % sw) shifted by (i / sh, j / sw). For stride 1 there is
 * one phase: the padded input itself. */

typedef struct { int64_t Hh, Wh, floats; } phases;

static phases input_phases(const conv_geom *g) {
  phases p;
  p.Hh = (g->H + 2 * g->ph + g->sh - 1) / g->sh;
  p.Wh = (g->W + 2 * g->pw + g->sw - 1) / g->sw;
  p.floats = g->C * g->sh * g->sw * p.Hh * p.Wh + SLACK;
  return p;
}

static void input_planes(const conv_geom *g, const phases *ph, const float *restrict x,
                         float *restrict dst) {
  if (g->sh == 1 && g->sw == 1) {
    pad_planes(x, g->C, g->H, g->W, g->ph, g->pw, dst);
    return;
  }
  int64_t plane = ph->Hh * ph->Wh;
  for (int64_t c = 0; c < g->C; c++)
    for (int a = 0; a < g->sh; a++)
      for (int64_t h = 0; h < ph->Hh; h++) {
        int64_t u = g->sh * h + a - g->ph;
        float *d = dst + (c * g->sh + a) * g->sw * plane + h * ph->Wh; /* phase (a, 0), row h */
        if (u < 0 || u >= g->H) {
          for (int b = 0; b < g->sw; b++) memset(d + b * plane, 0, (size_t)ph->Wh * sizeof *d);
          continue;
        }
        const float *s = x + (c * g->H + u) * g->W;
        if (g->sw == 2) { /* split 32 columns of the padded row into its even and odd halves */
          const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                                 26, 28, 30);
          const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
          for (int64_t w0 = 0; w0 < ph->Wh; w0 += 16) {
            int64_t base = 2 * w0 - g->pw; /* source column of padded column 2*w0 */
            __m512 v[2];
            for (int k = 0; k < 2; k++) {
              int64_t lo = -(base + 16 * k), hi = g->W - (base + 16 * k);
              lo = lo < 0 ? 0 : lo;
              hi = hi > 16 ? 16 : hi;
              __mmask16 m = hi > lo ? (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1)) : 0;
              v[k] = m ? _mm512_maskz_loadu_ps(m, s + base + 16 * k) : _mm512_setzero_ps();
            }
            int64_t n = ph->Wh - w0 < 16 ? ph->Wh - w0 : 16;
            __mmask16 mo = (__mmask16)((1u << n) - 1);
            _mm512_mask_storeu_ps(d + w0, mo, _mm512_permutex2var_ps(v[0], even, v[1]));
            _mm512_mask_storeu_ps(d + plane + w0, mo, _mm512_permutex2var_ps(v[0], odd, v[1]));
          }
          continue;
        }
        for (int b = 0; b < g->sw; b++) {
          float *r = d + b * plane;
          int64_t lo, hi; /* columns w whose source sw*w + b - pw lies in [0, W) */
          int64_t off = b - g->pw;
          lo = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
          hi = g->W - off <= 0 ? 0 : (g->W - off + g->sw - 1) / g->sw;
          if (hi > ph->Wh) hi = ph->Wh;
          if (lo > hi) lo = hi;
          for (int64_t w = 0; w < lo; w++) r[w] = 0;
          for (int64_t w = lo; w < hi; w++) r[w] = s[g->sw * w + off];
          for (int64_t w = hi; w < ph->Wh; w++) r[w] = 0;
        }
      }
}

static void input_offsets(const conv_geom *g, const phases *ph, int32_t *off) {
  for (int64_t c = 0; c < g->C; c++)
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++)
        off[(c * g->kh + i) * g->kw + j] =
            (int32_t)(((c * g->sh + i % g->sh) * g->sw + j % g->sw) * ph->Hh * ph->Wh +
                      i / g->sh * ph->Wh + j / g->sw);
}

/* ---- forward ---- */

int lat__conv_direct_forward(const conv_geom *g, const float *x, const float *w, const float *b,
                             float *y, int nt) {
  phases ph = input_phases(g);
  int64_t CHW = g->C * g->H * g->W;
  size_t xp_floats = (size_t)ph.floats;
  fplan p;
  fplan_init(&p, g->O, g->K, ph.Wh, g->OW, g->OH);
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
  input_offsets(g, &ph, off);
  p.a = a;
  p.off = off;
  memset(xp, 0, (size_t)nt * xp_floats * sizeof *xp);
  #pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float *xb = xp + (size_t)omp_get_thread_num() * xp_floats;
    #pragma omp for schedule(static)
    for (int64_t n = 0; n < g->N; n++) {
      input_planes(g, &ph, x + n * CHW, xb);
      run_f(&p, xb, b, false, y + n * g->O * g->P);
    }
  }
  lat__free(ar.p, ar.bytes);
  return 0;
}

/* ---- backward ----
 * d input, stride 1: kernel F over gy padded by (k-1-p), written straight into dx.
 * d input, stride s: for each phase (a, b) of the padded input, kernel F over gy padded by
 * (ceil(k/s) - 1) with the taps (s*i' + a, s*j' + b), into a buffer that is then added into
 * dx where the phase's positions fall inside the input. */

enum { MAX_PHASES = 16 };

typedef struct {
  fplan p;
  int a, b;                /* phase */
} dx_phase;

int lat__conv_direct_backward(const conv_geom *g, const float *x, const float *w, const float *gy,
                              float *gx, bool acc_x, float *gw, bool acc_w, float *gb, bool acc_b,
                              int nt) {
  int64_t O = g->O, C = g->C, K = g->K, kh = g->kh, kw = g->kw, CHW = C * g->H * g->W;
  int sh = g->sh, sw = g->sw;
  bool unit = sh == 1 && sw == 1;
  phases ph = input_phases(g);
  /* padding of gy for dx */
  int64_t qt = unit ? kh - 1 - g->ph : (kh + sh - 1) / sh - 1;
  int64_t ql = unit ? kw - 1 - g->pw : (kw + sw - 1) / sw - 1;
  int64_t Hg = g->OH + 2 * qt, Wg = g->OW + 2 * ql;
  int64_t Op = (O + 15) / 16 * 16;
  size_t xp_floats = (size_t)ph.floats, gp_floats = (size_t)(O * Hg * Wg + SLACK);
  size_t part = (size_t)((gw ? K * Op : 0) + (gb ? O : 0) + 16);
  dx_phase dxp[MAX_PHASES];
  int nph = 0;
  size_t pb_floats = 0; /* per-thread phase output buffer (stride > 1) */
  if (gx) {
    if (unit) {
      fplan_init(&dxp[0].p, C, O * kh * kw, Wg, g->W, g->H);
      dxp[0].a = dxp[0].b = 0;
      nph = 1;
    } else
      for (int a = 0; a < sh; a++)
        for (int b = 0; b < sw; b++) {
          int64_t ka = (kh - a + sh - 1) / sh, kb = (kw - b + sw - 1) / sw;
          if (ka <= 0 || kb <= 0) continue;
          dx_phase *d = &dxp[nph++];
          fplan_init(&d->p, C, O * ka * kb, Wg, g->OW + kb - 1, g->OH + ka - 1);
          d->a = a;
          d->b = b;
          size_t f = (size_t)(C * (g->OH + ka - 1) * (g->OW + kb - 1));
          if (f > pb_floats) pb_floats = f;
        }
  }
  arena ar = {0};
  float *at[MAX_PHASES] = {0}, *xp = NULL, *gp = NULL, *gq = NULL, *parts = NULL, *pbuf = NULL;
  int32_t *offt[MAX_PHASES] = {0}, *offx = NULL;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1 && !arena_open(&ar)) return -1;
    for (int k = 0; k < nph; k++) {
      at[k] = take(&ar, (size_t)(C * dxp[k].p.K) * sizeof(float));
      offt[k] = take(&ar, (size_t)dxp[k].p.K * sizeof(int32_t));
      fplan_segments(&dxp[k].p, &ar);
    }
    if (gx) gp = take(&ar, (size_t)nt * gp_floats * sizeof *gp);
    if (pb_floats) pbuf = take(&ar, (size_t)nt * pb_floats * sizeof *pbuf);
    if (gw) {
      offx = take(&ar, (size_t)K * sizeof *offx);
      xp = take(&ar, (size_t)nt * xp_floats * sizeof *xp);
      gq = take(&ar, (size_t)nt * (size_t)(g->P * Op) * sizeof *gq);
    }
    parts = take(&ar, (size_t)nt * part * sizeof *parts);
  }
  for (int ip = 0; ip < nph; ip++) {
    /* at[c][(o, f, e)] = w[o][c][sh*(ka-1-f) + a][sw*(kb-1-e) + b], the phase's taps flipped;
     * for stride 1 (a = b = 0, ka = kh, kb = kw) the whole kernel flipped */
    int a = dxp[ip].a, b = dxp[ip].b;
    int64_t ka = unit ? kh : (kh - a + sh - 1) / sh, kb = unit ? kw : (kw - b + sw - 1) / sw;
    int64_t kab = ka * kb;
    PACK(at[ip], C, O * kab,
         w[((k / kab * C + r) * kh + sh * (ka - 1 - k % kab / kb) + a) * kw +
           sw * (kb - 1 - k % kb) + b]);
    int64_t r0 = unit ? 0 : qt - ka + 1, c0 = unit ? 0 : ql - kb + 1;
    for (int64_t o = 0; o < O; o++)
      for (int64_t f = 0; f < ka; f++)
        for (int64_t e = 0; e < kb; e++)
          offt[ip][(o * ka + f) * kb + e] = (int32_t)(o * Hg * Wg + (r0 + f) * Wg + c0 + e);
    dxp[ip].p.a = at[ip];
    dxp[ip].p.off = offt[ip];
  }
  if (gx) memset(gp, 0, (size_t)nt * gp_floats * sizeof *gp);
  dplan dp = {K, Op, offx, g->OH, g->OW, ph.Wh};
  if (gw) {
    input_offsets(g, &ph, offx);
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
        input_planes(g, &ph, x + n * CHW, xb);
        transpose_gy(gyn, O, g->P, Op, gt);
        run_d(&dp, gt, xb, dw);
      }
      if (gx) {
        float *gpb = gp + (size_t)t * gp_floats, *dx = gx + n * CHW;
        pad_planes(gyn, O, g->OH, g->OW, qt, ql, gpb);
        if (unit) {
          run_f(&dxp[0].p, gpb, NULL, acc_x, dx);
          continue;
        }
        /* the phases partition dx: each writes its positions (= or +=), zero where no window
         * reached (rows or columns past the phase's outputs) */
        float *pb = pbuf + (size_t)t * pb_floats;
        for (int k = 0; k < nph; k++) {
          const fplan *p = &dxp[k].p;
          int a = dxp[k].a, b = dxp[k].b;
          run_f(p, gpb, NULL, false, pb);
          int64_t u0 = ((a - g->ph) % sh + sh) % sh, v0 = ((b - g->pw) % sw + sw) % sw;
          int64_t e0 = (v0 + g->pw - b) / sw;
          for (int64_t c = 0; c < C; c++)
            for (int64_t u = u0, h = (u0 + g->ph - a) / sh; u < g->H; u += sh, h++) {
              float *d = dx + (c * g->H + u) * g->W;
              const float *s = pb + (c * p->OHv + h) * p->OWv;
              int64_t ne = h < p->OHv ? p->OWv - e0 : 0; /* outputs of this row from e0 on */
              int64_t v = v0, e = 0;
              if (acc_x)
                for (; v < g->W && e < ne; v += sw, e++) d[v] += s[e0 + e];
              else
                for (; v < g->W && e < ne; v += sw, e++) d[v] = s[e0 + e];
              if (!acc_x)
                for (; v < g->W; v += sw) d[v] = 0;
            }
        }
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

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
