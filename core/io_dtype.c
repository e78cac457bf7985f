/* io_dtype.c: the dtypes a safetensors file may store that lat reads, the lat dtype each is
 * kept as, and the conversions between them: exact for F16 and BF16, round-to-nearest-even
 * (as a C cast) for F64, and refused for a value the kept dtype cannot hold. */
#include "io.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

const lat_file_dtype lat__file_dtypes[LAT_FILE_DTYPES] = {
    [LAT_FILE_F32] = {"F32", 4, LAT_F32},   [LAT_FILE_I32] = {"I32", 4, LAT_I32},
    [LAT_FILE_U8] = {"U8", 1, LAT_U8},      [LAT_FILE_F16] = {"F16", 2, LAT_F32},
    [LAT_FILE_BF16] = {"BF16", 2, LAT_F32}, [LAT_FILE_F64] = {"F64", 8, LAT_F32},
    [LAT_FILE_I64] = {"I64", 8, LAT_I32},   [LAT_FILE_I16] = {"I16", 2, LAT_I32},
    [LAT_FILE_I8] = {"I8", 1, LAT_I32},     [LAT_FILE_BOOL] = {"BOOL", 1, LAT_U8},
};

int lat__file_dtype(const char *name) {
  for (int d = 0; d < LAT_FILE_DTYPES; d++)
    if (strcmp(name, lat__file_dtypes[d].name) == 0) return d;
  return -1;
}

/* ---------------------------------------------------------------- half precision bits */

/* IEEE binary16 -> binary32, exact; a signalling NaN comes out quiet, as IEEE conversion (and
 * PyTorch) make it */
static uint32_t f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h >> 10 & 0x1F, man = h & 0x3FF;
  if (exp == 0x1F) return sign | 0x7F800000 | (man ? 0x400000 | man << 13 : 0);
  if (exp) return sign | (exp + 112) << 23 | man << 13;
  if (!man) return sign;
  uint32_t e = 113; /* a subnormal: shift the leading 1 into the implicit bit */
  while (!(man & 0x400)) man <<= 1, e--;
  return sign | e << 23 | (man & 0x3FF) << 13;
}

/* keeps the top bits of x after dropping `shift` bits, rounded to nearest, ties to even */
static uint32_t round_shift(uint32_t x, int shift) {
  uint32_t q = x >> shift, rest = x & ((1u << shift) - 1), half = 1u << (shift - 1);
  return q + (rest > half || (rest == half && (q & 1)));
}

static uint16_t f32_to_f16(float v) {
  uint32_t f;
  memcpy(&f, &v, 4);
  uint16_t sign = f >> 16 & 0x8000;
  uint32_t exp = f >> 23 & 0xFF, man = f & 0x7FFFFF;
  if (exp == 0xFF) return sign | 0x7C00 | (man ? 0x200 | man >> 13 : 0);
  int e = (int)exp - 127 + 15; /* the binary16 exponent field */
  if (e >= 31) return sign | 0x7C00;
  /* below half the smallest subnormal (2^-25), or exactly half, which ties to 0 */
  if (e < -10) return sign;
  /* a carry out of the mantissa lands in the exponent: the next binade, or infinity */
  if (e <= 0) return sign | round_shift(man | 0x800000, 14 - e);
  return sign | round_shift((uint32_t)e << 23 | man, 13);
}

static uint16_t f32_to_bf16(float v) {
  uint32_t f;
  memcpy(&f, &v, 4);
  if ((f & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)(f >> 16 | 0x40);
  return (uint16_t)round_shift(f, 16);
}

/* ---------------------------------------------------------------- converting arrays */

int64_t lat__decode_values(int fd, void *dst, const void *src, int64_t n) {
  float *f = dst;
  int32_t *i = dst;
  uint8_t *u = dst;
  switch (fd) {
  case LAT_FILE_F32: case LAT_FILE_I32: case LAT_FILE_U8:
    memcpy(dst, src, (size_t)n * lat__file_dtypes[fd].size);
    return -1;
  case LAT_FILE_F16:
    for (int64_t k = 0; k < n; k++) {
      uint32_t bits = f16_to_f32(((const uint16_t *)src)[k]);
      memcpy(f + k, &bits, 4);
    }
    return -1;
  case LAT_FILE_BF16: /* the top half of a binary32, NaN payloads as they are (as in PyTorch) */
    for (int64_t k = 0; k < n; k++) {
      uint32_t bits = (uint32_t)((const uint16_t *)src)[k] << 16;
      memcpy(f + k, &bits, 4);
    }
    return -1;
  case LAT_FILE_F64:
    for (int64_t k = 0; k < n; k++) {
      double d = ((const double *)src)[k];
      f[k] = (float)d;
      if (isinf(f[k]) && !isinf(d)) return k;
    }
    return -1;
  case LAT_FILE_I64:
    for (int64_t k = 0; k < n; k++) {
      int64_t v = ((const int64_t *)src)[k];
      if (v < INT32_MIN || v > INT32_MAX) return k;
      i[k] = (int32_t)v;
    }
    return -1;
  case LAT_FILE_I16:
    for (int64_t k = 0; k < n; k++) i[k] = ((const int16_t *)src)[k];
    return -1;
  case LAT_FILE_I8:
    for (int64_t k = 0; k < n; k++) i[k] = ((const int8_t *)src)[k];
    return -1;
  case LAT_FILE_BOOL:
    for (int64_t k = 0; k < n; k++) {
      uint8_t b = ((const uint8_t *)src)[k];
      if (b > 1) return k;
      u[k] = b;
    }
    return -1;
  }
  return -1;
}

void lat__encode_values(int fd, void *dst, const void *src, int64_t n) {
  uint16_t *h = dst;
  const float *f = src;
  if (fd == LAT_FILE_F16)
    for (int64_t k = 0; k < n; k++) h[k] = f32_to_f16(f[k]);
  else if (fd == LAT_FILE_BF16)
    for (int64_t k = 0; k < n; k++) h[k] = f32_to_bf16(f[k]);
  else
    memcpy(dst, src, (size_t)n * lat__file_dtypes[fd].size);
}

void lat__bad_value(int fd, const void *src, int64_t k, int64_t element, char *buf, size_t n) {
  if (fd == LAT_FILE_I64)
    snprintf(buf, n, "element %lld is %lld, outside int32's range (I64 is kept as int32)",
             (long long)element, (long long)((const int64_t *)src)[k]);
  else if (fd == LAT_FILE_F64)
    snprintf(buf, n, "element %lld is %.17g, beyond float32's range (F64 is kept as float32)",
             (long long)element, ((const double *)src)[k]);
  else
    snprintf(buf, n, "element %lld is the byte %d, but a BOOL is 0 or 1", (long long)element,
             ((const uint8_t *)src)[k]);
}
