/* alloc.c: a caching allocator, so that the thousandth step of a loop reuses the buffers of the
 * first instead of faulting in fresh pages (11-15 us per 4 KiB page on our machines).
 * Sizes are rounded up to one of four classes per power of two; freed blocks wait on a free
 * list of their class. Large blocks come from mmap and ask for transparent huge pages. */
#include "internal.h"
#include <sanitizer/asan_interface.h> /* the ASAN_ macros do nothing unless built with ASan */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Under AddressSanitizer (LAT_SANITIZE, the fuzz build) a block handed out is addressable for
 * the bytes asked for only, and a cached block is poisoned past its free-list link, so that ASan
 * reports overruns of tensor buffers and use after release as it would with malloc. */

enum { N_CLASSES = 256, MMAP_MIN = 1 << 20 };

typedef struct block { struct block *next; } block;

static block *free_list[N_CLASSES];
static int64_t live, cached, peak, fresh;

/* class index and rounded size: 256 bytes and up, four steps per doubling */
static int size_class(size_t bytes, size_t *rounded) {
  if (bytes <= 256) { *rounded = 256; return 0; }
  int e = 63 - __builtin_clzll((unsigned long long)(bytes - 1)); /* 2^e < bytes <= 2^(e+1) */
  size_t base = (size_t)1 << e, step = base / 4;
  size_t k = (bytes - base + step - 1) / step; /* 1..4 */
  *rounded = base + k * step;
  return 1 + (e - 8) * 4 + (int)(k - 1);
}

static size_t class_size(int c) {
  if (c == 0) return 256;
  int e = (c - 1) / 4 + 8, k = (c - 1) % 4 + 1;
  return ((size_t)1 << e) + (size_t)k * (((size_t)1 << e) / 4);
}

static void *fresh_block(size_t bytes) {
  fresh++;
  if (bytes >= MMAP_MIN) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
  }
  void *p = NULL;
  return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}

static void release_block(void *p, size_t bytes) {
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
  if (bytes >= MMAP_MIN) munmap(p, bytes);
  else free(p);
}

void *lat__alloc(size_t bytes) {
  if (bytes > (size_t)LAT_MAX_BYTES) /* also keeps size_class's rounding from overflowing */
    return lat__fail("cannot allocate %zu bytes: more than 2^%d, the most lat allocates", bytes,
                     LAT_MAX_BYTES_LOG2);
  size_t rounded;
  int c = size_class(bytes ? bytes : 1, &rounded);
  void *p = NULL;
  #pragma omp critical(lat_alloc)
  {
    if (c < N_CLASSES && free_list[c]) {
      block *b = free_list[c];
      free_list[c] = b->next;
      cached -= (int64_t)rounded;
      p = b;
    }
  }
  if (!p) p = fresh_block(rounded);
  if (!p) return lat__fail("out of memory allocating %zu bytes", bytes);
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
  ASAN_POISON_MEMORY_REGION((char *)p + bytes, rounded - bytes);
  #pragma omp critical(lat_alloc)
  {
    live += (int64_t)rounded;
    if (live > peak) peak = live;
  }
  return p;
}

void lat__free(void *p, size_t bytes) {
  if (!p) return;
  size_t rounded;
  int c = size_class(bytes ? bytes : 1, &rounded);
  /* before the block is on the list, where another thread may take it */
  ASAN_UNPOISON_MEMORY_REGION(p, sizeof(block));
  ASAN_POISON_MEMORY_REGION((char *)p + sizeof(block), rounded - sizeof(block));
  #pragma omp critical(lat_alloc)
  {
    live -= (int64_t)rounded;
    if (c < N_CLASSES) {
      block *b = p;
      b->next = free_list[c];
      free_list[c] = b;
      cached += (int64_t)rounded;
      p = NULL;
    }
  }
  if (p) release_block(p, rounded);
}

void lat_empty_cache(void) {
  for (int c = 0; c < N_CLASSES; c++) {
    block *b;
    #pragma omp critical(lat_alloc)
    {
      b = free_list[c];
      free_list[c] = NULL;
    }
    while (b) {
      block *next = b->next;
      size_t rounded = class_size(c);
      #pragma omp critical(lat_alloc)
      cached -= (int64_t)rounded;
      release_block(b, rounded);
      b = next;
    }
  }
}

int64_t lat_live_bytes(void) { return live; }
int64_t lat_cached_bytes(void) { return cached; }
int64_t lat_peak_bytes(void) { return peak; }
int64_t lat_fresh_allocations(void) { return fresh; }
