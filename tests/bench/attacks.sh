#!/bin/bash
# attacks.sh: whole latent and input attacks and adversarial training steps, lat against PyTorch,
# at 1 and 2 threads, in one run (the workloads: attacks.lua). Prints each workload's median
# time (ms), the ratio lat / PyTorch (below 1: lat is faster), and lat's time with replay = false
# (every attack forward in full: what the suffix-only attack saves). If OPENBLAS_CORETYPE is set,
# the table is printed twice: as set, then with it unset. Then, at 1 thread, each workload's
# peak memory in a process of its own: peak resident memory less that before the workload (models
# and batches made, PyTorch imported).
#   tests/bench/attacks.sh [REPEATS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LAT=${LAT:-$root/build/lat}
PY=${LAT_PYTHON:-/usr/bin/python3}
REPEATS=${1:-5}
# PyTorch at its best here: passive OpenMP waiting, glibc malloc keeping freed memory
TORCH_ENV=(OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=1000000000000
           MALLOC_TRIM_THRESHOLD_=1000000000000 MALLOC_TOP_PAD_=1000000000)

table() {
  echo
  echo "== $1"
  printf '%-28s %3s %9s %9s %6s %11s\n' workload thr 'lat ms' 'torch ms' ratio 'lat full ms'
  for t in 1 2; do
    local lat_out torch_out
    lat_out=$(LAT_NUM_THREADS=$t "$LAT" "$here/attacks.lua" --repeats="$REPEATS")
    torch_out=$(cd "$here" && env "${TORCH_ENV[@]}" OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$PY" attacks.py "$t" "$REPEATS")
    awk -F'\t' -v t="$t" '
      NR == FNR { torch[$1] = $2; next }
      { printf "%-28s %3d %9.1f %9.1f %6.2f %11s\n", $1, t, $2, torch[$1], $2 / torch[$1], $3 }' \
      <(echo "$torch_out") <(echo "$lat_out")
  done
}

echo "attacks: median of $REPEATS runs after one warm-up run"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; lat kernels: $("$LAT" -e 'print(require("lat").cpu())')"
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), run with ${TORCH_ENV[*]}, torch.set_num_threads(t)"
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
  table "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (as set in the environment)"
  ( unset OPENBLAS_CORETYPE; table "OPENBLAS_CORETYPE unset" )
else
  table "OPENBLAS_CORETYPE unset"
fi

echo
echo "== peak memory of each workload, MiB above the process's resident memory before it (1 thread, 2 runs)"
printf '%-28s %9s %9s %6s\n' workload 'lat MiB' 'torch MiB' ratio
names=$(cd "$here" && "$PY" -c 'import attacks; print("\n".join(attacks.NAMES))')
while IFS= read -r name; do
  l=$(LAT_NUM_THREADS=1 "$LAT" "$here/attacks.lua" --repeats=1 --only="$name" --memory | cut -f2)
  p=$(cd "$here" && env "${TORCH_ENV[@]}" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PY" attacks.py 1 1 "$name" --memory | cut -f2)
  printf '%-28s %9.1f %9.1f %6.2f\n' "$name" "$l" "$p" "$(echo "$l / $p" | bc -l)"
done <<< "$names"
