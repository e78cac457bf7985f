/* mpi.c: lat_dist.h over MPI. The tensors of one call travel as one flat float block (one
 * MPI_Allreduce per training step, not one per parameter), with the rank's weight as its last
 * element, so that the weighted mean needs no second round trip. */
#include "lat_dist.h"
#include "lat.h"
#include <math.h>
#include <mpi.h>
#include <stdlib.h>

enum { CHUNK = 1 << 30 }; /* MPI counts are ints: longer blocks go in pieces */

static int ready, rank, size = 1;
static float *block; /* reused across steps */
static int64_t block_capacity;

static int mpi_failed(int rc, const char *call) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return lat_fail("dist: %s failed: %.*s", call, len, msg);
}
#define MPI_CHECK(call, ...)                                                                       \
  do {                                                                                             \
    int rc_ = call(__VA_ARGS__);                                                                   \
    if (rc_ != MPI_SUCCESS) return mpi_failed(rc_, #call);                                         \
  } while (0)

int lat_dist_init(void) {
  if (ready) return 0;
  int finalized = 0, initialized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return lat_fail("dist: MPI was finalized already and cannot start again");
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided; /* only the main thread calls MPI; OpenMP threads never do */
    MPI_CHECK(MPI_Init_thread, NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  }
  /* failures come back as codes, and so as Lua errors, instead of ending the job */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_CHECK(MPI_Comm_rank, MPI_COMM_WORLD, &rank);
  MPI_CHECK(MPI_Comm_size, MPI_COMM_WORLD, &size);
  ready = 1;
  return 0;
}

int lat_dist_rank(void) { return rank; }
int lat_dist_size(void) { return size; }

static int need_ready(const char *op) {
  return ready ? 0 : lat_fail("dist: %s called before lat_dist_init", op);
}

/* A mismatch between ranks would make MPI read past a buffer or wait forever: each call first
 * agrees on its element count (the max of n and of -n, in one tiny reduction). */
static int same_count_everywhere(int64_t n, const char *op, const char *what) {
  int64_t v[2] = {n, -n};
  MPI_CHECK(MPI_Allreduce, MPI_IN_PLACE, v, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  if (v[0] != -v[1])
    return lat_fail("dist: %s: the ranks pass different numbers of %s (from %lld to %lld); every "
                      "rank must pass the same tensors",
                      op, what, (long long)-v[1], (long long)v[0]);
  return 0;
}

/* the total element count of n float32 tensors, or -1 with an error */
static int64_t total_elements(lat_tensor *const *tensors, int n, const char *op) {
  if (n < 0 || (n > 0 && !tensors)) return lat_fail("dist: %s: expected a list of tensors", op);
  int64_t total = 0;
  for (int k = 0; k < n; k++) {
    if (!tensors[k]) return lat_fail("dist: %s: tensor %d is NULL", op, k + 1);
    if (tensors[k]->dtype_ != LAT_F32) return lat_fail("dist: %s: tensor %d is not float32", op, k + 1);
    total += tensors[k]->numel_;
  }
  return total;
}

static int reserve_block(int64_t n) {
  if (n <= block_capacity) return 0;
  float *p = realloc(block, (size_t)n * sizeof *p);
  if (!p) return lat_fail("dist: out of memory for a %lld-element block", (long long)n);
  block = p;
  block_capacity = n;
  return 0;
}

/* the tensors' values times scale into the block, one after another */
static void pack(lat_tensor *const *tensors, int n, float scale) {
  int64_t at = 0;
  for (int k = 0; k < n; k++) {
    const float *src = tensors[k]->f;
    for (int64_t i = 0; i < tensors[k]->numel_; i++) block[at + i] = src[i] * scale;
    at += tensors[k]->numel_;
  }
}

/* the block divided by divisor back into the tensors */
static void unpack(lat_tensor *const *tensors, int n, float divisor) {
  int64_t at = 0;
  for (int k = 0; k < n; k++) {
    float *dst = tensors[k]->f;
    for (int64_t i = 0; i < tensors[k]->numel_; i++) dst[i] = block[at + i] / divisor;
    at += tensors[k]->numel_;
  }
}

int lat_dist_allreduce_mean(lat_tensor *const *tensors, int n, double weight) {
  const char *op = "allreduce_mean";
  if (need_ready(op)) return -1;
  int64_t total = total_elements(tensors, n, op);
  if (total < 0) return -1;
  if (!(weight >= 0 && weight < INFINITY))
    return lat_fail("dist: %s: the weight must be a finite number >= 0, got %g", op, weight);
  if (same_count_everywhere(total, op, "elements")) return -1;
  if (reserve_block(total + 1)) return -1;
  pack(tensors, n, (float)weight);
  block[total] = (float)weight;
  for (int64_t start = 0; start <= total; start += CHUNK) {
    int count = (int)(total + 1 - start < CHUNK ? total + 1 - start : CHUNK);
    MPI_CHECK(MPI_Allreduce, MPI_IN_PLACE, block + start, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }
  float sum = block[total];
  if (!(sum > 0)) return lat_fail("dist: %s: the weights of all ranks add up to %g; some rank must have rows", op, sum);
  unpack(tensors, n, sum);
  return 0;
}

int lat_dist_allreduce_sum(double *values, int n) {
  const char *op = "allreduce_sum";
  if (need_ready(op)) return -1;
  if (n < 0 || (n > 0 && !values)) return lat_fail("dist: %s: expected an array of numbers", op);
  if (same_count_everywhere(n, op, "values")) return -1;
  if (n > 0) MPI_CHECK(MPI_Allreduce, MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return 0;
}

int lat_dist_broadcast(lat_tensor *const *tensors, int n, int root) {
  const char *op = "broadcast";
  if (need_ready(op)) return -1;
  if (root < 0 || root >= size) return lat_fail("dist: %s: root %d is not a rank (0 to %d)", op, root, size - 1);
  int64_t total = total_elements(tensors, n, op);
  if (total < 0) return -1;
  if (same_count_everywhere(total, op, "elements")) return -1;
  if (total == 0) return 0;
  if (reserve_block(total)) return -1;
  if (rank == root) pack(tensors, n, 1);
  for (int64_t start = 0; start < total; start += CHUNK) {
    int count = (int)(total - start < CHUNK ? total - start : CHUNK);
    MPI_CHECK(MPI_Bcast, block + start, count, MPI_FLOAT, root, MPI_COMM_WORLD);
  }
  if (rank != root) unpack(tensors, n, 1);
  return 0;
}

int lat_dist_barrier(void) {
  if (need_ready("barrier")) return -1;
  MPI_CHECK(MPI_Barrier, MPI_COMM_WORLD);
  return 0;
}

int lat_dist_finalize(void) {
  if (!ready) return 0;
  ready = 0;
  free(block);
  block = NULL;
  block_capacity = 0;
  int rc = MPI_Finalize();
  return rc == MPI_SUCCESS ? 0 : mpi_failed(rc, "MPI_Finalize");
}

/* ends every rank of the job at once: what a rank that failed does, so that the others do not
 * wait for it forever in a reduction */
void lat_dist_abort(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}
