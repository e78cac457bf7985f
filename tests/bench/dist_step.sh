#!/bin/bash
# dist_step.sh: data-parallel against threads on this machine: one training step (lat.train.step
# with AdamW) of the ResNet and the GPT the recipes train, plain and with LAT (3 PGD steps), as
# 1 process x 1 thread, 1 process x 2 threads and 2 MPI ranks x 1 thread (each rank half of the
# same global batch). Median ms per step; speed-up against 1 x 1.
#   tests/bench/dist_step.sh [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LAT=${LAT:-$root/build/lat}
REPEATS=${1:-20}
[ -e "$root/build/liblat_mpi.so" ] || { echo "dist_step.sh: build/liblat_mpi.so is missing (lat was built without MPI)" >&2; exit 1; }
MPIRUN=(mpirun --allow-run-as-root -np 2 --bind-to core)
step() { "$@" "$here/dist_step.lua" --repeats="$REPEATS" $args; }
printf '%-12s %10s %10s %10s %9s %9s\n' workload '1x1 ms' '1x2 ms' '2x1 ms' '1x2 gain' '2x1 gain'
for workload in resnet resnet-lat gpt gpt-lat; do
  args="--model=${workload%-lat}"
  [ "$workload" = "${workload%-lat}" ] || args="$args --lat"
  a=$(LAT_NUM_THREADS=1 step "$LAT")
  b=$(LAT_NUM_THREADS=2 step "$LAT")
  c=$(LAT_NUM_THREADS=1 step "${MPIRUN[@]}" "$LAT")
  printf '%-12s %10s %10s %10s %8.2fx %8.2fx\n' "$workload" "$a" "$b" "$c" \
    "$(echo "$a / $b" | bc -l)" "$(echo "$a / $c" | bc -l)"
done
