/* autograd.c: the tape. Each op output that needs gradients owns a node naming its inputs;
 * backward sorts the graph below the root, decides which tensors lie on a path to a wanted
 * gradient, and runs each node's backward function once, newest first. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

static _Thread_local int grad_disabled;

void lat_set_grad_enabled(int flag) { grad_disabled = !flag; }
int lat_is_grad_enabled(void) { return !grad_disabled; }

bool lat__needs_grad(int n, lat_tensor *const *ins) {
  if (grad_disabled) return false;
  for (int k = 0; k < n; k++)
    if (ins[k] && ins[k]->req_grad_) return true;
  return false;
}

lat_node *lat__record(lat_tensor *out, const char *name, lat_backward_fn bw, int n,
                      lat_tensor *const *ins) {
  if (!out || !lat__needs_grad(n, ins)) return NULL;
  lat_node *node = calloc(1, sizeof *node);
  if (!node) return NULL;
  node->name = name;
  node->backward = bw;
  node->n_in = n;
  node->in = node->in_inline;
  node->need = node->need_inline;
  node->in_version = node->in_version_inline;
  if (n > LAT_NODE_MAX_IN) {
    node->in = calloc((size_t)n, sizeof *node->in);
    node->need = calloc((size_t)n, sizeof *node->need);
    node->in_version = calloc((size_t)n, sizeof *node->in_version);
  }
  for (int k = 0; k < n; k++) {
    node->in[k] = lat_retain(ins[k]);
    node->in_version[k] = ins[k] ? ins[k]->storage->version : 0;
  }
  node->out_version = out->storage->version;
  out->node = node;
  out->req_grad_ = 1;
  return node;
}

/* What a node keeps for its backward: after the pass that used it, unless the graph is
 * retained, so that a step's buffers go back to the allocator at once rather than when the
 * collector frees the loss. */
static void release_kept(lat_node *n) {
  for (int k = 0; k < n->n_in; k++) {
    lat_release(n->in[k]);
    n->in[k] = NULL;
  }
  for (int k = 0; k < LAT_NODE_MAX_SAVED; k++) {
    lat_release(n->saved[k]);
    n->saved[k] = NULL;
  }
  n->freed = true;
}

void lat__node_free(lat_node *n) {
  release_kept(n);
  if (n->in != n->in_inline) {
    free(n->in);
    free(n->need);
    free(n->in_version);
  }
  free(n);
}

lat_tensor *lat__save_output(lat_tensor *t) { return lat_detach(t); }

float *lat__grad_buf(lat_node *n, int k, bool *accumulate) {
  lat_tensor *in = n->in[k];
  if (in->bgrad_) {
    *accumulate = true;
    return in->bgrad_->f;
  }
  in->bgrad_ = lat__new(LAT_F32, in->ndim, in->shape_);
  *accumulate = false;
  return in->bgrad_ ? in->bgrad_->f : NULL;
}

const char *lat_node_name(lat_tensor *t) { return t && t->node ? t->node->name : NULL; }

/* marks for one pass */
enum { SEEN = 1, NEEDED = 2, WANTED = 4, USED = 8 /* its node's backward passed a gradient on */ };

typedef struct { lat_tensor **v; int n, cap; } list;

static bool push(list *l, lat_tensor *t) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 256;
    lat_tensor **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return false;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = t;
  return true;
}

/* Post-order of the graph below root (inputs before the tensors made from them), iteratively
 * so that long chains do not exhaust the C stack. */
static bool topo_sort(lat_tensor *root, list *order) {
  list stack = {0}, child = {0}; /* child.v[i] holds the next input index, cast */
  bool ok = push(&stack, root) && push(&child, NULL);
  root->mark_ |= SEEN;
  while (ok && stack.n) {
    lat_tensor *t = stack.v[stack.n - 1];
    intptr_t next = (intptr_t)child.v[child.n - 1];
    if (t->node && next < t->node->n_in) {
      child.v[child.n - 1] = (lat_tensor *)(next + 1);
      lat_tensor *in = t->node->in[next];
      if (in && !(in->mark_ & SEEN)) {
        in->mark_ |= SEEN;
        ok = push(&stack, in) && push(&child, NULL);
      }
    } else {
      stack.n--;
      child.n--;
      ok = push(order, t);
    }
  }
  free(stack.v);
  free(child.v);
  return ok;
}

/* Ends a pass: drops the scratch gradients and marks, and lets the nodes the pass used go of
 * what they kept. Inputs come before the tensors made from them in order, so releasing a node's
 * inputs can free only tensors already visited, never one still to come. */
static void clear(list *order, bool release) {
  for (int k = 0; k < order->n; k++) {
    lat_tensor *t = order->v[k];
    lat_release(t->bgrad_);
    t->bgrad_ = NULL;
    bool used = t->mark_ & USED;
    t->mark_ = 0;
    if (used && release) release_kept(t->node);
  }
  free(order->v);
}

static int stale(const lat_node *n, const char *what, const lat_tensor *t, int64_t then) {
  return lat__failc("backward of %s: %s of shape %s was modified in place after it was used "
                    "(version %lld, now %lld); use an out-of-place op or clone it first", n->name,
                    what, SHAPE(t), (long long)then, (long long)t->storage->version);
}

/* The node's backward reads its inputs and saved output as they were when it ran. */
static int check_unmodified(const lat_tensor *t) {
  const lat_node *n = t->node;
  for (int k = 0; k < n->n_in && !n->inputs_unread; k++)
    if (n->in[k] && n->in[k]->storage->version != n->in_version[k])
      return stale(n, "an input", n->in[k], n->in_version[k]);
  for (int k = 0; k < LAT_NODE_MAX_SAVED; k++)
    if (n->saved[k] && n->saved[k]->storage == t->storage && t->storage->version != n->out_version)
      return stale(n, "its output", t, n->out_version);
  return 0;
}

/* whether the node's backward passed a gradient to any input (a wanted intermediate tensor's
 * node may pass none: then the graph below it was not used and is kept) */
static bool passes_on(const lat_node *n) {
  for (int k = 0; k < n->n_in; k++)
    if (n->need[k]) return true;
  return false;
}

/* Accumulate g into *slot (a gradient tensor owned by the slot). */
static int accumulate_into(lat_tensor **slot, lat_tensor *g) {
  if (!*slot) {
    *slot = lat_clone(g);
    return *slot ? 0 : -1;
  }
  return lat_axpy_(*slot, 1.0, g);
}

static int run(lat_tensor *root, lat_tensor *root_grad, int n, lat_tensor **wrt,
               lat_tensor **out, int retain_graph) {
  if (!root) return lat__failc("backward: tensor is nil");
  if (!root->req_grad_)
    return lat__failc("backward: the tensor does not require gradients (no input it was computed "
                      "from has requires_grad set, or it was computed under no_grad)");
  if (root_grad) {
    if (root_grad->dtype_ != LAT_F32 || root_grad->numel_ != root->numel_)
      return lat__failc("backward: gradient of shape %s given for a tensor of shape %s",
                        SHAPE(root_grad), SHAPE(root));
  } else if (root->numel_ != 1) {
    return lat__failc("backward: the tensor has shape %s; backward without a gradient needs a "
                      "single number (reduce it first, e.g. with sum or mean)", SHAPE(root));
  }
  for (int k = 0; k < n; k++) {
    if (!wrt[k]) return lat__failc("grad: input %d is nil", k + 1);
    if (!wrt[k]->req_grad_)
      return lat__failc("grad: input %d (shape %s) does not require gradients", k + 1,
                        SHAPE(wrt[k]));
  }
  for (int k = 0; k < n; k++) wrt[k]->mark_ |= WANTED; /* only once all are valid */
  list order = {0};
  if (!topo_sort(root, &order)) {
    clear(&order, false);
    return lat__failc("backward: out of memory sorting the graph");
  }
  int rc = 0;
  for (int k = 0; k < order.n; k++)
    if (order.v[k]->node && order.v[k]->node->freed) {
      rc = lat__failc("backward: the graph through %s was freed by an earlier backward pass; "
                      "pass retain_graph = true to that pass to go through it again",
                      order.v[k]->node->name);
      goto done;
    }
  /* a tensor is needed if it is wanted, or (backward mode) a leaf requiring gradients, or one
   * of its inputs is needed */
  for (int k = 0; k < order.n; k++) {
    lat_tensor *t = order.v[k];
    bool needed = (t->mark_ & WANTED) || (n == 0 && !t->node && t->req_grad_);
    if (t->node)
      for (int j = 0; j < t->node->n_in; j++) {
        lat_tensor *in = t->node->in[j];
        t->node->need[j] = in && (in->mark_ & NEEDED);
        needed |= t->node->need[j];
      }
    if (needed) t->mark_ |= NEEDED;
  }
  for (int k = 0; k < n; k++)
    if (!(wrt[k]->mark_ & NEEDED)) {
      rc = lat__failc("grad: input %d (shape %s) is not used to compute the output", k + 1,
                      SHAPE(wrt[k]));
      goto done;
    }
  /* before any gradient moves, so that a refusal leaves every .grad as it was */
  for (int k = 0; k < order.n; k++) {
    lat_tensor *t = order.v[k];
    if (t->node && (t->mark_ & NEEDED) && (rc = check_unmodified(t))) goto done;
  }
  /* the given gradient is only read (nothing accumulates into the root's gradient), so a view
   * of it in the root's shape serves: no copy of a possibly large tensor per backward */
  root->bgrad_ = root_grad ? lat__view(root_grad, 0, root->ndim, root->shape_)
                           : lat_full(LAT_F32, root->ndim, root->shape_, 1);
  if (!root->bgrad_) { rc = -1; goto done; }
  for (int k = order.n - 1; k >= 0 && rc == 0; k--) {
    lat_tensor *t = order.v[k];
    if (!(t->mark_ & NEEDED) || !t->bgrad_) continue;
    if (t->node) {
      rc = t->node->backward(t->node, t->bgrad_);
      if (rc) {
        char msg[1024];
        strncpy(msg, lat_error(), sizeof msg - 1);
        msg[sizeof msg - 1] = 0;
        lat__failc("backward of %s: %s", t->node->name, msg);
      }
    }
    if (rc == 0 && t->node && !retain_graph && passes_on(t->node)) t->mark_ |= USED;
    if (rc == 0 && n == 0 && !t->node && t->req_grad_)
      rc = accumulate_into(&t->grad_, t->bgrad_);
    if (rc == 0 && !(t->mark_ & WANTED) && t != root) {
      lat_release(t->bgrad_); /* free as we go: the gradient has been passed on */
      t->bgrad_ = NULL;
    }
  }
  for (int k = 0; k < n && rc == 0; k++) {
    lat_tensor *g = wrt[k]->bgrad_;
    out[k] = g ? lat_retain(g) : lat_full(LAT_F32, wrt[k]->ndim, wrt[k]->shape_, 0);
    if (!out[k]) rc = -1;
  }
done:
  for (int k = 0; k < n; k++) wrt[k]->mark_ = 0;
  clear(&order, rc == 0);
  return rc;
}

int lat_backward(lat_tensor *root, lat_tensor *root_grad, int retain_graph) {
  return run(root, root_grad, 0, NULL, NULL, retain_graph);
}

int lat_grad(lat_tensor *root, lat_tensor *root_grad, int n, lat_tensor **wrt, lat_tensor **out,
             int retain_graph) {
  if (n <= 0) return lat__failc("grad: give at least one tensor to differentiate with respect to");
  for (int k = 0; k < n; k++) out[k] = NULL;
  int rc = run(root, root_grad, n, wrt, out, retain_graph);
  if (rc)
    for (int k = 0; k < n; k++) {
      lat_release(out[k]);
      out[k] = NULL;
    }
  return rc;
}

int lat_zero_grad(lat_tensor *t) {
  if (!t) return lat__failc("zero_grad: tensor is nil");
  if (t->grad_) lat_fill_(t->grad_, 0);
  return 0;
}
