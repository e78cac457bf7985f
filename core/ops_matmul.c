/* ops_matmul.c: matmul (batched, with broadcast batch dimensions) and linear, on cblas_sgemm. */
#include "internal.h"
#include <cblas.h>
#include <string.h>

/* C[M,N] = op(A) op(B) (+ C if beta) with row-major leading dimensions taken from the shapes */
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                 const float *B, float *C, float beta) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (beta == 0) memset(C, 0, (size_t)(M * N) * sizeof *C);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (int)M, (int)N, (int)K, 1.0f, A, ta ? (int)M : (int)K, B, tb ? (int)K : (int)N, beta,
              C, (int)N);
}

/* ---- matmul ---- */

typedef struct {
  int nb;                        /* batch dims of the output */
  int64_t bshape[LAT_MAX_DIMS];
  int64_t sa[LAT_MAX_DIMS], sb[LAT_MAX_DIMS]; /* batch strides in matrices (0 = broadcast) */
  int64_t batches, M, K, N;
  bool a_bcast, b_bcast;         /* some batch dimension of a (b) is broadcast */
} mm_plan;

static void batch_offsets(const mm_plan *p, int64_t bi, int64_t *oa, int64_t *ob) {
  *oa = *ob = 0;
  for (int d = p->nb - 1; d >= 0; d--) {
    int64_t i = bi % p->bshape[d];
    bi /= p->bshape[d];
    *oa += i * p->sa[d];
    *ob += i * p->sb[d];
  }
}

static int plan(mm_plan *p, const lat_tensor *a, const lat_tensor *b) {
  if (a->ndim < 2 || b->ndim < 2)
    return lat__failc("matmul: both inputs need at least 2 dimensions, got %s and %s (reshape a "
                      "vector to [1, n] or [n, 1])", SHAPE(a), SHAPE(b));
  p->M = a->shape_[a->ndim - 2];
  p->K = a->shape_[a->ndim - 1];
  p->N = b->shape_[b->ndim - 1];
  if (b->shape_[b->ndim - 2] != p->K)
    return lat__failc("matmul: %s times %s: inner sizes differ (%lld vs %lld)", SHAPE(a), SHAPE(b),
                      (long long)p->K, (long long)b->shape_[b->ndim - 2]);
  int na = a->ndim - 2, nbb = b->ndim - 2;
  p->nb = na > nbb ? na : nbb;
  p->batches = 1;
  p->a_bcast = p->b_bcast = false;
  int64_t ssa = 1, ssb = 1;
  for (int d = p->nb - 1; d >= 0; d--) {
    int da = d - (p->nb - na), db = d - (p->nb - nbb);
    int64_t ea = da >= 0 ? a->shape_[da] : 1, eb = db >= 0 ? b->shape_[db] : 1;
    if (ea != eb && ea != 1 && eb != 1)
      return lat__failc("matmul: batch dimensions of %s and %s do not broadcast", SHAPE(a),
                        SHAPE(b));
    p->bshape[d] = ea > eb ? ea : eb;
    p->sa[d] = ea == 1 ? 0 : ssa;
    p->sb[d] = eb == 1 ? 0 : ssb;
    p->a_bcast |= ea == 1 && p->bshape[d] > 1;
    p->b_bcast |= eb == 1 && p->bshape[d] > 1;
    ssa *= ea;
    ssb *= eb;
    p->batches *= p->bshape[d];
  }
  return 0;
}

/* [.., M, K] times a plain matrix [K, N]: one gemm over all rows of a */
static bool flat_case(const mm_plan *p, const lat_tensor *b) { return b->ndim == 2; }

static int matmul_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *a = n->in[0], *b = n->in[1];
  mm_plan p;
  if (plan(&p, a, b)) return -1;
  int64_t M = p.M, K = p.K, N = p.N;
  for (int k = 0; k < 2; k++) {
    if (!n->need[k]) continue;
    bool acc;
    float *g = lat__grad_buf(n, k, &acc);
    if (!g) return -1;
    if (flat_case(&p, b)) {
      int64_t rows = lat__prod(a->shape_, a->ndim - 1);
      if (k == 0) gemm(false, true, rows, K, N, gout->f, b->f, g, acc); /* gA = gY B^T */
      else gemm(true, false, K, N, rows, a->f, gout->f, g, acc);          /* gB = A^T gY */
      continue;
    }
    bool bcast = k == 0 ? p.a_bcast : p.b_bcast;
    if (!acc && bcast) memset(g, 0, (size_t)n->in[k]->numel_ * sizeof *g);
    float beta = (acc || bcast) ? 1.0f : 0.0f;
    for (int64_t bi = 0; bi < p.batches; bi++) {
      int64_t oa, ob;
      batch_offsets(&p, bi, &oa, &ob);
      const float *gy = gout->f + bi * M * N;
      if (k == 0) gemm(false, true, M, K, N, gy, b->f + ob * K * N, g + oa * M * K, beta);
      else gemm(true, false, K, N, M, a->f + oa * M * K, gy, g + ob * K * N, beta);
    }
  }
  return 0;
}

lat_tensor *lat_matmul(lat_tensor *a, lat_tensor *b) {
  if (!lat__check_f32(a, "matmul", "first input") || !lat__check_f32(b, "matmul", "second input"))
    return NULL;
  mm_plan p;
  if (plan(&p, a, b)) return NULL;
  int64_t shape[LAT_MAX_DIMS];
  int nd;
  if (flat_case(&p, b)) {
    nd = a->ndim;
    memcpy(shape, a->shape_, sizeof shape);
  } else {
    nd = p.nb + 2;
    memcpy(shape, p.bshape, (size_t)p.nb * sizeof *shape);
    shape[p.nb] = p.M;
  }
  shape[nd - 1] = p.N;
  lat_tensor *y = lat__new(LAT_F32, nd, shape);
  if (!y) return NULL;
  if (flat_case(&p, b)) {
    gemm(false, false, lat__prod(a->shape_, a->ndim - 1), p.N, p.K, a->f, b->f, y->f, 0);
    if (p.K == 0) memset(y->f, 0, (size_t)y->numel_ * sizeof(float));
  } else
    for (int64_t bi = 0; bi < p.batches; bi++) {
      int64_t oa, ob;
      batch_offsets(&p, bi, &oa, &ob);
      gemm(false, false, p.M, p.N, p.K, a->f + oa * p.M * p.K, b->f + ob * p.K * p.N,
           y->f + bi * p.M * p.N, 0);
    }
  lat_tensor *ins[2] = {a, b};
  lat__record(y, "matmul", matmul_backward, 2, ins);
  return y;
}

/* ---- linear: y = x W^T + b, W is [out, in] as in PyTorch ---- */

static int linear_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *x = n->in[0], *w = n->in[1];
  int64_t out = w->shape_[0], in = w->shape_[1], rows = lat__prod(x->shape_, x->ndim - 1);
  bool acc;
  if (n->need[0]) { /* gX = gY W */
    float *g = lat__grad_buf(n, 0, &acc);
    if (!g) return -1;
    gemm(false, false, rows, in, out, gout->f, w->f, g, acc);
  }
  if (n->need[1]) { /* gW = gY^T X */
    float *g = lat__grad_buf(n, 1, &acc);
    if (!g) return -1;
    gemm(true, false, out, in, rows, gout->f, x->f, g, acc);
  }
  if (n->n_in > 2 && n->need[2]) { /* gb = sum of gY over rows */
    float *g = lat__grad_buf(n, 2, &acc);
    if (!g) return -1;
    if (!acc) memset(g, 0, (size_t)out * sizeof *g);
    for (int64_t r = 0; r < rows; r++) {
      const float *gy = gout->f + r * out;
      for (int64_t j = 0; j < out; j++) g[j] += gy[j];
    }
  }
  return 0;
}

lat_tensor *lat_linear(lat_tensor *x, lat_tensor *w, lat_tensor *b) {
  if (!lat__check_f32(x, "linear", "input") || !lat__check_f32(w, "linear", "weight")) return NULL;
  if (b && !lat__check_f32(b, "linear", "bias")) return NULL;
  if (w->ndim != 2) return lat__fail("linear: weight must be [out, in], got %s", SHAPE(w));
  int64_t out = w->shape_[0], in = w->shape_[1];
  if (x->ndim < 1 || x->shape_[x->ndim - 1] != in)
    return lat__fail("linear: input %s has %lld features in its last dimension, weight %s "
                     "expects %lld", SHAPE(x), x->ndim ? (long long)x->shape_[x->ndim - 1] : 0LL,
                     SHAPE(w), (long long)in);
  if (b && (b->ndim != 1 || b->shape_[0] != out))
    return lat__fail("linear: bias must be [%lld], got %s", (long long)out, SHAPE(b));
  int64_t shape[LAT_MAX_DIMS];
  memcpy(shape, x->shape_, sizeof shape);
  shape[x->ndim - 1] = out;
  lat_tensor *y = lat__new(LAT_F32, x->ndim, shape);
  if (!y) return NULL;
  int64_t rows = lat__prod(x->shape_, x->ndim - 1);
  if (b)
    for (int64_t r = 0; r < rows; r++) memcpy(y->f + r * out, b->f, (size_t)out * sizeof(float));
  if (in) gemm(false, true, rows, out, in, x->f, w->f, y->f, b ? 1.0f : 0.0f);
  else if (!b) memset(y->f, 0, (size_t)y->numel_ * sizeof(float));
  lat_tensor *ins[3] = {x, w, b};
  lat__record(y, "linear", linear_backward, b ? 3 : 2, ins);
  return y;
}
