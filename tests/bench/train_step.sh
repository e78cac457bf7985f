#!/bin/bash
# train_step.sh: one whole training step of the GPT and the ResNet the recipes train, lat against
# PyTorch, at 1 and 2 threads (median ms; PyTorch with OMP_WAIT_POLICY=PASSIVE and glibc malloc
# keeping freed memory).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LAT=${LAT:-$root/build/lat}
PY=${LAT_PYTHON:-/usr/bin/python3}
printf '%-8s %-8s %10s %10s %7s\n' model threads 'lat ms' 'torch ms' ratio
for model in gpt resnet; do
  for t in 1 2; do
    l=$(LAT_NUM_THREADS=$t "$LAT" "$here/train_step.lua" --model=$model)
    p=$(cd "$here" && OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
        MALLOC_MMAP_THRESHOLD_=1000000000000 MALLOC_TRIM_THRESHOLD_=1000000000000 "$PY" train_step.py "$t" $model)
    printf '%-8s %-8s %10s %10s %7.2f\n' $model "$t" "$l" "$p" "$(echo "$l / $p" | bc -l)"
  done
done
