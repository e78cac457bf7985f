#!/usr/bin/env bash
# sanitize.sh [ctest options]: builds lat with AddressSanitizer + UBSan (halting at the first
# report) into build-asan/ and runs the test suite there, with LeakSanitizer on: the Lua tests,
# the recipes' --quick runs, the PyTorch parity run, the kernel and the notebooks. Assumes
# .ci/setup.sh ran (packages, data sets). LuaJIT, OpenBLAS and libgomp are not instrumented;
# none of them leaks at a clean exit (the Lua tests close their Lua state), so no leak is
# suppressed: should one need to be, a commented LSAN_OPTIONS=suppressions=<file> goes here.
# Time on the 2-core machine (busy): build 44 s, suite 9 min 47 s at -j2 (recipe_vision_trojans
# alone 585 s, 15 times its plain time: ASan and UBSan checks in lat's own loops).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DLAT_SANITIZE=ON > /dev/null
cmake --build build-asan -j"$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
ctest --test-dir build-asan --output-on-failure -j2 "$@"
