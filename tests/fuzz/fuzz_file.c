/* fuzz_file.c: the scratch file the path-taking readers are fed through (fuzz_file.h). */
#include "fuzz_file.h"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char path[4096];

static void remove_file(void) { unlink(path); }

const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix) {
  if (!path[0]) {
    const char *dir = getenv("LAT_FUZZ_TMP");
    snprintf(path, sizeof path, "%s/lat-fuzz-%d%s", dir ? dir : "/dev/shm", (int)getpid(), suffix);
    atexit(remove_file);
  }
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
    perror(path);
    abort();
  }
  return path;
}
