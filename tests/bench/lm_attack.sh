#!/bin/bash
# lm_attack.sh: one PGD step on the Moby Dick GPT (forward through a residual-stream hook, the
# gradient with respect to the perturbation only), lat against PyTorch, at 1 and 2 threads.
# PyTorch's parameters are frozen (requires_grad off) so that it too skips weight gradients.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LAT=${LAT:-$root/build/lat}
PY=${LAT_PYTHON:-/usr/bin/python3}
echo "one latent PGD step, GPT 4 x 128, batch 32 x 128 tokens, hook before block 2 (median ms)"
echo "PyTorch with OMP_WAIT_POLICY=PASSIVE and glibc malloc keeping freed memory"
printf '%-8s %10s %10s %7s\n' threads 'lat ms' 'torch ms' ratio
for t in 1 2; do
  l=$(LAT_NUM_THREADS=$t "$LAT" "$here/lm_attack.lua")
  p=$(cd "$here" && OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
      MALLOC_MMAP_THRESHOLD_=1000000000000 MALLOC_TRIM_THRESHOLD_=1000000000000 "$PY" lm_attack.py "$t")
  printf '%-8s %10s %10s %7.2f\n' "$t" "$l" "$p" "$(echo "$l / $p" | bc -l)"
done
