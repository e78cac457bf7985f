/* error.c: the thread-local error message that every failing call leaves behind. */
#include "internal.h"
#include <stdio.h>

static _Thread_local char message[1024];

const char *lat_error(void) { return message; }
void lat_clear_error(void) { message[0] = 0; }
const char *lat_version(void) { return LAT_VERSION; }

static void set(const char *fmt, va_list ap) { vsnprintf(message, sizeof message, fmt, ap); }

void *lat__fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set(fmt, ap);
  va_end(ap);
  return NULL;
}

int lat_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set(fmt, ap);
  va_end(ap);
  return -1;
}

const char *lat__shape_str(const lat_tensor *t, char *buf, size_t n) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int d = 0; d < t->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)t->shape_[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

const char *lat__dtype_name(int dtype) {
  switch (dtype) {
  case LAT_F32: return "float32";
  case LAT_I32: return "int32";
  case LAT_U8: return "uint8";
  default: return "unknown dtype";
  }
}
