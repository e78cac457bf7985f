/* io_json.c: a strict reader of the JSON pieces in a safetensors header (whitespace, strings,
 * non-negative integers) and a small buffer for writing JSON; the input is treated as hostile. */
#include "io.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(lat_json *j, const char *what) {
  if (!j->err) {
    j->err = what;
    j->at = j->pos;
  }
  return 0;
}

void lat__json_ws(lat_json *j) {
  while (j->pos < j->n) {
    char c = j->s[j->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    j->pos++;
  }
}

int lat__json_eat(lat_json *j, char c) {
  if (j->err) return 0;
  lat__json_ws(j);
  if (j->pos < j->n && j->s[j->pos] == c) {
    j->pos++;
    return 1;
  }
  return 0;
}

int lat__json_expect(lat_json *j, char c, const char *what) {
  if (lat__json_eat(j, c)) return 1;
  return fail(j, j->pos >= j->n ? "the JSON text ends too early" : what);
}

static int hex4(const char *s) {
  int v = 0;
  for (int k = 0; k < 4; k++) {
    char c = s[k];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

static size_t put_utf8(char *out, unsigned cp) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (char)(0x80 | (cp >> 6 & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (c >= 0xF5 || len == 0 || len > n) return 0;
  for (size_t k = 1; k < len; k++)
    if ((s[k] & 0xC0) != 0x80) return 0;
  unsigned cp = len == 2 ? (c & 0x1F) << 6 | (s[1] & 0x3F)
              : len == 3 ? (c & 0x0F) << 12 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F)
              : (c & 0x07) << 18 | (s[1] & 0x3F) << 12 | (s[2] & 0x3F) << 6 | (s[3] & 0x3F);
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

char *lat__json_string(lat_json *j) {
  if (!lat__json_expect(j, '"', "expected a string")) return NULL;
  size_t start = j->pos, end = start;
  while (end < j->n && j->s[end] != '"') end += j->s[end] == '\\' ? 2 : 1;
  if (end >= j->n) return fail(j, "a string is not closed"), NULL;
  char *out = malloc(end - start + 1); /* unescaping never lengthens */
  if (!out) return fail(j, "out of memory"), NULL;
  size_t k = 0;
  while (j->pos < end) {
    unsigned char c = (unsigned char)j->s[j->pos];
    if (c < 0x20) { fail(j, "a control character inside a string"); break; }
    if (c >= 0x80) {
      size_t len = utf8_len((const unsigned char *)j->s + j->pos, end - j->pos);
      if (!len) { fail(j, "invalid UTF-8 inside a string"); break; }
      memcpy(out + k, j->s + j->pos, len);
      k += len, j->pos += len;
      continue;
    }
    if (c != '\\') { out[k++] = (char)c; j->pos++; continue; }
    char e = j->s[j->pos + 1];
    const char *simple = strchr("\"\\/bfnrt", e);
    if (e && simple) {
      out[k++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
      j->pos += 2;
      continue;
    }
    if (e != 'u' || j->pos + 6 > end) { fail(j, "a bad escape inside a string"); break; }
    int cp = hex4(j->s + j->pos + 2), lo = -1;
    if (cp >= 0xD800 && cp <= 0xDBFF && j->pos + 12 <= end && j->s[j->pos + 6] == '\\' &&
        j->s[j->pos + 7] == 'u')
      lo = hex4(j->s + j->pos + 8);
    if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF) ||
        (cp >= 0xD800 && cp <= 0xDBFF && !(lo >= 0xDC00 && lo <= 0xDFFF))) {
      fail(j, "a bad \\u escape inside a string");
      break;
    }
    if (cp == 0) { fail(j, "a NUL character (\\u0000) inside a string"); break; }
    if (lo >= 0) {
      k += put_utf8(out + k, 0x10000 + (((unsigned)cp - 0xD800) << 10) + ((unsigned)lo - 0xDC00));
      j->pos += 12;
    } else {
      k += put_utf8(out + k, (unsigned)cp);
      j->pos += 6;
    }
  }
  if (j->err) {
    free(out);
    return NULL;
  }
  out[k] = 0;
  j->pos = end + 1;
  return out;
}

int64_t lat__json_uint(lat_json *j) {
  if (j->err) return -1;
  lat__json_ws(j);
  size_t p = j->pos;
  if (p < j->n && j->s[p] == '-')
    return fail(j, "a negative number where a size or offset belongs"), -1;
  if (p >= j->n || j->s[p] < '0' || j->s[p] > '9')
    return fail(j, "expected a non-negative integer"), -1;
  if (j->s[p] == '0' && p + 1 < j->n && j->s[p + 1] >= '0' && j->s[p + 1] <= '9')
    return fail(j, "a number with a leading zero"), -1;
  /* below 2^62, tested before each step so that v * 10 + digit cannot wrap modulo 2^64 */
  const uint64_t limit = (uint64_t)1 << 62;
  uint64_t v = 0;
  while (p < j->n && j->s[p] >= '0' && j->s[p] <= '9') {
    uint64_t digit = (uint64_t)(j->s[p] - '0');
    if (v > (limit - 1 - digit) / 10)
      return fail(j, "an integer too large for a size or offset (2^62 or more)"), -1;
    v = v * 10 + digit;
    p++;
  }
  if (p < j->n && j->s[p] == '.')
    return fail(j, "a fractional number where an integer belongs"), -1;
  if (p < j->n && (j->s[p] == 'e' || j->s[p] == 'E'))
    return fail(j, "a number with an exponent where an integer belongs"), -1;
  j->pos = p;
  return (int64_t)v;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int skip_number(lat_json *j) {
  size_t p = j->pos;
  const char *s = j->s;
#define DIGITS(p) ((p) < j->n && s[p] >= '0' && s[p] <= '9')
  if (p < j->n && s[p] == '-') p++;
  if (!DIGITS(p)) return fail(j, "expected a JSON value");
  if (s[p] == '0') p++;
  else while (DIGITS(p)) p++;
  if (p < j->n && s[p] == '.') {
    if (!DIGITS(p + 1)) return j->pos = p + 1, fail(j, "a number without digits after '.'");
    for (p++; DIGITS(p); p++) {}
  }
  if (p < j->n && (s[p] == 'e' || s[p] == 'E')) {
    p++;
    if (p < j->n && (s[p] == '+' || s[p] == '-')) p++;
    if (!DIGITS(p)) return j->pos = p, fail(j, "a number without digits in its exponent");
    while (DIGITS(p)) p++;
  }
#undef DIGITS
  j->pos = p;
  return 1;
}

int lat__json_skip(lat_json *j, int depth) {
  if (j->err) return 0;
  lat__json_ws(j);
  if (j->pos >= j->n) return fail(j, "the JSON text ends too early");
  char c = j->s[j->pos];
  if (c == '"') {
    free(lat__json_string(j));
    return !j->err;
  }
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    if (depth <= 0) return fail(j, "arrays and objects nested too deeply");
    j->pos++;
    if (lat__json_eat(j, close)) return 1;
    do {
      if (c == '{') {
        free(lat__json_string(j));
        if (!lat__json_expect(j, ':', "expected ':' after a key")) return 0;
      }
      if (!lat__json_skip(j, depth - 1)) return 0;
    } while (lat__json_eat(j, ','));
    return lat__json_expect(j, close, c == '{' ? "expected ',' or '}' in an object"
                                               : "expected ',' or ']' in an array");
  }
  static const char *const WORDS[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t len = strlen(WORDS[k]);
    if (j->n - j->pos >= len && memcmp(j->s + j->pos, WORDS[k], len) == 0) {
      j->pos += len;
      return 1;
    }
  }
  return skip_number(j);
}

/* ---- writing ---- */

void lat__buf_put(lat_buf *b, const char *s, size_t n) {
  if (!b->ok) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->ok = 0; return; }
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

void lat__buf_puts(lat_buf *b, const char *s) { lat__buf_put(b, s, strlen(s)); }

void lat__buf_printf(lat_buf *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) { b->ok = 0; return; }
  lat__buf_put(b, tmp, (size_t)n);
}

void lat__buf_json_string(lat_buf *b, const char *s) {
  lat__buf_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      lat__buf_put(b, e, 2);
    } else if (c < 0x20) {
      lat__buf_printf(b, "\\u%04x", c);
    } else {
      lat__buf_put(b, (const char *)&c, 1);
    }
  }
  lat__buf_put(b, "\"", 1);
}
