-- core/cdef.lua: the declarations of core/lat.h (the block between LAT_FFI_BEGIN and LAT_FFI_END),
-- as LuaJIT's FFI reads them. tests/test_cdef.lua checks that the two stay the same.
return [[
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
  LAT_OP_TANH, LAT_OP_SIGMOID, LAT_UNARY_COUNT
} lat_unary_op;

typedef enum { LAT_OP_ADD, LAT_OP_SUB, LAT_OP_MUL, LAT_OP_DIV, LAT_BINARY_COUNT } lat_binary_op;

typedef enum { LAT_REDUCE_NONE = 0, LAT_REDUCE_MEAN = 1, LAT_REDUCE_SUM = 2 } lat_reduction;

/* errors and version */
const char *lat_error(void);
void lat_clear_error(void);
const char *lat_version(void);
int lat_tensor_struct_size(void);

/* memory: a caching allocator; live = handed out, cached = kept for reuse */
int64_t lat_live_bytes(void);
int64_t lat_cached_bytes(void);
int64_t lat_peak_bytes(void);
int64_t lat_fresh_allocations(void);
void lat_empty_cache(void);

/* threads */
void lat_set_num_threads(int n);
int lat_get_num_threads(void);

/* random numbers: counter-based, so a (seed, offset) pair fixes every number */
void lat_rng_seed(lat_rng *rng, uint64_t seed);
int lat_uniform_(lat_tensor *t, lat_rng *rng, double lo, double hi);
int lat_normal_(lat_tensor *t, lat_rng *rng, double mean, double std);
int lat_bernoulli_(lat_tensor *t, lat_rng *rng, double p);
int lat_randint_(lat_tensor *t, lat_rng *rng, int64_t lo, int64_t hi);
lat_tensor *lat_randperm(int64_t n, lat_rng *rng);

/* tensors */
lat_tensor *lat_empty(int dtype, int ndim, const int64_t *shape);
lat_tensor *lat_full(int dtype, int ndim, const int64_t *shape, double value);
lat_tensor *lat_arange(double start, double stop, double step, int dtype);
lat_tensor *lat_retain(lat_tensor *t);
void lat_release(lat_tensor *t);
lat_tensor *lat_clone(lat_tensor *t);
lat_tensor *lat_detach(lat_tensor *t);
lat_tensor *lat_to_dtype(lat_tensor *t, int dtype);
int lat_set_requires_grad(lat_tensor *t, int flag);
int lat_fill_(lat_tensor *t, double value);
int lat_copy_(lat_tensor *dst, lat_tensor *src);
int lat_axpy_(lat_tensor *y, double alpha, lat_tensor *x);
int lat_scale_(lat_tensor *t, double alpha);
int lat_clamp_(lat_tensor *t, double lo, double hi);
int lat_same_shape(lat_tensor *a, lat_tensor *b);
/* in-place writes: the count of those into t's storage (shared with its views), and the check
 * and count for a write made through t->data, with the rules of the in-place functions */
int64_t lat_data_version(lat_tensor *t);
int lat_mark_written(lat_tensor *t, const char *op);

/* views and copies of layout */
lat_tensor *lat_reshape(lat_tensor *t, int ndim, const int64_t *shape);
lat_tensor *lat_narrow(lat_tensor *t, int dim, int64_t start, int64_t length);
lat_tensor *lat_permute(lat_tensor *t, const int *perm);
lat_tensor *lat_transpose(lat_tensor *t, int d0, int d1);
lat_tensor *lat_expand(lat_tensor *t, int ndim, const int64_t *shape);
lat_tensor *lat_cat(int n, lat_tensor **ts, int dim);

/* autograd */
void lat_set_grad_enabled(int flag);
int lat_is_grad_enabled(void);
int lat_backward(lat_tensor *root, lat_tensor *root_grad, int retain_graph);
int lat_grad(lat_tensor *root, lat_tensor *root_grad, int n, lat_tensor **wrt, lat_tensor **out,
             int retain_graph);
int lat_zero_grad(lat_tensor *t);
const char *lat_node_name(lat_tensor *t);

/* elementwise */
lat_tensor *lat_unary(int op, lat_tensor *x);
lat_tensor *lat_binary(int op, lat_tensor *a, lat_tensor *b);
lat_tensor *lat_add_scalar(lat_tensor *x, double s);
lat_tensor *lat_mul_scalar(lat_tensor *x, double s);
lat_tensor *lat_pow_scalar(lat_tensor *x, double p);
lat_tensor *lat_clamp(lat_tensor *x, double lo, double hi);
lat_tensor *lat_where(lat_tensor *mask, lat_tensor *a, lat_tensor *b);
lat_tensor *lat_compare(lat_tensor *a, lat_tensor *b, int op);

/* reductions over a set of dims (ndims = 0: every dim) */
lat_tensor *lat_sum(lat_tensor *x, int ndims, const int *dims, int keepdim);
lat_tensor *lat_amax(lat_tensor *x, int ndims, const int *dims, int keepdim);
lat_tensor *lat_argmax(lat_tensor *x, int dim, int keepdim);

/* linear algebra */
lat_tensor *lat_matmul(lat_tensor *a, lat_tensor *b);
lat_tensor *lat_linear(lat_tensor *x, lat_tensor *w, lat_tensor *b);

/* convolution and pooling, NCHW */
lat_tensor *lat_conv2d(lat_tensor *x, lat_tensor *w, lat_tensor *b, int stride_h, int stride_w,
                       int pad_h, int pad_w);
lat_tensor *lat_max_pool2d(lat_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw);
lat_tensor *lat_avg_pool2d(lat_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw);

/* softmax and losses */
lat_tensor *lat_softmax(lat_tensor *x, int dim);
lat_tensor *lat_log_softmax(lat_tensor *x, int dim);
lat_tensor *lat_cross_entropy(lat_tensor *logits, lat_tensor *labels, int ignore_index,
                              int reduction);
/* multi-head attention on q, k, v [B, T, D]; keep: NULL or [B, T], nonzero at keys to attend */
lat_tensor *lat_attention(lat_tensor *q, lat_tensor *k, lat_tensor *v, int heads, int causal,
                          lat_tensor *keep);

/* normalisation */
lat_tensor *lat_layer_norm(lat_tensor *x, lat_tensor *w, lat_tensor *b, double eps);
lat_tensor *lat_batch_norm(lat_tensor *x, lat_tensor *w, lat_tensor *b, lat_tensor *running_mean,
                           lat_tensor *running_var, int training, double momentum, double eps);

/* indexing */
lat_tensor *lat_embedding(lat_tensor *weight, lat_tensor *ids);
lat_tensor *lat_gather(lat_tensor *x, int dim, lat_tensor *index);
lat_tensor *lat_index_select(lat_tensor *x, int dim, lat_tensor *index);
lat_tensor *lat_dropout(lat_tensor *x, double p, lat_rng *rng);

/* optimisers (optim.c): fused in-place updates in torch.optim's order of operations */
int lat_sgd_step_(lat_tensor *p, lat_tensor *grad, lat_tensor *momentum_buf, double lr,
                  double momentum, double dampening, int nesterov, double weight_decay,
                  int first);
int lat_adamw_step_(lat_tensor *p, lat_tensor *grad, lat_tensor *m, lat_tensor *v, int64_t step,
                    double lr, double beta1, double beta2, double eps, double weight_decay);
int lat_sum_squares(lat_tensor *t, double *out);

/* checkpoints (io_safetensors.c) */
typedef struct lat_checkpoint lat_checkpoint;
/* Writes n named tensors and metadata (a JSON object of string -> string, or NULL) to path in the
 * safetensors layout; zstd_level 0 writes it plain, any other value compresses the whole file
 * with that zstd level. Atomic: path.tmp.<pid> is written, synced and renamed over path. */
int lat_save_safetensors(const char *path, int n, const char **names, lat_tensor **tensors,
                         const char *metadata_json, int zstd_level);
/* Reads a checkpoint (zstd-compressed or not), checking everything; tensors in name order. */
lat_checkpoint *lat_load_safetensors(const char *path);
int lat_checkpoint_count(const lat_checkpoint *c);
const char *lat_checkpoint_name(const lat_checkpoint *c, int i);
lat_tensor *lat_checkpoint_tensor(const lat_checkpoint *c, int i);
const char *lat_checkpoint_metadata(const lat_checkpoint *c);
void lat_checkpoint_free(lat_checkpoint *c);

/* The most bytes that reading one file (checkpoint, IDX, PNG) may decode to; a file that would
 * decode to more is refused before anything is allocated. Process-wide; the default is 8 GiB or
 * half the machine's memory, whichever is less. set returns the previous limit (-1 if bytes is
 * negative); 0 restores the default. (io_limit.c) */
int64_t lat_read_limit(void);
int64_t lat_set_read_limit(int64_t bytes);

/* data files (io_idx.c, io_png.c) */
lat_tensor *lat_read_idx(const char *path);
lat_tensor *lat_read_png(const char *path);
int lat_write_png(const char *path, lat_tensor *t);
]]
