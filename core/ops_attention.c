/* ops_attention.c: fused multi-head scaled dot-product attention on [B, T, D] tensors.
 * Heads are read in place through sgemm's leading dimensions (head h of q is the columns
 * h*hd .. h*hd+hd-1 of each row), so no reshape, permute or mask tensor is ever materialised.
 * The attention probabilities P [B, H, T, T] are kept for backward:
 *   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),  dQ = s dS K,  dK = s dS^T Q. */
#include "internal.h"
#include <cblas.h>
#include <omp.h>
#include <string.h>

/* a large negative score rather than -inf, so that a query whose keys are all masked gets a
 * uniform row instead of NaN */
#define MASKED (-1e30f)

typedef struct {
  int64_t B, T, D, H, hd;
  float scale;
  bool causal;
  const lat_tensor *keep; /* [B, T] nonzero at keys that may be attended, or NULL; NULL in
                             the node's copy, as backward needs only P */
} att_geom;

static bool key_kept(const att_geom *g, int64_t b, int64_t j) {
  const lat_tensor *m = g->keep;
  int64_t k = b * g->T + j;
  return m->dtype_ == LAT_F32 ? m->f[k] != 0 : m->dtype_ == LAT_I32 ? m->i[k] != 0 : m->u[k] != 0;
}

/* scores of one (b, h) into S [T, T], masked, then softmax rows in place */
static void probabilities(const att_geom *g, int64_t b, const float *Q, const float *K, float *S) {
  int64_t T = g->T, D = g->D;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)g->hd, g->scale, Q,
              (int)D, K, (int)D, 0.0f, S, (int)T);
  for (int64_t i = 0; i < T; i++) {
    float *row = S + i * T;
    if (g->causal)
      for (int64_t j = i + 1; j < T; j++) row[j] = MASKED;
    if (g->keep)
      for (int64_t j = 0; j < T; j++)
        if (!key_kept(g, b, j)) row[j] = MASKED;
    float m = row[0];
    for (int64_t j = 1; j < T; j++) m = row[j] > m ? row[j] : m;
    float s = 0;
    #pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < T; j++) {
      row[j] = lat__expf(row[j] - m);
      s += row[j];
    }
    float inv = 1.0f / s;
    #pragma omp simd
    for (int64_t j = 0; j < T; j++) row[j] *= inv;
  }
}

static int threads_for(const att_geom *g) {
  int nt = lat__threads();
  double work = (double)g->B * (double)g->H * (double)g->T * (double)g->T * (double)g->hd;
  return (nt > 1 && g->B * g->H >= nt && work >= 1e6) ? nt : 1;
}

static int attention_backward(lat_node *n, const lat_tensor *gout) {
  const lat_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2], *P = n->saved[0];
  const att_geom *g = LAT_NODE_STATE(n, att_geom);
  int64_t T = g->T, D = g->D, hd = g->hd, BH = g->B * g->H;
  bool acc[3] = {false, false, false};
  float *gq = NULL, *gk = NULL, *gv = NULL;
  /* q, k and v may be one tensor, with one buffer: fetched in the order in which each (b, h)
   * block is written below (dV, dQ, dK), so that every accumulate flag holds when it is used */
  if (n->need[2] && !(gv = lat__grad_buf(n, 2, &acc[2]))) return -1;
  if (n->need[0] && !(gq = lat__grad_buf(n, 0, &acc[0]))) return -1;
  if (n->need[1] && !(gk = lat__grad_buf(n, 1, &acc[1]))) return -1;
  int nt = threads_for(g);
  float *scratch = lat__alloc((size_t)(nt * T * T) * sizeof(float));
  if (!scratch) return -1;
  lat__blas_single_begin(nt);
  #pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bh = 0; bh < BH; bh++) {
    int64_t b = bh / g->H, h = bh % g->H, off = b * T * D + h * hd;
    const float *Pb = P->f + bh * T * T, *dO = gout->f + off;
    if (gv)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, Pb,
                  (int)T, dO, (int)D, acc[2] ? 1.0f : 0.0f, gv + off, (int)D);
    if (!gq && !gk) continue;
    float *dS = scratch + (int64_t)omp_get_thread_num() * T * T;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1.0f, dO,
                (int)D, v->f + off, (int)D, 0.0f, dS, (int)T);
    for (int64_t i = 0; i < T; i++) {
      const float *p = Pb + i * T;
      float *d = dS + i * T, dot = 0;
      #pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < T; j++) dot += p[j] * d[j];
      #pragma omp simd
      for (int64_t j = 0; j < T; j++) d[j] = p[j] * (d[j] - dot);
    }
    if (gq)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, g->scale, dS,
                  (int)T, k->f + off, (int)D, acc[0] ? 1.0f : 0.0f, gq + off, (int)D);
    if (gk)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, g->scale, dS,
                  (int)T, q->f + off, (int)D, acc[1] ? 1.0f : 0.0f, gk + off, (int)D);
  }
  lat__blas_single_end(nt);
  lat__free(scratch, (size_t)(nt * T * T) * sizeof(float));
  return 0;
}

lat_tensor *lat_attention(lat_tensor *q, lat_tensor *k, lat_tensor *v, int heads, int causal,
                          lat_tensor *keep) {
  if (!lat__check_f32(q, "attention", "queries") || !lat__check_f32(k, "attention", "keys") ||
      !lat__check_f32(v, "attention", "values"))
    return NULL;
  if (q->ndim != 3 || !lat_same_shape(q, k) || !lat_same_shape(q, v))
    return lat__fail("attention: queries, keys and values must all be [batch, time, dim]; got "
                     "%s, %s and %s", SHAPE(q), SHAPE(k), SHAPE(v));
  if (heads <= 0 || q->shape_[2] % heads)
    return lat__fail("attention: dimension %lld is not divisible into %d heads",
                     (long long)q->shape_[2], heads);
  att_geom g = {.B = q->shape_[0], .T = q->shape_[1], .D = q->shape_[2], .H = heads,
                .causal = causal != 0, .keep = keep};
  g.hd = g.D / heads;
  g.scale = 1.0f / sqrtf((float)g.hd);
  if (keep && (keep->ndim != 2 || keep->shape_[0] != g.B || keep->shape_[1] != g.T))
    return lat__fail("attention: the key mask must be [%lld, %lld] (batch, time), got %s",
                     (long long)g.B, (long long)g.T, SHAPE(keep));
  int64_t pshape[4] = {g.B, g.H, g.T, g.T};
  lat_tensor *y = lat__new(LAT_F32, 3, q->shape_);
  lat_tensor *P = y ? lat__new(LAT_F32, 4, pshape) : NULL;
  if (!P) {
    lat_release(y);
    return NULL;
  }
  int64_t T = g.T, D = g.D, hd = g.hd, BH = g.B * g.H;
  int nt = threads_for(&g);
  lat__blas_single_begin(nt);
  #pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t bh = 0; bh < BH; bh++) {
    int64_t b = bh / g.H, h = bh % g.H, off = b * T * D + h * hd;
    float *S = P->f + bh * T * T;
    probabilities(&g, b, q->f + off, k->f + off, S);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, S,
                (int)T, v->f + off, (int)D, 0.0f, y->f + off, (int)D);
  }
  lat__blas_single_end(nt);
  lat_tensor *ins[3] = {q, k, v};
  lat_node *n = lat__record(y, "attention", attention_backward, 3, ins);
  if (n) {
    g.keep = NULL;
    *LAT_NODE_STATE(n, att_geom) = g;
    n->saved[0] = P;
  } else {
    lat_release(P);
  }
  return y;
}
