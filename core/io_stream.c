/* io_stream.c: checkpoint byte streams: reading a plain or zstd-compressed file front to back,
 * and writing one atomically (path.tmp.<pid>, fsync, rename over path, fsync the directory). */
#define _GNU_SOURCE
#include "io.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

/* ---------------------------------------------------------------- reading */

struct lat_source {
  FILE *f;
  const char *path;
  int64_t size;            /* plain files: the file size; zstd: -1 */
  ZSTD_DStream *z;         /* NULL for plain files */
  ZSTD_inBuffer in;
  void *inbuf;
  size_t incap;
  size_t last;             /* last return of ZSTD_decompressStream: 0 at a frame's end */
  int64_t stored;          /* the file's size */
  int64_t decoded, cap;    /* zstd: bytes decoded so far, and the most allowed */
};

lat_source *lat__source_open(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return lat__fail("checkpoint %s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return lat__fail("checkpoint %s: not a regular file", path);
  }
  lat_source *s = calloc(1, sizeof *s);
  if (!s) {
    fclose(f);
    return lat__fail("checkpoint %s: out of memory", path);
  }
  s->f = f, s->path = path, s->size = s->stored = (int64_t)st.st_size;
  unsigned char head[18] = {0}; /* a zstd frame header takes at most 18 bytes */
  size_t got = fread(head, 1, sizeof head, f);
  rewind(f);
  if (got >= 4 && head[0] == 0x28 && head[1] == 0xB5 && head[2] == 0x2F && head[3] == 0xFD) {
    s->size = -1;
    s->cap = lat__decoded_cap(s->stored, 1);
    /* the first frame may state its size: refuse a bomb before decoding any of it (a file of
     * several frames is held to the cap as it decodes) */
    unsigned long long first = ZSTD_getFrameContentSize(head, got);
    char who[300];
    snprintf(who, sizeof who, "checkpoint %.250s", path);
    if (first != ZSTD_CONTENTSIZE_UNKNOWN && first != ZSTD_CONTENTSIZE_ERROR &&
        lat__check_decoded(who, first > INT64_MAX ? INT64_MAX : (int64_t)first, s->stored, 1)) {
      lat__source_close(s);
      return NULL;
    }
    s->incap = ZSTD_DStreamInSize();
    s->inbuf = malloc(s->incap);
    s->z = ZSTD_createDStream();
    if (!s->inbuf || !s->z) {
      lat__source_close(s);
      return lat__fail("checkpoint %s: out of memory for zstd", path);
    }
    ZSTD_initDStream(s->z);
    s->in.src = s->inbuf;
  }
  return s;
}

int64_t lat__source_size(const lat_source *s) { return s->size; }

int lat__source_check(const lat_source *s, int64_t decoded) {
  char who[300];
  snprintf(who, sizeof who, "checkpoint %.250s", s->path);
  return lat__check_decoded(who, decoded, s->stored, s->z != NULL);
}
int lat__source_compressed(const lat_source *s) { return s->z != NULL; }

static int64_t read_zstd(lat_source *s, void *buf, int64_t n) {
  ZSTD_outBuffer out = {buf, (size_t)n, 0};
  while (out.pos < out.size) {
    int eof = 0;
    if (s->in.pos == s->in.size) {
      s->in.size = fread(s->inbuf, 1, s->incap, s->f);
      s->in.pos = 0;
      if (s->in.size == 0) {
        if (ferror(s->f))
          return lat__failc("checkpoint %s: read error: %s", s->path, strerror(errno));
        if (s->last == 0) break; /* after the end of the last frame: the data ends here */
        eof = 1;                 /* the decoder may still hold output to flush */
      }
    }
    size_t before = out.pos;
    size_t r = ZSTD_decompressStream(s->z, &out, &s->in);
    if (ZSTD_isError(r))
      return lat__failc("checkpoint %s: corrupt zstd stream: %s", s->path, ZSTD_getErrorName(r));
    s->last = r;
    s->decoded += (int64_t)(out.pos - before);
    if (s->decoded > s->cap) {
      char who[300];
      snprintf(who, sizeof who, "checkpoint %.250s", s->path);
      return lat__check_decoded(who, s->decoded, s->stored, 1);
    }
    if (eof && out.pos == before && r != 0)
      return lat__failc("checkpoint %s: truncated zstd stream: the file ends inside a "
                        "compressed frame", s->path);
  }
  return (int64_t)out.pos;
}

int64_t lat__source_read(lat_source *s, void *buf, int64_t n) {
  if (n <= 0) return 0;
  if (s->z) return read_zstd(s, buf, n);
  size_t got = fread(buf, 1, (size_t)n, s->f);
  if (got < (size_t)n && ferror(s->f))
    return lat__failc("checkpoint %s: read error: %s", s->path, strerror(errno));
  return (int64_t)got;
}

void lat__source_close(lat_source *s) {
  if (!s) return;
  if (s->f) fclose(s->f);
  ZSTD_freeDStream(s->z);
  free(s->inbuf);
  free(s);
}

/* ---------------------------------------------------------------- writing */

struct lat_sink {
  int fd;
  char *path, *tmp;
  ZSTD_CCtx *z;
  void *outbuf;
  size_t outcap;
};

static int write_all(lat_sink *s, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(s->fd, c, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return lat__failc("checkpoint %s: cannot write %s: %s", s->path, s->tmp, strerror(errno));
    c += w, n -= (size_t)w;
  }
  return 0;
}

static void sink_free(lat_sink *s) {
  if (s->fd >= 0) close(s->fd);
  ZSTD_freeCCtx(s->z);
  free(s->outbuf);
  free(s->path);
  free(s->tmp);
  free(s);
}

void lat__sink_abort(lat_sink *s) {
  if (!s) return;
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
    unlink(s->tmp);
  }
  sink_free(s);
}

/* A killed writer leaves path.tmp.<pid> behind. Before writing path again, remove those of dead
 * processes (kill gives ESRCH; EPERM means alive, under another user) that nothing has touched
 * for STALE_SECONDS, so that a writer whose pid was reused, or that is merely slow, keeps its
 * file. Best effort: a temporary that cannot be removed stays. */
enum { STALE_SECONDS = 10 };

static void remove_stale_temporaries(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  DIR *d = dir ? opendir(dir) : NULL;
  size_t blen = strlen(base);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    const char *name = e->d_name;
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) continue;
    const char *digits = name + blen + 5;
    char *end;
    errno = 0;
    long pid = strtol(digits, &end, 10);
    if (*digits < '1' || *digits > '9' || *end || errno || pid <= 0 || pid > INT32_MAX ||
        pid == (long)getpid())
      continue;
    struct stat st;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        time(NULL) - st.st_mtime < STALE_SECONDS)
      continue;
    unlinkat(dirfd(d), name, 0);
  }
  if (d) closedir(d);
  free(dir);
}

lat_sink *lat__sink_open(const char *path, int zstd_level, int64_t total) {
  lat_sink *s = calloc(1, sizeof *s);
  size_t len = strlen(path);
  if (s) {
    s->fd = -1;
    s->path = strdup(path);
    s->tmp = malloc(len + 32);
  }
  if (!s || !s->path || !s->tmp) {
    if (s) sink_free(s);
    return lat__fail("checkpoint %s: out of memory", path);
  }
  snprintf(s->tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
  remove_stale_temporaries(path);
  if (zstd_level != 0) {
    s->z = ZSTD_createCCtx();
    s->outcap = ZSTD_CStreamOutSize();
    s->outbuf = malloc(s->outcap);
    if (!s->z || !s->outbuf) {
      sink_free(s);
      return lat__fail("checkpoint %s: out of memory for zstd", path);
    }
    if (zstd_level > ZSTD_maxCLevel()) zstd_level = ZSTD_maxCLevel();
    if (zstd_level < ZSTD_minCLevel()) zstd_level = ZSTD_minCLevel();
    ZSTD_CCtx_setParameter(s->z, ZSTD_c_compressionLevel, zstd_level);
    ZSTD_CCtx_setParameter(s->z, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setPledgedSrcSize(s->z, (unsigned long long)total);
  }
  s->fd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (s->fd < 0) {
    lat__fail("checkpoint %s: cannot create %s: %s", path, s->tmp, strerror(errno));
    sink_free(s);
    return NULL;
  }
  return s;
}

/* feeds n bytes (or, with end set, finishes the frame) through the compressor */
static int compress(lat_sink *s, const void *buf, size_t n, ZSTD_EndDirective mode) {
  ZSTD_inBuffer in = {buf, n, 0};
  for (;;) {
    ZSTD_outBuffer out = {s->outbuf, s->outcap, 0};
    size_t r = ZSTD_compressStream2(s->z, &out, &in, mode);
    if (ZSTD_isError(r))
      return lat__failc("checkpoint %s: zstd: %s", s->path, ZSTD_getErrorName(r));
    if (out.pos && write_all(s, s->outbuf, out.pos) != 0) return -1;
    if (mode == ZSTD_e_end ? r == 0 : in.pos == in.size) return 0;
  }
}

int lat__sink_write(lat_sink *s, const void *buf, size_t n) {
  if (n == 0) return 0;
  return s->z ? compress(s, buf, n, ZSTD_e_continue) : write_all(s, buf, n);
}

/* Makes the rename durable. Best effort: some file systems cannot sync a directory, and the
 * new file is in place whether or not this succeeds. */
static void sync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(dir);
}

int lat__sink_commit(lat_sink *s) {
  if (s->z && compress(s, NULL, 0, ZSTD_e_end) != 0) goto fail;
  if (fsync(s->fd) != 0) {
    lat__fail("checkpoint %s: cannot sync %s: %s", s->path, s->tmp, strerror(errno));
    goto fail;
  }
  int fd = s->fd;
  s->fd = -1;
  if (close(fd) != 0) {
    lat__fail("checkpoint %s: cannot close %s: %s", s->path, s->tmp, strerror(errno));
    unlink(s->tmp);
    sink_free(s);
    return -1;
  }
  if (rename(s->tmp, s->path) != 0) {
    lat__fail("checkpoint %s: cannot rename %s over it: %s", s->path, s->tmp, strerror(errno));
    unlink(s->tmp);
    sink_free(s);
    return -1;
  }
  sync_dir(s->path);
  sink_free(s);
  return 0;
fail:
  lat__sink_abort(s);
  return -1;
}
