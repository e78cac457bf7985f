/* ops_elementwise.c: unary and binary elementwise ops with PyTorch broadcasting, forward and
 * backward side by side; also scalar ops, pow, clamp, where and comparisons. */
#include "broadcast.h"
#include <math.h>
#include <string.h>

#define PAR_IF(n) if ((n) > LAT_PAR_MIN)

/* what a unary or binary op's node keeps for backward */
typedef struct {
  int op; /* LAT_OP_... */
} op_saved;

int lat__broadcast_shape(const lat_tensor *a, const lat_tensor *b, int64_t *out, const char *op) {
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < nd; d++) {
    int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
    int64_t sa = da >= 0 ? a->shape_[da] : 1, sb = db >= 0 ? b->shape_[db] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      lat__fail("%s: shapes %s and %s do not broadcast (dimension %d: %lld vs %lld)", op,
                SHAPE(a), SHAPE(b), d + 1, (long long)sa, (long long)sb);
      return -1;
    }
    out[d] = sa == 1 ? sb : sa;
  }
  return nd;
}

void lat__sum_to(float *dst, int dst_ndim, const int64_t *dst_shape, const float *src,
                 int src_ndim, const int64_t *src_shape, bool accumulate) {
  int64_t dn = lat__prod(dst_shape, dst_ndim), sn = lat__prod(src_shape, src_ndim);
  if (dn == sn) { /* nothing was broadcast */
    if (accumulate) {
      #pragma omp parallel for simd if (parallel : dn > LAT_PAR_STREAM)
      for (int64_t k = 0; k < dn; k++) dst[k] += src[k];
    }
    else memcpy(dst, src, (size_t)dn * sizeof *dst);
    return;
  }
  if (!accumulate) memset(dst, 0, (size_t)dn * sizeof *dst);
  lat_bcast bc;
  const int64_t *shapes[2] = {dst_shape, src_shape};
  int ndims[2] = {dst_ndim, src_ndim};
  lat_bcast_init(&bc, src_ndim, src_shape, 2, shapes, ndims);
  int64_t sd = bc.st[0][bc.nd - 1], inner = bc.inner;
  /* rows write distinct outputs (a per-example sum, say) unless some row dimension was summed */
  bool distinct = true;
  for (int d = 0; d < bc.nd - 1; d++) distinct &= bc.st[0][d] != 0;
  #pragma omp parallel for if (distinct && sn > LAT_PAR_STREAM && bc.rows > 1)
  for (int64_t r = 0; r < bc.rows; r++) {
    int64_t off[2];
    lat_bcast_row(&bc, 2, r, off);
    const float *restrict s = src + off[1];
    float *restrict d = dst + off[0];
    if (sd == 0) d[0] += lat__sum_row(s, inner);
    else
      for (int64_t i = 0; i < inner; i++) d[i] += s[i];
  }
}

/* ---------------- unary ---------------- */

static const char *unary_names[LAT_UNARY_COUNT] = {"neg",  "exp",  "log",  "sqrt",   "abs",
                                                   "relu", "gelu", "tanh", "sigmoid",
                                                   "gelu_tanh"};
_Static_assert(sizeof unary_names / sizeof *unary_names == LAT_UNARY_COUNT, "unary names");

/* GELU with the exact (erf) form, as PyTorch's default: x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2 */
static inline float gelu_f(float x) { return x * 0.5f * lat__erfcf(-x * (float)M_SQRT1_2); }
static inline float gelu_d(float x) {
  float cdf = 0.5f * lat__erfcf(-x * (float)M_SQRT1_2);
  float pdf = lat__expf(-0.5f * x * x) * 0.3989422804014327f;
  return cdf + x * pdf;
}

/* GELU with the tanh approximation (GPT-2's, PyTorch's approximate='tanh'):
 * x (1 + tanh u) / 2 = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3). The sigmoid form keeps
 * its relative accuracy on the left, where 1 + tanh u cancels. The derivative is
 * s + x 2u' s (1 - s) with s = sigmoid(2u); u' from x clamped to [-20, 20], where s (1 - s) is
 * already 0, so that x^2 cannot overflow into inf * 0 (PyTorch gives NaN from |x| = 1.9e19). */
#define GELU_TANH_K 0.7978845608028654f /* sqrt(2 / pi) */
static inline float gelu_tanh_f(float x) {
  return x / (1.0f + lat__expf(-2.0f * GELU_TANH_K * (x + 0.044715f * x * x * x)));
}
static inline float gelu_tanh_d(float x) {
  float u2 = 2.0f * GELU_TANH_K * (x + 0.044715f * x * x * x), xc = lat__clampf(x, -20.0f, 20.0f);
  float s = 1.0f / (1.0f + lat__expf(-u2));
  float du2 = 2.0f * GELU_TANH_K * (1.0f + 3.0f * 0.044715f * xc * xc);
  return s + x * (du2 * lat__bump(lat__expf(-fabsf(u2))));
}

static void unary_forward(int op, float *restrict y, const float *restrict x, int64_t n) {
  switch (op) {
#define LOOP(expr)                                                                              \
  _Pragma("omp parallel for simd if (parallel : n > LAT_PAR_MIN)")                             \
  for (int64_t k = 0; k < n; k++) {                                                            \
    float v = x[k];                                                                            \
    y[k] = (expr);                                                                             \
  }                                                                                            \
  break;
  case LAT_OP_NEG: LOOP(-v)
  case LAT_OP_EXP: LOOP(lat__expf(v))
  case LAT_OP_LOG: LOOP(logf(v))
  case LAT_OP_SQRT: LOOP(sqrtf(v))
  case LAT_OP_ABS: LOOP(fabsf(v))
  case LAT_OP_RELU: LOOP(v < 0 ? 0 : v) /* NaN through, as PyTorch */
  case LAT_OP_GELU: LOOP(gelu_f(v))
  case LAT_OP_TANH: LOOP(lat__tanhf(v))
  case LAT_OP_SIGMOID: LOOP(1.0f / (1.0f + lat__expf(-v)))
  case LAT_OP_GELU_TANH: LOOP(gelu_tanh_f(v))
#undef LOOP
  }
}

/* the derivative times g, from the input x and the output y */
static int unary_backward(lat_node *n, const lat_tensor *gout) {
  int op = LAT_NODE_STATE(n, op_saved)->op;
  bool acc;
  float *restrict gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  const float *restrict g = gout->f, *restrict x = n->in[0]->f;
  const float *restrict y = n->saved[0] ? n->saved[0]->f : NULL;
  int64_t cnt = gout->numel_;
  switch (op) {
/* two loops rather than a branch on acc inside one, so that both vectorise */
#define LOOP(expr)                                                                              \
  if (acc) {                                                                                   \
    _Pragma("omp parallel for simd if (parallel : cnt > LAT_PAR_MIN)")                         \
    for (int64_t k = 0; k < cnt; k++)                                                          \
      gx[k] += (expr);                                                                         \
  } else {                                                                                     \
    _Pragma("omp parallel for simd if (parallel : cnt > LAT_PAR_MIN)")                         \
    for (int64_t k = 0; k < cnt; k++)                                                          \
      gx[k] = (expr);                                                                          \
  }                                                                                            \
  break;
  case LAT_OP_NEG: LOOP(-g[k])
  case LAT_OP_EXP: LOOP(g[k] * y[k])
  case LAT_OP_LOG: LOOP(g[k] / x[k])
  case LAT_OP_SQRT: LOOP(g[k] * 0.5f / y[k])
  case LAT_OP_ABS: LOOP(x[k] > 0 ? g[k] : x[k] < 0 ? -g[k] : 0.0f)
  case LAT_OP_RELU: LOOP(x[k] <= 0 ? 0.0f : g[k]) /* NaN passes g, as PyTorch */
  case LAT_OP_GELU: LOOP(g[k] * gelu_d(x[k]))
  case LAT_OP_TANH: LOOP(g[k] * 4.0f * lat__bump(lat__expf(-2.0f * fabsf(x[k]))))
  case LAT_OP_SIGMOID: LOOP(g[k] * lat__bump(lat__expf(-fabsf(x[k]))))
  case LAT_OP_GELU_TANH: LOOP(g[k] * gelu_tanh_d(x[k]))
#undef LOOP
  }
  return 0;
}

const char *lat_unary_name(lat_unary_op op) {
  return (unsigned)op < LAT_UNARY_COUNT ? unary_names[op] : NULL;
}

lat_tensor *lat_unary(lat_unary_op op, lat_tensor *x) {
  if ((unsigned)op >= LAT_UNARY_COUNT) return lat__fail("unary: unknown op %d", (int)op);
  if (!lat__check_f32(x, unary_names[op], "input")) return NULL;
  lat_tensor *y = lat__new_like(x);
  if (!y) return NULL;
  unary_forward(op, y->f, x->f, x->numel_);
  lat_node *n = lat__record(y, unary_names[op], unary_backward, 1, &x);
  if (n) {
    LAT_NODE_STATE(n, op_saved)->op = op;
    n->inputs_unread = op == LAT_OP_NEG;
    if (op == LAT_OP_EXP || op == LAT_OP_SQRT)
      n->saved[0] = lat__save_output(y);
  }
  return y;
}

/* ---------------- binary ---------------- */

static const char *binary_names[LAT_BINARY_COUNT] = {"add", "sub", "mul", "div"};
_Static_assert(sizeof binary_names / sizeof *binary_names == LAT_BINARY_COUNT, "binary names");

static lat_bcast binary_bcast(const lat_tensor *out, const lat_tensor *a, const lat_tensor *b) {
  lat_bcast bc;
  const int64_t *shapes[2] = {a->shape_, b->shape_};
  int ndims[2] = {a->ndim, b->ndim};
  lat_bcast_init(&bc, out->ndim, out->shape_, 2, shapes, ndims);
  return bc;
}

/* y[i] = pa[i sa] op pb[i sb], i < n, with the strides that broadcasting gives (1 and 1, 1 and 0,
 * 0 and 1) spelled out so that each loop vectorises */
#define BINARY_ROW(EXPR)                                                                          \
  do {                                                                                            \
    if (sa == 1 && sb == 1)                                                                       \
      for (int64_t i = 0; i < n; i++) { float u = pa[i], v = pb[i]; (void)u, (void)v; y[i] = EXPR; } \
    else if (sa == 1 && sb == 0) {                                                                \
      float v = pb[0];                                                                            \
      (void)v;                                                                                    \
      for (int64_t i = 0; i < n; i++) { float u = pa[i]; (void)u; y[i] = EXPR; }                  \
    } else if (sa == 0 && sb == 1) {                                                              \
      float u = pa[0];                                                                            \
      (void)u;                                                                                    \
      for (int64_t i = 0; i < n; i++) { float v = pb[i]; (void)v; y[i] = EXPR; }                  \
    } else                                                                                        \
      for (int64_t i = 0; i < n; i++) {                                                           \
        float u = pa[i * sa], v = pb[i * sb];                                                     \
        (void)u, (void)v;                                                                         \
        y[i] = EXPR;                                                                              \
      }                                                                                           \
  } while (0)

static void binary_row(int op, float *restrict y, const float *restrict pa, int64_t sa,
                       const float *restrict pb, int64_t sb, int64_t n) {
  switch (op) {
  case LAT_OP_ADD: BINARY_ROW(u + v); break;
  case LAT_OP_SUB: BINARY_ROW(u - v); break;
  case LAT_OP_MUL: BINARY_ROW(u * v); break;
  case LAT_OP_DIV: BINARY_ROW(u / v); break;
  }
}

/* A broadcast loop's rows, cut into pieces for the threads: whole rows when there are many, or
 * each row in chunks (of whole cache lines) when there are few, so that a same-shape op, one
 * long row, is split too. Small ops stay on one thread (LAT_PAR_STREAM). */
typedef struct { int64_t chunk, per_row, count; } pieces;

static pieces pieces_of(const lat_bcast *bc) {
  int64_t inner = bc->inner, chunk = inner;
  if (inner == 0 || bc->rows == 0) return (pieces){1, 1, 0}; /* an empty tensor */
  if (bc->rows < 16 && inner * bc->rows > LAT_PAR_STREAM) {
    int64_t want = (16 + bc->rows - 1) / bc->rows; /* pieces a row, for about 16 in all */
    chunk = ((inner + want - 1) / want + 15) / 16 * 16;
    if (chunk < 4096) chunk = 4096;
  }
  int64_t per_row = (inner + chunk - 1) / chunk;
  return (pieces){chunk, per_row, bc->rows * per_row};
}

/* piece p: its row r, its first element c0 in the row, and its length */
static inline int64_t piece_at(const pieces *pc, int64_t inner, int64_t p, int64_t *r, int64_t *c0) {
  *r = p / pc->per_row;
  *c0 = p % pc->per_row * pc->chunk;
  return inner - *c0 < pc->chunk ? inner - *c0 : pc->chunk;
}

static void binary_forward(int op, lat_tensor *out, const lat_tensor *a, const lat_tensor *b) {
  lat_bcast bc = binary_bcast(out, a, b);
  int64_t sa = bc.st[0][bc.nd - 1], sb = bc.st[1][bc.nd - 1], inner = bc.inner;
  pieces pc = pieces_of(&bc);
  #pragma omp parallel for if (out->numel_ > LAT_PAR_STREAM && pc.count > 1)
  for (int64_t p = 0; p < pc.count; p++) {
    int64_t r, c0, off[2], n = piece_at(&pc, inner, p, &r, &c0);
    lat_bcast_row(&bc, 2, r, off);
    binary_row(op, out->f + r * inner + c0, a->f + off[0] + c0 * sa, sa, b->f + off[1] + c0 * sb, sb, n);
  }
}

/* y[i] = the gradient of input k of op at element i, from the output's gradient g */
static void binary_grad_row(int op, int k, float *restrict y, const float *restrict g, const float *restrict pa,
                            int64_t sa, const float *restrict pb, int64_t sb, int64_t n) {
  if (op == LAT_OP_SUB) for (int64_t i = 0; i < n; i++) y[i] = -g[i];
  else if (op == LAT_OP_MUL && k == 0) BINARY_ROW(g[i] * v);
  else if (op == LAT_OP_MUL) BINARY_ROW(g[i] * u);
  else if (k == 0) BINARY_ROW(g[i] / v);
  else BINARY_ROW(-g[i] * u / (v * v));
}

/* For input k of a binary op: the gradient at output resolution, then summed down. */
static int binary_backward(lat_node *n, const lat_tensor *gout) {
  int op = LAT_NODE_STATE(n, op_saved)->op;
  lat_tensor *a = n->in[0], *b = n->in[1];
  lat_tensor *tmp = NULL;
  for (int k = 0; k < 2; k++) {
    if (!n->need[k]) continue;
    lat_tensor *x = n->in[k];
    bool acc;
    float *gx = lat__grad_buf(n, k, &acc);
    if (!gx) return -1;
    const float *src = gout->f;
    bool linear = op == LAT_OP_ADD || (op == LAT_OP_SUB && k == 0);
    if (!linear) {
      if (!tmp && !(tmp = lat__new_like(gout))) return -1;
      lat_bcast bc = binary_bcast(gout, a, b);
      int64_t sa = bc.st[0][bc.nd - 1], sb = bc.st[1][bc.nd - 1], inner = bc.inner;
      pieces pc = pieces_of(&bc);
      #pragma omp parallel for if (gout->numel_ > LAT_PAR_STREAM && pc.count > 1)
      for (int64_t p = 0; p < pc.count; p++) {
        int64_t r, c0, off[2], len = piece_at(&pc, inner, p, &r, &c0);
        lat_bcast_row(&bc, 2, r, off);
        binary_grad_row(op, k, tmp->f + r * inner + c0, gout->f + r * inner + c0, a->f + off[0] + c0 * sa, sa,
                        b->f + off[1] + c0 * sb, sb, len);
      }
      src = tmp->f;
    }
    lat__sum_to(gx, x->ndim, x->shape_, src, gout->ndim, gout->shape_, acc);
  }
  lat_release(tmp);
  return 0;
}

lat_tensor *lat_binary(lat_binary_op op, lat_tensor *a, lat_tensor *b) {
  if ((unsigned)op >= LAT_BINARY_COUNT) return lat__fail("binary: unknown op %d", (int)op);
  const char *name = binary_names[op];
  if (!lat__check_f32(a, name, "first input") || !lat__check_f32(b, name, "second input"))
    return NULL;
  int64_t shape[LAT_MAX_DIMS];
  int nd = lat__broadcast_shape(a, b, shape, name);
  if (nd < 0) return NULL;
  lat_tensor *y = lat__new(LAT_F32, nd, shape);
  if (!y) return NULL;
  binary_forward(op, y, a, b);
  lat_tensor *ins[2] = {a, b};
  lat_node *n = lat__record(y, name, binary_backward, 2, ins);
  if (n) {
    LAT_NODE_STATE(n, op_saved)->op = op;
    n->inputs_unread = op == LAT_OP_ADD || op == LAT_OP_SUB;
  }
  return y;
}

/* ---------------- scalar ops, pow, clamp ---------------- */

/* x^p as PyTorch computes it: sqrt and 1/sqrt for p = +-1/2 (so (-0)^0.5 = -0, (-inf)^0.5 = NaN
 * and their derivatives follow), powf otherwise; the tests on p are the same for every element */
static inline float pow_as_torch(float x, float p) {
  return p == 0.5f ? sqrtf(x) : p == -0.5f ? 1.0f / sqrtf(x) : powf(x, p);
}

/* the ops of a tensor and a number, each with its own public function */
typedef enum { SCALAR_ADD, SCALAR_MUL, SCALAR_POW, SCALAR_CLAMP } scalar_op_kind;
typedef struct {
  scalar_op_kind kind;
  float s;  /* the scalar, or clamp's lower bound */
  float hi; /* clamp's upper bound */
} scalar_saved;

static int scalar_backward(lat_node *n, const lat_tensor *gout) {
  bool acc;
  float *gx = lat__grad_buf(n, 0, &acc);
  if (!gx) return -1;
  const float *g = gout->f, *x = n->in[0]->f;
  int64_t cnt = gout->numel_;
  const scalar_saved *arg = LAT_NODE_STATE(n, scalar_saved);
  scalar_op_kind kind = arg->kind;
  float s = arg->s, lo = arg->s, hi = arg->hi;
  #pragma omp parallel for simd if (parallel : cnt > LAT_PAR_MIN)
  for (int64_t k = 0; k < cnt; k++) {
    float d;
    if (kind == SCALAR_ADD) d = g[k];
    else if (kind == SCALAR_MUL) d = g[k] * s;
    else if (kind == SCALAR_POW) d = s == 0 ? 0.0f : g[k] * s * pow_as_torch(x[k], s - 1.0f);
    else d = (x[k] >= lo && x[k] <= hi) ? g[k] : 0.0f; /* SCALAR_CLAMP */
    gx[k] = acc ? gx[k] + d : d;
  }
  return 0;
}

static lat_tensor *scalar_op(scalar_op_kind kind, lat_tensor *x, double s, double s2,
                             const char *name) {
  if (!lat__check_f32(x, name, "input")) return NULL;
  lat_tensor *y = lat__new_like(x);
  if (!y) return NULL;
  float a = (float)s, b = (float)s2;
  int64_t cnt = x->numel_;
  const float *restrict xs = x->f;
  float *restrict ys = y->f;
  bool par = cnt > LAT_PAR_STREAM, par_pow = cnt > LAT_PAR_MIN;
  if (kind == SCALAR_ADD) {
    #pragma omp parallel for simd if (parallel : par)
    for (int64_t k = 0; k < cnt; k++) ys[k] = xs[k] + a;
  } else if (kind == SCALAR_MUL) {
    #pragma omp parallel for simd if (parallel : par)
    for (int64_t k = 0; k < cnt; k++) ys[k] = xs[k] * a;
  } else if (kind == SCALAR_POW && a == 2.0f) {
    #pragma omp parallel for simd if (parallel : par)
    for (int64_t k = 0; k < cnt; k++) ys[k] = xs[k] * xs[k];
  } else if (kind == SCALAR_POW) {
    #pragma omp parallel for if (par_pow)
    for (int64_t k = 0; k < cnt; k++) ys[k] = pow_as_torch(xs[k], a);
  } else {
    #pragma omp parallel for simd if (parallel : par)
    for (int64_t k = 0; k < cnt; k++) ys[k] = lat__clampf(xs[k], a, b);
  }
  lat_node *n = lat__record(y, name, scalar_backward, 1, &x);
  if (n) {
    *LAT_NODE_STATE(n, scalar_saved) = (scalar_saved){.kind = kind, .s = a, .hi = b};
    n->inputs_unread = kind == SCALAR_ADD || kind == SCALAR_MUL;
  }
  return y;
}

lat_tensor *lat_add_scalar(lat_tensor *x, double s) { return scalar_op(SCALAR_ADD, x, s, 0, "add"); }
lat_tensor *lat_mul_scalar(lat_tensor *x, double s) { return scalar_op(SCALAR_MUL, x, s, 0, "mul"); }
lat_tensor *lat_pow_scalar(lat_tensor *x, double p) { return scalar_op(SCALAR_POW, x, p, 0, "pow"); }
lat_tensor *lat_clamp(lat_tensor *x, double lo, double hi) {
  if (lo > hi) return lat__fail("clamp: lower bound %g is above upper bound %g", lo, hi);
  return scalar_op(SCALAR_CLAMP, x, lo, hi, "clamp");
}

/* ---------------- where and comparisons ---------------- */

static float as_float(const lat_tensor *t, int64_t k) {
  return t->dtype_ == LAT_F32 ? t->f[k] : t->dtype_ == LAT_I32 ? (float)t->i[k] : (float)t->u[k];
}

static lat_bcast where_bcast(const lat_tensor *out, const lat_tensor *m, const lat_tensor *a,
                             const lat_tensor *b) {
  lat_bcast bc;
  const int64_t *shapes[3] = {m->shape_, a->shape_, b->shape_};
  int ndims[3] = {m->ndim, a->ndim, b->ndim};
  lat_bcast_init(&bc, out->ndim, out->shape_, 3, shapes, ndims);
  return bc;
}

static int where_backward(lat_node *n, const lat_tensor *gout) {
  lat_tensor *m = n->in[0], *a = n->in[1], *b = n->in[2];
  lat_tensor *tmp = lat__new_like(gout);
  if (!tmp) return -1;
  lat_bcast bc = where_bcast(gout, m, a, b);
  for (int k = 1; k <= 2; k++) {
    if (!n->need[k]) continue;
    int64_t sm = bc.st[0][bc.nd - 1];
    for (int64_t r = 0; r < bc.rows; r++) {
      int64_t off[3];
      lat_bcast_row(&bc, 3, r, off);
      const float *g = gout->f + r * bc.inner;
      float *t = tmp->f + r * bc.inner;
      for (int64_t i = 0; i < bc.inner; i++) {
        bool pick = as_float(m, off[0] + i * sm) != 0;
        t[i] = (pick == (k == 1)) ? g[i] : 0.0f;
      }
    }
    bool acc;
    float *gx = lat__grad_buf(n, k, &acc);
    if (!gx) { lat_release(tmp); return -1; }
    lat__sum_to(gx, n->in[k]->ndim, n->in[k]->shape_, tmp->f, gout->ndim, gout->shape_, acc);
  }
  lat_release(tmp);
  return 0;
}

lat_tensor *lat_where(lat_tensor *m, lat_tensor *a, lat_tensor *b) {
  if (!m) return lat__fail("where: mask is nil");
  if (!lat__check_f32(a, "where", "first value") || !lat__check_f32(b, "where", "second value"))
    return NULL;
  int64_t s1[LAT_MAX_DIMS], shape[LAT_MAX_DIMS];
  int nd = lat__broadcast_shape(a, b, s1, "where");
  if (nd < 0) return NULL;
  lat_tensor tmp = {.ndim = nd};
  memcpy(tmp.shape_, s1, sizeof s1);
  nd = lat__broadcast_shape(m, &tmp, shape, "where");
  if (nd < 0) return NULL;
  lat_tensor *y = lat__new(LAT_F32, nd, shape);
  if (!y) return NULL;
  lat_bcast bc = where_bcast(y, m, a, b);
  int64_t sm = bc.st[0][bc.nd - 1], sa = bc.st[1][bc.nd - 1], sb = bc.st[2][bc.nd - 1];
  for (int64_t r = 0; r < bc.rows; r++) {
    int64_t off[3];
    lat_bcast_row(&bc, 3, r, off);
    float *o = y->f + r * bc.inner;
    for (int64_t i = 0; i < bc.inner; i++)
      o[i] = as_float(m, off[0] + i * sm) != 0 ? a->f[off[1] + i * sa] : b->f[off[2] + i * sb];
  }
  lat_tensor *ins[3] = {m, a, b};
  lat__record(y, "where", where_backward, 3, ins);
  return y;
}

lat_tensor *lat_compare(lat_compare_op op, lat_tensor *a, lat_tensor *b) {
  if (!a || !b) return lat__fail("compare: tensor is nil");
  if ((unsigned)op >= LAT_COMPARE_COUNT)
    return lat__fail("compare: unknown comparison %d", (int)op);
  int64_t shape[LAT_MAX_DIMS];
  int nd = lat__broadcast_shape(a, b, shape, "compare");
  if (nd < 0) return NULL;
  lat_tensor *y = lat__new(LAT_U8, nd, shape);
  if (!y) return NULL;
  lat_bcast bc = binary_bcast(y, a, b);
  int64_t sa = bc.st[0][bc.nd - 1], sb = bc.st[1][bc.nd - 1];
  for (int64_t r = 0; r < bc.rows; r++) {
    int64_t off[2];
    lat_bcast_row(&bc, 2, r, off);
    uint8_t *o = y->u + r * bc.inner;
    for (int64_t i = 0; i < bc.inner; i++) {
      float x = as_float(a, off[0] + i * sa), z = as_float(b, off[1] + i * sb);
      bool v = op == LAT_CMP_EQ ? x == z : op == LAT_CMP_NE ? x != z : op == LAT_CMP_LT ? x < z
               : op == LAT_CMP_LE ? x <= z : op == LAT_CMP_GT ? x > z : x >= z;
      o[i] = v;
    }
  }
  return y;
}
