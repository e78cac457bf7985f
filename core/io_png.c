/* io_png.c: PNG files to uint8 [C, H, W] tensors and back, through libpng; a corrupt file is an
 * error (libpng's longjmp lands here), never an abort. */
#include "io.h"
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { PNG_MAX_SIDE = 1 << 16 };   /* refuse images wider or taller than this */
enum { PNG_MAX_CHUNK = 8 << 20 };  /* and ancillary chunks that decode to more than 8 MiB */

typedef struct { const char *path; char msg[200]; } png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
  png_ctx *c = png_get_error_ptr(png);
  snprintf(c->msg, sizeof c->msg, "%s", msg);
  png_longjmp(png, 1);
}
static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

lat_tensor *lat_read_png(const char *path) {
  if (!path) return lat__fail("read_png: path is nil");
  FILE *fp = fopen(path, "rb");
  if (!fp) return lat__fail("read_png: cannot open '%s': %s", path, strerror(errno));
  unsigned char sig[8];
  if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8)) {
    fclose(fp);
    return lat__fail("read_png: '%s' is not a PNG file (bad signature)", path);
  }
  png_ctx ctx = { path, "" };
  char who[300];
  snprintf(who, sizeof who, "read_png: '%.250s'", path);
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    fclose(fp);
    return lat__fail("read_png: out of memory reading '%s'", path);
  }
  /* assigned after setjmp, read after longjmp: volatile */
  unsigned char *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;
  lat_tensor *volatile out = NULL;
  int jumped = setjmp(png_jmpbuf(png));
  if (jumped) {
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free(pixels);
    free(rows);
    lat_release(out);
    if (jumped == 2) return NULL; /* refused by a size check, whose message is set */
    return lat__fail("read_png: '%s' is corrupt: %s", path, ctx.msg[0] ? ctx.msg : "read error");
  }
  png_init_io(png, fp);
  png_set_sig_bytes(png, 8);
  png_set_user_limits(png, PNG_MAX_SIDE, PNG_MAX_SIDE);
  /* ancillary chunks (text, ICC profiles) are compressed too: bound them and their number */
  png_set_chunk_malloc_max(png, PNG_MAX_CHUNK);
  png_set_chunk_cache_max(png, 1000);
  png_read_info(png, info);
  /* the inflated stream (a filter byte and the packed pixels of each row) is what the file's size
   * bounds; expanding palettes and low bit depths multiplies it afterwards, by at most 32 */
  struct stat st;
  int64_t stored = fstat(fileno(fp), &st) == 0 ? (int64_t)st.st_size : 0;
  int64_t inflated = (int64_t)png_get_image_height(png, info) *
                     ((int64_t)png_get_rowbytes(png, info) + 1);
  if (lat__check_decoded(who, inflated, stored, 1)) png_longjmp(png, 2);
  /* normalise: palette to RGB, low-bit gray to 8 bits, tRNS to alpha, 16 bits to 8 */
  png_set_expand(png);
  png_set_scale_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int c = png_get_channels(png, info);
  if (png_get_bit_depth(png, info) != 8 || c < 1 || c > 4)
    png_error(png, "unsupported pixel layout after conversion to 8 bits");
  if (lat__check_decoded(who, w * h * c, stored, 0)) png_longjmp(png, 2);
  size_t stride = png_get_rowbytes(png, info);
  if (stride != (size_t)(w * c)) png_error(png, "unexpected row size");
  int64_t shape[3] = { c, h, w };
  out = lat__new(LAT_U8, 3, shape);
  if (!out) png_error(png, "out of memory for the tensor");
  /* one channel: HWC is CHW, decode straight into the tensor */
  pixels = c == 1 ? NULL : malloc((size_t)(h * stride));
  rows = malloc((size_t)h * sizeof(png_bytep));
  if ((c > 1 && !pixels) || !rows) png_error(png, "out of memory");
  unsigned char *dst = c == 1 ? out->u : pixels;
  for (int64_t y = 0; y < h; y++) rows[y] = dst + y * stride;
  png_read_image(png, rows);
  png_read_end(png, NULL);
  /* interleaved HWC to planar CHW */
  for (int k = 0; c > 1 && k < c; k++) {
    unsigned char *plane = out->u + k * h * w;
    for (int64_t i = 0; i < h * w; i++) plane[i] = pixels[i * c + k];
  }
  lat_tensor *result = out;
  png_destroy_read_struct(&png, &info, NULL);
  fclose(fp);
  free(pixels);
  free(rows);
  return result;
}

int lat_write_png(const char *path, lat_tensor *t) {
  if (!path) return lat__failc("write_png: path is nil");
  if (!t) return lat__failc("write_png: tensor is nil");
  if (t->dtype_ != LAT_U8 && t->dtype_ != LAT_F32)
    return lat__failc("write_png: expected a uint8 or float32 tensor, got %s",
                      lat__dtype_name(t->dtype_));
  int64_t c, h, w;
  if (t->ndim == 2) c = 1, h = t->shape_[0], w = t->shape_[1];
  else if (t->ndim == 3) c = t->shape_[0], h = t->shape_[1], w = t->shape_[2];
  else return lat__failc("write_png: expected [C, H, W] or [H, W], got shape %s", SHAPE(t));
  if (c < 1 || c > 4)
    return lat__failc("write_png: %lld channels; PNG holds 1 (gray), 2 (gray, alpha), 3 (RGB) "
                      "or 4 (RGBA)", (long long)c);
  if (h < 1 || w < 1 || h > PNG_MAX_SIDE || w > PNG_MAX_SIDE)
    return lat__failc("write_png: image size %lldx%lld out of range 1..%d", (long long)h,
                      (long long)w, PNG_MAX_SIDE);
  /* planar CHW (uint8, or float32 in [0, 1]) to interleaved HWC bytes */
  unsigned char *pixels = malloc((size_t)(c * h * w));
  if (!pixels) return lat__failc("write_png: out of memory");
  for (int64_t k = 0; k < c; k++)
    for (int64_t i = 0; i < h * w; i++) {
      int64_t src = k * h * w + i;
      unsigned char v;
      if (t->dtype_ == LAT_U8) v = t->u[src];
      else {
        float f = t->f[src];
        f = f > 0 ? (f < 1 ? f : 1) : 0; /* NaN goes to 0 */
        v = (unsigned char)lrintf(f * 255.0f);
      }
      pixels[i * c + k] = v;
    }
  FILE *fp = fopen(path, "wb");
  if (!fp) {
    free(pixels);
    return lat__failc("write_png: cannot create '%s': %s", path, strerror(errno));
  }
  png_ctx ctx = { path, "" };
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  png_bytep *volatile rows = NULL;
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(fp);
    remove(path);
    free(pixels);
    free(rows);
    return lat__failc("write_png: writing '%s' failed: %s", path,
                      ctx.msg[0] ? ctx.msg : "out of memory");
  }
  static const int types[5] = { 0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA };
  png_init_io(png, fp);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, types[c], PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  rows = malloc((size_t)h * sizeof(png_bytep));
  if (!rows) png_error(png, "out of memory");
  for (int64_t y = 0; y < h; y++) rows[y] = pixels + y * w * c;
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
  free(pixels);
  if (fclose(fp) != 0) {
    remove(path);
    return lat__failc("write_png: writing '%s' failed: %s", path, strerror(errno));
  }
  return 0;
}
