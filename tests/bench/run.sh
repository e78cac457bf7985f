#!/bin/bash
# run.sh: lat against PyTorch on the same workloads, at 1 and 2 threads, in one go.
# Prints each workload's median time per call (ms, after warm-up) and the ratio lat / torch (below 1:
# lat is faster). Usage: tests/bench/run.sh [REPEATS]   (from anywhere; lat from build/)
# If OPENBLAS_CORETYPE is set, the table is printed twice: as set, then with it unset.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LAT=${LAT:-$root/build/lat}
PY=${LAT_PYTHON:-/usr/bin/python3}
REPEATS=${1:-${REPEATS:-15}}
STARTS=${STARTS:-10}
# PyTorch at its best here: passive OpenMP waiting, and glibc malloc keeping freed memory
# instead of returning (and re-faulting) it every step.
TORCH_ENV=(OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=1000000000000
           MALLOC_TRIM_THRESHOLD_=1000000000000 MALLOC_TOP_PAD_=1000000000)

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

# wall time of a command in ms, median of $STARTS runs
startup_ms() {
  for _ in $(seq "$STARTS"); do
    local t0 t1
    t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000" | bc
  done | median
}

table() { # $1: label; the environment decides OPENBLAS_CORETYPE
  echo
  echo "== $1"
  printf '%-28s %3s %10s %10s %7s\n' workload thr 'lat ms' 'torch ms' ratio
  for t in 1 2; do
    local lat_out torch_out
    lat_out=$(LAT_NUM_THREADS=$t "$LAT" "$here/bench.lua" "$t" "$REPEATS")
    # torch.set_num_threads does not reach the OpenBLAS that torch's BLAS calls go to
    torch_out=$(env "${TORCH_ENV[@]}" OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
      "$PY" "$here/bench_torch.py" "$t" "$REPEATS")
    awk -F'\t' -v t="$t" '
      NR == FNR { torch[$1] = $2; next }
      { lat[$1] = $2; order[++n] = $1 }
      END {
        for (i = 1; i <= n; i++) {
          k = order[i]
          if (k ~ /^raw /) continue
          if (k in torch) printf "%-28s %3d %10.3f %10.3f %7.2f\n", k, t, lat[k], torch[k], lat[k] / torch[k]
        }
        if ("raw cblas_sgemm 1024^3" in lat)
          printf "%-28s %3d %10.3f %10.3f %7.2f   (lat matmul / raw cblas_sgemm)\n", "matmul vs raw sgemm", t, lat["matmul 1024^3"], lat["raw cblas_sgemm 1024^3"], lat["matmul 1024^3"] / lat["raw cblas_sgemm 1024^3"]
      }' <(echo "$torch_out") <(echo "$lat_out")
  done
  local sl st
  sl=$(startup_ms "$LAT" -e '')
  st=$(startup_ms env "${TORCH_ENV[@]}" "$PY" -c 'import torch')
  printf '%-28s %3s %10.3f %10.3f %7.2f\n' "start-up (lat -e '' / import torch)" - "$sl" "$st" "$(echo "scale=4; $sl / $st" | bc)"
}

echo "lat benchmarks: median of $REPEATS repeats (each a block of calls lasting at least 0.1 s, timed as a whole) after 3 warm-up calls; start-up: median of $STARTS runs"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null), run with: ${TORCH_ENV[*]}"
echo "  and torch.set_num_threads(t), OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t for t threads"
echo "lat: LAT_NUM_THREADS=1 or 2, OpenMP and malloc defaults; its garbage collections fall inside the timed blocks"
echo "workloads: matmul 1024^3; linear 128x784->256 forward+backward (x, w, b); conv2d 3x3 pad 1,"
echo "  batch 128, 28x28, forward+backward for (x, w, b) or for x only (the attack case)"
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
  table "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (as set in the environment)"
  ( unset OPENBLAS_CORETYPE; table "OPENBLAS_CORETYPE unset" )
else
  table "OPENBLAS_CORETYPE unset"
fi
