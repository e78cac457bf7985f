#!/bin/bash
# gpt2_lat_step.sh: the wall time of one LAT fine-tuning step of GPT-2 small (124M parameters,
# batch 4 x 128 tokens; a 6-step L2 PGD on the residual stream after h.5, then AdamW on the
# perturbed loss), lat against PyTorch, one run each at 1 and 2 threads. Extra arguments go to
# both halves in order: batch len steps layers (e.g. "2 32 2 6" for a quick look; at least 6 layers, the site is h.5).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LAT=${LAT:-$root/build/lat}
PY=${LAT_PYTHON:-/usr/bin/python3}
args=("$@")
lat_args=()
if [ ${#args[@]} -ge 4 ]; then lat_args=(--batch="${args[0]}" --len="${args[1]}" --steps="${args[2]}" --layers="${args[3]}"); fi
echo "one LAT step of GPT-2 small (batch ${args[0]:-4} x ${args[1]:-128}, ${args[2]:-6} PGD steps at h.5, AdamW), seconds, one run"
echo "PyTorch with OMP_WAIT_POLICY=PASSIVE and glibc malloc keeping freed memory"
printf '%-8s %10s %10s %7s\n' threads 'lat s' 'torch s' ratio
for t in 1 2; do
  l=$(LAT_NUM_THREADS=$t "$LAT" "$here/gpt2_lat_step.lua" "${lat_args[@]}" | cut -d' ' -f1)
  p=$(OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
      MALLOC_MMAP_THRESHOLD_=1000000000000 MALLOC_TRIM_THRESHOLD_=1000000000000 "$PY" "$here/gpt2_lat_step.py" "$t" "$@" | cut -d' ' -f1)
  printf '%-8s %10s %10s %7.2f\n' "$t" "$l" "$p" "$(echo "$l / $p" | bc -l)"
done
