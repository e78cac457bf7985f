/* lat_dist.h: data-parallel training over MPI ranks, the C side of lat.dist (liblat_mpi, built
 * only when CMake finds MPI; liblat itself never links MPI).
 *
 *     lat_dist_init();                                  // MPI_Init_thread, once
 *     // ... each rank computes the gradients of the mean loss over its b_r rows ...
 *     lat_dist_allreduce_mean(grads, n, (double)b_r);   // now sum_r b_r * g_r / sum_r b_r everywhere
 *     lat_dist_finalize();                              // at a normal end (lat_dist_abort(1) on an error)
 *
 * Every function returns 0 or -1 with a message in lat_error(). A rank that passes tensors of
 * another total size than the others gets an error rather than a corrupted or hung reduction.
 * The block between LAT_DIST_FFI_BEGIN and LAT_DIST_FFI_END is what lua/lat/dist/init.lua
 * declares (tests/test_dist.lua checks the two agree).
 */
#ifndef LAT_DIST_H
#define LAT_DIST_H

#include "lat.h"

/* LAT_DIST_FFI_BEGIN */
int lat_dist_init(void);
int lat_dist_rank(void);
int lat_dist_size(void);
int lat_dist_allreduce_mean(lat_tensor *const *tensors, int n, double weight);
int lat_dist_allreduce_sum(double *values, int n);
int lat_dist_broadcast(lat_tensor *const *tensors, int n, int root);
int lat_dist_barrier(void);
int lat_dist_finalize(void);
void lat_dist_abort(int code);
/* LAT_DIST_FFI_END */

#endif
