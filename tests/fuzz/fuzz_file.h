/* fuzz_file.h: the readers take a path, so each fuzz input is written to a file on tmpfs first. */
#ifndef LAT_FUZZ_FILE_H
#define LAT_FUZZ_FILE_H
#include <stddef.h>
#include <stdint.h>

/* Writes data to this process's scratch file (/dev/shm/lat-fuzz-<pid><suffix>, or under
 * $LAT_FUZZ_TMP) and returns its path; aborts if it cannot, since that is no finding. */
const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix);

#endif
