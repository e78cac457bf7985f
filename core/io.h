/* io.h: what the checkpoint files of liblat share: byte streams (io_stream.c), header checks
 * (io_safetensors.c) and the JSON pieces a safetensors header is made of (io_json.c). */
#ifndef LAT_IO_H
#define LAT_IO_H

#include "internal.h"
#include <stdint.h>

/* ---- how much reading a file may produce (io_limit.c) ---- */
/* A compressed file may decode to at most LAT_MAX_RATIO times its size (deflate cannot exceed
 * 1032; zstd can, but only on data such as long runs of zeros), except that up to LAT_RATIO_FREE
 * bytes are always allowed, and never to more than lat_read_limit(). The ratio guards the
 * default limit only: once the caller has set a limit, that alone applies. */
enum { LAT_MAX_RATIO = 1100 };
#define LAT_RATIO_FREE ((int64_t)64 << 20)
/* the most bytes a file of `stored` bytes may decode to */
int64_t lat__decoded_cap(int64_t stored, int compressed);
/* 0 if decoding to `decoded` bytes is within both bounds, else -1 with a message that starts with
 * who (the reader and the file, e.g. "checkpoint x.zst") and names the limit */
int lat__check_decoded(const char *who, int64_t decoded, int64_t stored, int compressed);

/* ---- reading a file in order, plain or zstd-compressed (io_stream.c) ---- */
typedef struct lat_source lat_source;
/* Opens path; a file that starts with the zstd magic number is decompressed as it is read. */
lat_source *lat__source_open(const char *path);
/* Reads up to n bytes; returns how many (fewer only at the end of the data), or -1 on error. */
int64_t lat__source_read(lat_source *s, void *buf, int64_t n);
/* The size of the (uncompressed) contents if known before reading them, else -1. */
int64_t lat__source_size(const lat_source *s);
int lat__source_compressed(const lat_source *s);
/* 0 if the contents may be `decoded` bytes long (lat__check_decoded for this file), else -1 */
int lat__source_check(const lat_source *s, int64_t decoded);
void lat__source_close(lat_source *s);

/* ---- writing a file atomically: path.tmp.<pid>, fsync, rename over path (io_stream.c) ---- */
/* Opening a sink also removes the temporaries of path that killed writers left behind. */
typedef struct lat_sink lat_sink;
/* zstd_level 0 writes the bytes as they are; total is the number of bytes that will be written
 * (recorded in the zstd frame header). */
lat_sink *lat__sink_open(const char *path, int zstd_level, int64_t total);
int lat__sink_write(lat_sink *s, const void *buf, size_t n);
/* Flushes, syncs and renames the temporary file over path; frees s either way. */
int lat__sink_commit(lat_sink *s);
/* Removes the temporary file; frees s. */
void lat__sink_abort(lat_sink *s);

/* ---- the dtypes of safetensors files that lat reads, and their conversions (io_dtype.c) ---- */
/* The first three are lat's own dtypes, in lat_dtype's order, stored as they are kept. */
enum {
  LAT_FILE_F32, LAT_FILE_I32, LAT_FILE_U8, LAT_FILE_F16, LAT_FILE_BF16, LAT_FILE_F64,
  LAT_FILE_I64, LAT_FILE_I16, LAT_FILE_I8, LAT_FILE_BOOL, LAT_FILE_DTYPES
};
typedef struct {
  const char *name; /* as a safetensors header spells it */
  int size;         /* bytes per value in the file */
  int dtype;        /* the lat_dtype it is kept as */
} lat_file_dtype;
extern const lat_file_dtype lat__file_dtypes[LAT_FILE_DTYPES];
/* what the reader's messages list as readable */
#define LAT_FILE_DTYPES_READ                                                                    \
  "F32, F16, BF16 and F64 as float32; I32, I64, I16 and I8 as int32; U8 and BOOL as uint8"
/* the LAT_FILE_ number of a header's dtype name, -1 if lat does not read it */
int lat__file_dtype(const char *name);
/* Converts n values stored as fd (src, little-endian) to fd's lat dtype (dst). Returns -1, or
 * the index of the first value that dtype cannot hold (an I64 beyond int32, a finite F64 beyond
 * float32, a BOOL byte other than 0 and 1), where it stops. */
int64_t lat__decode_values(int fd, void *dst, const void *src, int64_t n);
/* The message for that value: src[k] is the tensor's element number `element`. */
void lat__bad_value(int fd, const void *src, int64_t k, int64_t element, char *buf, size_t n);
/* n float32 values (src) to fd: F32 as they are, F16 or BF16 rounded to nearest, ties to even
 * (overflow gives infinity, a NaN stays a NaN of the same sign) */
void lat__encode_values(int fd, void *dst, const void *src, int64_t n);

/* ---- safetensors headers (io_safetensors.c), for the writer's checks (io_save.c) ---- */
/* 0 if s (n bytes) is a JSON object of strings, else -1 with a message naming path */
int lat__parse_metadata(const char *path, const char *s, size_t n);
/* 0 if s (n bytes) is a header a reader accepts (as far as the header alone can tell) */
int lat__check_header(const char *path, const char *s, size_t n);

/* ---- the index of a sharded checkpoint (io_shard_index.c) ---- */
/* Parses and checks index text s (n bytes) into a new index, NULL with a message naming path */
lat_shard_index *lat__parse_shard_index(const char *path, const char *s, size_t n);

/* ---- strict JSON pieces (io_json.c) ---- */
/* A cursor over JSON text; on a syntax error, err names what was wrong and at (a byte offset)
 * where, and every later call fails too. */
typedef struct {
  const char *s;
  size_t n, pos;
  const char *err;
  size_t at;
} lat_json;

void lat__json_ws(lat_json *j);
/* skips whitespace, then consumes c if it is next; returns whether it was */
int lat__json_eat(lat_json *j, char c);
/* skips whitespace, then requires c; what describes where (for the message) */
int lat__json_expect(lat_json *j, char c, const char *what);
/* a string, unescaped into a new NUL-terminated buffer (malloc); NULL on error. Strings that
 * would contain a NUL byte are rejected. */
char *lat__json_string(lat_json *j);
/* a non-negative integer below 2^62 written in plain decimal (no fraction, no exponent); -1
 * on error */
int64_t lat__json_uint(lat_json *j);

/* skips any JSON value, checking its syntax (objects' keys are not checked for repeats);
 * arrays and objects may nest depth deep. 0 on error. */
int lat__json_skip(lat_json *j, int depth);

/* A growing byte buffer for writing JSON. ok drops to 0 when memory runs out. */
typedef struct {
  char *p;
  size_t n, cap;
  int ok;
} lat_buf;
void lat__buf_put(lat_buf *b, const char *s, size_t n);
void lat__buf_puts(lat_buf *b, const char *s);
void lat__buf_printf(lat_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal, quotes included */
void lat__buf_json_string(lat_buf *b, const char *s);

#endif
