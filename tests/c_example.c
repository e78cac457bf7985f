/* c_example.c: the worked example at the top of core/lat.h as a plain C program, linked to the
 * shared liblat alone (which exports only lat.h's API): y = tanh(x), loss = sum(y), backward,
 * and the gradient checked against 1 - tanh(x)^2. Fails (exit 1) with a message on any error. */
#include "lat.h"
#include <math.h>
#include <stdio.h>

static int failed(const char *what) {
  fprintf(stderr, "c_example: %s: %s\n", what, lat_error());
  return 1;
}

int main(void) {
  int64_t shape[2] = {4, 3};
  lat_rng rng;
  lat_rng_seed(&rng, 1);
  lat_tensor *x = lat_empty(LAT_F32, 2, shape);
  if (!x) return failed("lat_empty");
  if (lat_normal_(x, &rng, 0.0, 1.0) != 0) return failed("lat_normal_");
  if (lat_set_requires_grad(x, 1) != 0) return failed("lat_set_requires_grad");
  lat_tensor *y = lat_unary(LAT_OP_TANH, x);
  if (!y) return failed("lat_unary");
  lat_tensor *loss = lat_sum(y, 0, NULL, 0);
  if (!loss) return failed("lat_sum");
  if (lat_backward(loss, NULL, 0) != 0) return failed("lat_backward");

  int errors = 0;
  double sum = 0;
  if (!x->grad_ || x->grad_->numel_ != 12) {
    fprintf(stderr, "c_example: x has no gradient of 12 elements after backward\n");
    return 1;
  }
  for (int64_t k = 0; k < x->numel_; k++) {
    double t = tanh(x->f[k]), want = 1 - t * t, got = x->grad_->f[k];
    sum += t;
    if (fabs(got - want) > 1e-6) {
      fprintf(stderr, "c_example: d loss / d x[%lld] = %.9g, want 1 - tanh(x)^2 = %.9g\n",
              (long long)k, got, want);
      errors++;
    }
  }
  if (fabs(loss->f[0] - sum) > 1e-5) {
    fprintf(stderr, "c_example: loss %.9g, want sum of tanh(x) %.9g\n", loss->f[0], sum);
    errors++;
  }
  lat_release(loss);
  lat_release(y);
  lat_release(x);
  if (lat_live_bytes() != 0) {
    fprintf(stderr, "c_example: %lld bytes still live after releasing every tensor\n",
            (long long)lat_live_bytes());
    errors++;
  }
  if (errors) return 1;
  printf("c_example: the gradient of sum(tanh(x)) is 1 - tanh(x)^2 at all 12 elements\n");
  return 0;
}
