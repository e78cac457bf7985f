/* conv.h: what ops_conv.c (im2col + sgemm) and conv_direct.c (AVX-512 kernels) share. */
#ifndef LAT_CONV_H
#define LAT_CONV_H

#include "internal.h"

/* computed once by lat_conv2d; its node keeps it for backward */
typedef struct {
  int64_t N, C, H, W, O, kh, kw, OH, OW;
  int64_t K, P;   /* K = C*kh*kw rows of a column matrix, P = OH*OW output positions */
  int64_t B;      /* im2col path: images per chunk, one gemm covers B*P columns */
  int sh, sw, ph, pw;
  bool x_is_col;  /* 1x1 kernel, stride 1, no padding: x itself is the column matrix */
} conv_geom;

/* Whether the direct kernels handle this geometry (built with AVX-512; a kernel larger than
 * 1x1; stride 1 with padding below the kernel size, or a stride no larger than the kernel). */
bool lat__conv_direct_ok(const conv_geom *g);
/* y = conv(x, w) + b over nt threads (images split between them); -1 on out of memory. */
int lat__conv_direct_forward(const conv_geom *g, const float *x, const float *w, const float *b,
                             float *y, int nt);
/* Gradients for whichever of gx, gw, gb is not NULL; each is overwritten, or added to when its
 * acc flag is set. -1 on out of memory. */
int lat__conv_direct_backward(const conv_geom *g, const float *x, const float *w, const float *gy,
                              float *gx, bool acc_x, float *gw, bool acc_w, float *gb, bool acc_b,
                              int nt);

#endif
