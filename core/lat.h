/* lat.h: the public C interface of liblat, a tensor library with reverse-mode autograd.
 *
 * A worked example (error handling shortened):
 *
 *     int64_t shape[2] = {4, 3};
 *     lat_rng rng; lat_rng_seed(&rng, 1);
 *     lat_tensor *x = lat_empty(LAT_F32, 2, shape);
 *     lat_normal_(x, &rng, 0.0, 1.0);
 *     lat_set_requires_grad(x, 1);
 *     lat_tensor *y = lat_unary(LAT_OP_TANH, x);          // y = tanh(x), recorded on the tape
 *     lat_tensor *loss = lat_sum(y, 0, NULL, 0);         // sum over every dimension
 *     if (!loss || lat_backward(loss, NULL, 0) != 0) fprintf(stderr, "%s\n", lat_error());
 *     // x->grad_ now holds 1 - tanh(x)^2
 *     lat_release(loss); lat_release(y); lat_release(x);
 *
 * Conventions:
 * - Every function that makes a tensor returns a new reference (release it with lat_release) or
 *   NULL with a message in lat_error(). Functions returning int return 0 on success, -1 on error.
 * - Tensors are contiguous and row-major. Dimensions are 0-based here; negative dims count from
 *   the end. The Lua layer converts its 1-based dimension numbers before calling in.
 * - An op records a node on the autograd tape when gradients are enabled and one of its inputs
 *   requires gradients. In-place functions (name ending in '_') never record: with gradients
 *   enabled they refuse a target or source that requires gradients (run optimiser steps and
 *   other deliberate changes with gradients disabled), and they refuse a target that narrow
 *   copied. Each counts its write in the target's version; backward refuses a node whose input
 *   or saved output was written after the op ran, as its gradient would be wrong.
 * - Nothing here aborts or exits on bad input.
 * - Fields with a trailing underscore are read by the Lua layer under plain names (t.shape is a
 *   Lua table there, t.dtype a string, t.requires_grad a boolean).
 *
 * The block between LAT_FFI_BEGIN and LAT_FFI_END is also the Lua binding's: the build copies it,
 * without LAT_API, into liblat (lat_ffi_declarations), and lua/lat/core/cdef.lua gives that to LuaJIT's
 * ffi.cdef. So it holds plain C declarations: no preprocessor lines, no macro but LAT_API.
 */
#ifndef LAT_H
#define LAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LAT_VERSION "0.1.0"

/* Marks what liblat exports. The library is built with hidden visibility, so its internal lat__
 * functions are not visible to programs that link it. */
#if defined(__GNUC__)
#define LAT_API __attribute__((visibility("default")))
#else
#define LAT_API
#endif

/* LAT_FFI_BEGIN */
enum { LAT_MAX_DIMS = 8 };
typedef enum { LAT_F32 = 0, LAT_I32 = 1, LAT_U8 = 2 } lat_dtype;

typedef struct lat_storage lat_storage;
typedef struct lat_node lat_node;

typedef struct lat_tensor {
  union { void *data; float *f; int32_t *i; uint8_t *u; };
  int64_t shape_[8];                /* LAT_MAX_DIMS; first ndim entries used */
  int64_t numel_;
  int32_t ndim;
  int32_t dtype_;                   /* lat_dtype */
  int32_t refcount;
  int32_t req_grad_;                /* 1 if gradients are wanted for this tensor */
  struct lat_tensor *grad_;         /* accumulated gradient of a leaf; NULL until backward */
  lat_node *node;                   /* the op that produced this tensor; NULL for leaves */
  lat_storage *storage;
  struct lat_tensor *bgrad_;        /* scratch: gradient flowing during one backward pass */
  int32_t mark_;                    /* scratch: flags used during one backward pass */
  int32_t narrow_copy_;             /* 1 if narrow had to copy, so writes would not reach its input */
} lat_tensor;

typedef struct lat_rng { uint64_t seed; uint64_t offset; } lat_rng;

typedef enum {
  LAT_OP_NEG, LAT_OP_EXP, LAT_OP_LOG, LAT_OP_SQRT, LAT_OP_ABS, LAT_OP_RELU, LAT_OP_GELU,
  LAT_OP_TANH, LAT_OP_SIGMOID, LAT_OP_GELU_TANH, LAT_UNARY_COUNT
} lat_unary_op;

typedef enum { LAT_OP_ADD, LAT_OP_SUB, LAT_OP_MUL, LAT_OP_DIV, LAT_BINARY_COUNT } lat_binary_op;

typedef enum {
  LAT_CMP_EQ, LAT_CMP_NE, LAT_CMP_LT, LAT_CMP_LE, LAT_CMP_GT, LAT_CMP_GE, LAT_COMPARE_COUNT
} lat_compare_op;

typedef enum { LAT_REDUCE_NONE = 0, LAT_REDUCE_MEAN = 1, LAT_REDUCE_SUM = 2 } lat_reduction;

/* errors and version */
LAT_API const char *lat_error(void);
LAT_API void lat_clear_error(void);
LAT_API const char *lat_version(void);

/* for bindings (ffi.c): this block as liblat was built from it, without LAT_API; and the layout the
 * compiler gave the structs above, as sizeof for "lat_tensor" and offsetof for "lat_tensor.numel_"
 * (-1 for a name it does not know) */
LAT_API const char *lat_ffi_declarations(void);
LAT_API int lat_ffi_layout(const char *name);

/* memory: a caching allocator; live = handed out, cached = kept for reuse */
LAT_API int64_t lat_live_bytes(void);
LAT_API int64_t lat_cached_bytes(void);
LAT_API int64_t lat_peak_bytes(void);
LAT_API int64_t lat_fresh_allocations(void);
LAT_API void lat_empty_cache(void);

/* threads */
LAT_API void lat_set_num_threads(int n);
LAT_API int lat_get_num_threads(void);

/* the instruction set lat's kernels use: "avx512", "avx2" or "generic" (cpu.c) */
LAT_API const char *lat_cpu_level(void);
/* NULL, or the instruction-set extension this build of lat assumes and the CPU lacks */
LAT_API const char *lat_cpu_missing(void);

/* random numbers: counter-based, so a (seed, offset) pair fixes every number */
LAT_API void lat_rng_seed(lat_rng *rng, uint64_t seed);
LAT_API int lat_uniform_(lat_tensor *t, lat_rng *rng, double lo, double hi);
LAT_API int lat_normal_(lat_tensor *t, lat_rng *rng, double mean, double std);
LAT_API int lat_bernoulli_(lat_tensor *t, lat_rng *rng, double p);
LAT_API int lat_randint_(lat_tensor *t, lat_rng *rng, int64_t lo, int64_t hi);
LAT_API lat_tensor *lat_randperm(int64_t n, lat_rng *rng);

/* tensors */
LAT_API lat_tensor *lat_empty(int dtype, int ndim, const int64_t *shape);
LAT_API lat_tensor *lat_full(int dtype, int ndim, const int64_t *shape, double value);
LAT_API lat_tensor *lat_arange(double start, double stop, double step, int dtype);
LAT_API lat_tensor *lat_retain(lat_tensor *t);
LAT_API void lat_release(lat_tensor *t);
LAT_API lat_tensor *lat_clone(lat_tensor *t);
LAT_API lat_tensor *lat_detach(lat_tensor *t);
LAT_API lat_tensor *lat_to_dtype(lat_tensor *t, int dtype);
LAT_API int lat_set_requires_grad(lat_tensor *t, int flag);
LAT_API int lat_fill_(lat_tensor *t, double value);
LAT_API int lat_copy_(lat_tensor *dst, lat_tensor *src);
LAT_API int lat_axpy_(lat_tensor *y, double alpha, lat_tensor *x);
LAT_API int lat_scale_(lat_tensor *t, double alpha);
LAT_API int lat_clamp_(lat_tensor *t, double lo, double hi);
LAT_API int lat_same_shape(lat_tensor *a, lat_tensor *b);
/* in-place writes: the count of those into t's storage (shared with its views), and the check
 * and count for a write made through t->data, with the rules of the in-place functions */
LAT_API int64_t lat_data_version(lat_tensor *t);
LAT_API int lat_mark_written(lat_tensor *t, const char *op);

/* views and copies of layout */
LAT_API lat_tensor *lat_reshape(lat_tensor *t, int ndim, const int64_t *shape);
LAT_API lat_tensor *lat_narrow(lat_tensor *t, int dim, int64_t start, int64_t length);
LAT_API lat_tensor *lat_permute(lat_tensor *t, const int *perm);
LAT_API lat_tensor *lat_transpose(lat_tensor *t, int d0, int d1);
LAT_API lat_tensor *lat_expand(lat_tensor *t, int ndim, const int64_t *shape);
LAT_API lat_tensor *lat_cat(int n, lat_tensor **ts, int dim);

/* autograd */
LAT_API void lat_set_grad_enabled(int flag);
LAT_API int lat_is_grad_enabled(void);
LAT_API int lat_backward(lat_tensor *root, lat_tensor *root_grad, int retain_graph);
LAT_API int lat_grad(lat_tensor *root, lat_tensor *root_grad, int n, lat_tensor **wrt,
                     lat_tensor **out, int retain_graph);
LAT_API int lat_zero_grad(lat_tensor *t);
LAT_API const char *lat_node_name(lat_tensor *t);

/* elementwise; functions that take an op code take it first */
LAT_API lat_tensor *lat_unary(lat_unary_op op, lat_tensor *x);
LAT_API const char *lat_unary_name(lat_unary_op op); /* "tanh" for LAT_OP_TANH; NULL if no op */
LAT_API lat_tensor *lat_binary(lat_binary_op op, lat_tensor *a, lat_tensor *b);
LAT_API lat_tensor *lat_add_scalar(lat_tensor *x, double s);
LAT_API lat_tensor *lat_mul_scalar(lat_tensor *x, double s);
LAT_API lat_tensor *lat_pow_scalar(lat_tensor *x, double p);
LAT_API lat_tensor *lat_clamp(lat_tensor *x, double lo, double hi);
LAT_API lat_tensor *lat_where(lat_tensor *mask, lat_tensor *a, lat_tensor *b);
/* a == b, a < b, ... with broadcasting; the result is uint8 and carries no gradient */
LAT_API lat_tensor *lat_compare(lat_compare_op op, lat_tensor *a, lat_tensor *b);

/* reductions over a set of dims (ndims = 0: every dim) */
LAT_API lat_tensor *lat_sum(lat_tensor *x, int ndims, const int *dims, int keepdim);
LAT_API lat_tensor *lat_amax(lat_tensor *x, int ndims, const int *dims, int keepdim);
LAT_API lat_tensor *lat_argmax(lat_tensor *x, int dim, int keepdim);

/* linear algebra */
LAT_API lat_tensor *lat_matmul(lat_tensor *a, lat_tensor *b);
LAT_API lat_tensor *lat_linear(lat_tensor *x, lat_tensor *w, lat_tensor *b);

/* convolution and pooling, NCHW */
LAT_API lat_tensor *lat_conv2d(lat_tensor *x, lat_tensor *w, lat_tensor *b, int stride_h,
                               int stride_w, int pad_h, int pad_w);
LAT_API lat_tensor *lat_max_pool2d(lat_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw);
LAT_API lat_tensor *lat_avg_pool2d(lat_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw);

/* softmax and losses */
LAT_API lat_tensor *lat_softmax(lat_tensor *x, int dim);
LAT_API lat_tensor *lat_log_softmax(lat_tensor *x, int dim);
LAT_API lat_tensor *lat_cross_entropy(lat_tensor *logits, lat_tensor *labels, int ignore_index,
                                      int reduction);
/* multi-head attention on q, k, v [B, T, D]; keep: NULL or [B, T], nonzero at keys to attend */
LAT_API lat_tensor *lat_attention(lat_tensor *q, lat_tensor *k, lat_tensor *v, int heads,
                                  int causal, lat_tensor *keep);

/* normalisation */
LAT_API lat_tensor *lat_layer_norm(lat_tensor *x, lat_tensor *w, lat_tensor *b, double eps);
LAT_API lat_tensor *lat_batch_norm(lat_tensor *x, lat_tensor *w, lat_tensor *b,
                                   lat_tensor *running_mean, lat_tensor *running_var, int training,
                                   double momentum, double eps);

/* indexing */
LAT_API lat_tensor *lat_embedding(lat_tensor *weight, lat_tensor *ids);
LAT_API lat_tensor *lat_gather(lat_tensor *x, int dim, lat_tensor *index);
LAT_API lat_tensor *lat_index_select(lat_tensor *x, int dim, lat_tensor *index);
LAT_API lat_tensor *lat_dropout(lat_tensor *x, double p, lat_rng *rng);

/* optimisers (optim.c): fused in-place updates in torch.optim's order of operations */
LAT_API int lat_sgd_step_(lat_tensor *p, lat_tensor *grad, lat_tensor *momentum_buf, double lr,
                          double momentum, double dampening, int nesterov, double weight_decay,
                          int first);
LAT_API int lat_adamw_step_(lat_tensor *p, lat_tensor *grad, lat_tensor *m, lat_tensor *v,
                            int64_t step, double lr, double beta1, double beta2, double eps,
                            double weight_decay);
LAT_API int lat_sum_squares(lat_tensor *t, double *out);

/* checkpoints (io_safetensors.c, io_save.c, io_dtype.c) */
typedef struct lat_checkpoint lat_checkpoint;
/* Writes n named tensors and metadata (a JSON object of string -> string, or NULL) to path in the
 * safetensors layout; zstd_level 0 writes it plain, any other value compresses the whole file
 * with that zstd level. float_dtype ("F32" or NULL, "F16", "BF16") is the dtype float32 tensors
 * are stored as, rounded to nearest, ties to even; int32 and uint8 ones are stored as I32 and
 * U8. Atomic: path.tmp.<pid> is written, synced and renamed over path. */
LAT_API int lat_save_safetensors(const char *path, int n, const char **names,
                                 lat_tensor **tensors, const char *metadata_json, int zstd_level,
                                 const char *float_dtype);
/* Reads a checkpoint (zstd-compressed or not), checking everything; tensors in name order.
 * Stored dtypes that lat has no dtype for are converted as they are read: F16, BF16 (exactly)
 * and F64 (rounded; a finite value beyond float32 is an error) to float32, I64 (each value must
 * fit), I16 and I8 to int32, BOOL (bytes 0 and 1) to uint8. */
LAT_API lat_checkpoint *lat_load_safetensors(const char *path);
LAT_API int lat_checkpoint_count(const lat_checkpoint *c);
LAT_API const char *lat_checkpoint_name(const lat_checkpoint *c, int i);
LAT_API lat_tensor *lat_checkpoint_tensor(const lat_checkpoint *c, int i);
/* the dtype tensor i has in the file, as safetensors names it ("F32", "F16", "I64", ...) */
LAT_API const char *lat_checkpoint_stored_dtype(const lat_checkpoint *c, int i);
LAT_API const char *lat_checkpoint_metadata(const lat_checkpoint *c);
LAT_API void lat_checkpoint_free(lat_checkpoint *c);
/* The index of a sharded checkpoint (model.safetensors.index.json: {"metadata": {...},
 * "weight_map": {"tensor": "shard file", ...}}), checked as hostile input: every tensor once,
 * every shard a file name beside the index. Entries in tensor-name order. (io_shard_index.c) */
typedef struct lat_shard_index lat_shard_index;
LAT_API lat_shard_index *lat_read_shard_index(const char *path);
LAT_API int lat_shard_index_count(const lat_shard_index *x);
LAT_API const char *lat_shard_index_tensor(const lat_shard_index *x, int i);
LAT_API const char *lat_shard_index_shard(const lat_shard_index *x, int i);
/* the index's "metadata" object as JSON text, "{}" if it has none */
LAT_API const char *lat_shard_index_metadata(const lat_shard_index *x);
LAT_API void lat_shard_index_free(lat_shard_index *x);

/* The most bytes that reading one file (checkpoint, IDX, PNG) may decode to; a file that would
 * decode to more is refused before anything is allocated. Process-wide; the default is 8 GiB or
 * half the machine's memory, whichever is less, and under the default a compressed file may also
 * decode to at most 1100 times its size beyond 64 MiB (a decompression bomb is refused before
 * it fills memory); a limit set here replaces both. set returns the previous limit (-1 if bytes is
 * negative); 0 restores the default. (io_limit.c) */
LAT_API int64_t lat_read_limit(void);
LAT_API int64_t lat_set_read_limit(int64_t bytes);

/* data files (io_idx.c, io_png.c) */
LAT_API lat_tensor *lat_read_idx(const char *path);
LAT_API lat_tensor *lat_read_png(const char *path);
LAT_API int lat_write_png(const char *path, lat_tensor *t);
/* LAT_FFI_END */

/* For C libraries built on liblat (liblat_mpi, a user's extension): leaves a printf-formatted
 * message in lat_error() and returns -1, as liblat's own failing calls do. */
LAT_API int lat_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif
