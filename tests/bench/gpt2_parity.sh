#!/bin/bash
# gpt2_parity.sh: the GPT-2 parity check of tests/test_gpt2.lua at GPT-2 small's shapes (124M
# parameters, random weights, batch 4 x 128): PyTorch's Hugging Face-layout GPT-2 and lat's GPT
# loaded from its config.json + model.safetensors give logits, loss and gradients within 1e-4
# and the same greedy continuation. About 2 GB of memory and a minute or two.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root/tests"
LAT_GPT2_SHAPE=small LAT_TEST_TMP=${LAT_TEST_TMP:-$root/runs} "${LAT:-$root/build/lat}" test_gpt2.lua
