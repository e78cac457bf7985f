#!/bin/bash
# lm_parity.sh: trains the Moby Dick GPT in lat and in PyTorch from the same initial weights on the
# same batches with the same learning rates, and checks that the validation loss (bits per byte)
# agrees within 2%. Extra arguments go to the lat half (--steps=N, --dim=D, ...).
#   tests/bench/lm_parity.sh [--steps=300]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${LM_PARITY_OUT:-$root/runs/lm_parity}
"${LAT:-$root/build/lat}" "$here/lm_parity.lua" --out="$out" "$@"
OMP_WAIT_POLICY=PASSIVE "${LAT_PYTHON:-/usr/bin/python3}" "$here/lm_parity.py" "$out" "${LM_PARITY_TOLERANCE:-0.02}"
