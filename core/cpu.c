/* cpu.c: which instruction set the kernels compiled for one may use, chosen at run time so that
 * one binary runs everywhere. LAT_CPU=avx2 or generic forces a lower level (to test the other
 * paths on an AVX-512 machine); lat's Lua start-up refuses any other value (tensor/init.lua). */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

/* the level from the CPU, lowered by LAT_CPU */
static const char *detect(void) {
  const char *e = getenv("LAT_CPU");
  __builtin_cpu_init();
  if (e && !strcmp(e, "generic")) return "generic";
  if (!(e && !strcmp(e, "avx2")) && __builtin_cpu_supports("avx512f")) return "avx512";
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? "avx2" : "generic";
}

/* the level the kernels run at: "avx512", "avx2" or "generic" (read once) */
const char *lat_cpu_level(void) {
  static const char *level;
  if (!level) level = detect();
  return level;
}

bool lat__cpu_avx512(void) {
  static int avx512 = -1; /* every call after the first is a load */
  if (avx512 < 0) avx512 = !strcmp(lat_cpu_level(), "avx512");
  return avx512;
}

/* the first instruction-set extension the build assumed (-march, LAT_ARCH in CMakeLists.txt)
 * that this CPU lacks, or NULL. Compiled for the baseline so that it can run to say so. */
__attribute__((target("arch=x86-64"))) const char *lat_cpu_missing(void) {
  __builtin_cpu_init();
#ifdef __AVX512F__
  if (!__builtin_cpu_supports("avx512f")) return "AVX-512F";
#endif
#ifdef __AVX2__
  if (!__builtin_cpu_supports("avx2")) return "AVX2";
#endif
#ifdef __FMA__
  if (!__builtin_cpu_supports("fma")) return "FMA";
#endif
#ifdef __AVX__
  if (!__builtin_cpu_supports("avx")) return "AVX";
#endif
  return NULL;
}
