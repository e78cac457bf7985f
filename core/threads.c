/* threads.c: one thread count for OpenBLAS and for lat's own OpenMP loops. */
#include "internal.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

static int nthreads = 0;

static int initial_threads(void) {
  const char *s = getenv("LAT_NUM_THREADS");
  int n = s ? atoi(s) : 0;
  if (n <= 0) n = omp_get_num_procs();
  return n > 0 ? n : 1;
}

void lat_set_num_threads(int n) {
  if (n <= 0) n = initial_threads();
  nthreads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int lat_get_num_threads(void) {
  if (!nthreads) lat_set_num_threads(0);
  return nthreads;
}

int lat__threads(void) { return lat_get_num_threads(); }

/* An OpenMP OpenBLAS already runs single-threaded inside a parallel region. */
static bool blas_on_openmp(void) { return openblas_get_parallel() == 2; }

void lat__blas_single_begin(int nt) {
  if (nt > 1 && !blas_on_openmp()) openblas_set_num_threads(1);
}

void lat__blas_single_end(int nt) {
  if (nt > 1 && !blas_on_openmp()) openblas_set_num_threads(lat__threads());
}
