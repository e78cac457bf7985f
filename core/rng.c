/* rng.c: a counter-based generator. Number k of a stream is a hash of (seed, offset + k), so
 * results do not depend on how a loop is split across threads; each call advances offset. */
#include "internal.h"
#include <math.h>

static inline uint64_t mix(uint64_t z) { /* splitmix64's finaliser */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t bits(const lat_rng *r, uint64_t k) {
  return mix(mix(r->seed + 0x9e3779b97f4a7c15ULL) ^ (r->offset + k) * 0xd1b54a32d192ed03ULL);
}

/* uniform in [0, 1) with 24 bits */
static inline float unit(const lat_rng *r, uint64_t k) {
  return (float)(bits(r, k) >> 40) * (1.0f / 16777216.0f);
}

void lat_rng_seed(lat_rng *rng, uint64_t seed) {
  rng->seed = seed;
  rng->offset = 0;
}

static int check(lat_tensor *t, lat_rng *rng, const char *op) {
  if (!rng) return lat__failc("%s: generator is nil", op);
  if (!lat__check_f32(t, op, "tensor")) return -1;
  return lat__begin_write(t, NULL, op, "draw a new tensor (lat.rand, lat.randn) instead");
}

int lat_uniform_(lat_tensor *t, lat_rng *rng, double lo, double hi) {
  if (check(t, rng, "uniform_")) return -1;
  float a = (float)lo, w = (float)(hi - lo);
  int64_t n = t->numel_;
  #pragma omp parallel for if (n > LAT_PAR_MIN)
  for (int64_t k = 0; k < n; k++) t->f[k] = a + w * unit(rng, (uint64_t)k);
  rng->offset += (uint64_t)n;
  return 0;
}

int lat_normal_(lat_tensor *t, lat_rng *rng, double mean, double std) {
  if (check(t, rng, "normal_")) return -1;
  int64_t n = t->numel_;
  #pragma omp parallel for if (n > LAT_PAR_MIN)
  for (int64_t k = 0; k < n; k++) { /* Box-Muller on two numbers of the stream */
    float u1 = unit(rng, 2 * (uint64_t)k) + (1.0f / 33554432.0f);
    float u2 = unit(rng, 2 * (uint64_t)k + 1);
    float z = sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
    t->f[k] = (float)mean + (float)std * z;
  }
  rng->offset += 2 * (uint64_t)n;
  return 0;
}

int lat_bernoulli_(lat_tensor *t, lat_rng *rng, double p) {
  if (check(t, rng, "bernoulli_")) return -1;
  if (!(p >= 0 && p <= 1)) return lat__failc("bernoulli_: probability %g is not in [0, 1]", p);
  int64_t n = t->numel_;
  float q = (float)p;
  for (int64_t k = 0; k < n; k++) t->f[k] = unit(rng, (uint64_t)k) < q ? 1.0f : 0.0f;
  rng->offset += (uint64_t)n;
  return 0;
}

int lat_randint_(lat_tensor *t, lat_rng *rng, int64_t lo, int64_t hi) {
  if (!rng || !t) return lat__failc("randint_: tensor or generator is nil");
  if (hi <= lo) return lat__failc("randint_: empty range [%lld, %lld)", (long long)lo, (long long)hi);
  /* integer dtypes must hold every draw; float32 rounds large ones, as PyTorch's does */
  int64_t min = t->dtype_ == LAT_I32 ? INT32_MIN : t->dtype_ == LAT_U8 ? 0 : INT64_MIN;
  int64_t max = t->dtype_ == LAT_I32 ? INT32_MAX : t->dtype_ == LAT_U8 ? 255 : INT64_MAX;
  if (lo < min || hi - 1 > max)
    return lat__failc("randint_: the range [%lld, %lld) does not fit in %s (%lld to %lld)",
                      (long long)lo, (long long)hi, lat__dtype_name(t->dtype_), (long long)min,
                      (long long)max);
  if (lat__begin_write(t, NULL, "randint_", "draw a new tensor (lat.randint) instead")) return -1;
  uint64_t span = (uint64_t)hi - (uint64_t)lo; /* hi - lo itself may overflow int64 */
  for (int64_t k = 0; k < t->numel_; k++) {
    int64_t v = lo + (int64_t)(bits(rng, (uint64_t)k) % span);
    if (t->dtype_ == LAT_F32) t->f[k] = (float)v;
    else if (t->dtype_ == LAT_I32) t->i[k] = (int32_t)v;
    else t->u[k] = (uint8_t)v;
  }
  rng->offset += (uint64_t)t->numel_;
  return 0;
}

lat_tensor *lat_randperm(int64_t n, lat_rng *rng) {
  if (!rng) return lat__fail("randperm: generator is nil");
  if (n < 0 || n > INT32_MAX) return lat__fail("randperm: size %lld out of range", (long long)n);
  lat_tensor *t = lat__new(LAT_I32, 1, &n);
  if (!t) return NULL;
  for (int64_t k = 0; k < n; k++) t->i[k] = (int32_t)k;
  for (int64_t k = n - 1; k > 0; k--) { /* Fisher-Yates */
    int64_t j = (int64_t)(bits(rng, (uint64_t)k) % (uint64_t)(k + 1));
    int32_t tmp = t->i[k];
    t->i[k] = t->i[j];
    t->i[j] = tmp;
  }
  rng->offset += (uint64_t)n;
  return t;
}
