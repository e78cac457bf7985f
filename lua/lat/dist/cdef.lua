-- dist/cdef.lua: the declarations of core/dist/lat_dist.h (its LAT_DIST_FFI block), which
-- liblat_mpi implements; tests/test_dist.lua checks that the two stay the same.
return [[
int lat_dist_init(void);
int lat_dist_rank(void);
int lat_dist_size(void);
int lat_dist_allreduce_mean(lat_tensor *const *tensors, int n, double weight);
int lat_dist_allreduce_sum(double *values, int n);
int lat_dist_broadcast(lat_tensor *const *tensors, int n, int root);
int lat_dist_barrier(void);
int lat_dist_finalize(void);
void lat_dist_abort(int code);
]]
