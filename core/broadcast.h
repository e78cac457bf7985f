/* broadcast.h: walking up to three tensors broadcast against one output shape.
 * The shapes are right-aligned as in PyTorch; a broadcast dimension gets stride 0, and
 * dimensions that are contiguous in every operand are merged, so the common cases (same
 * shapes, a scalar, a bias row) run as one flat loop. */
#ifndef LAT_BROADCAST_H
#define LAT_BROADCAST_H
#include "internal.h"

typedef struct {
  int nd;                          /* after merging; at least 1 */
  int64_t size[LAT_MAX_DIMS];
  int64_t st[3][LAT_MAX_DIMS];     /* element strides of each operand */
  int64_t inner, rows;             /* size[nd-1] and the product of the others */
} lat_bcast;

/* out_shape: the broadcast shape (ndim out_nd); shapes[j]/ndims[j]: operand j */
static inline void lat_bcast_init(lat_bcast *b, int out_nd, const int64_t *out_shape, int nops,
                                  const int64_t *const *shapes, const int *ndims) {
  int64_t size[LAT_MAX_DIMS] = {0}, st[3][LAT_MAX_DIMS] = {{0}};
  int nd = out_nd ? out_nd : 1;
  for (int d = 0; d < nd; d++) size[d] = out_nd ? out_shape[d] : 1;
  for (int j = 0; j < nops; j++) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
      int dj = d - (nd - ndims[j]);
      int64_t n = dj >= 0 ? shapes[j][dj] : 1;
      st[j][d] = n == 1 ? 0 : s;
      s *= n;
    }
  }
  /* merge dimension d into the one before it where every operand is contiguous across both */
  int m = 0;
  b->size[0] = size[0];
  for (int j = 0; j < nops; j++) b->st[j][0] = st[j][0];
  for (int d = 1; d < nd; d++) {
    bool merge = true;
    for (int j = 0; j < nops; j++) merge &= b->st[j][m] == st[j][d] * size[d];
    if (merge) {
      b->size[m] *= size[d];
    } else {
      m++;
      b->size[m] = size[d];
    }
    for (int j = 0; j < nops; j++) b->st[j][m] = st[j][d];
  }
  b->nd = m + 1;
  b->inner = b->size[m];
  b->rows = 1;
  for (int d = 0; d < m; d++) b->rows *= b->size[d];
}

/* element offsets of each operand at the start of a row */
static inline void lat_bcast_row(const lat_bcast *b, int nops, int64_t row, int64_t *off) {
  for (int j = 0; j < nops; j++) off[j] = 0;
  for (int d = b->nd - 2; d >= 0; d--) {
    int64_t i = row % b->size[d];
    row /= b->size[d];
    for (int j = 0; j < nops; j++) off[j] += i * b->st[j][d];
  }
}

#endif
