#!/usr/bin/env bash
# test.sh [ctest options]: sets up (installs and builds as needed) and runs the whole test suite:
# the CTest suite in build/, the same suite under ASan + UBSan + LeakSanitizer in build-asan/
# (.ci/sanitize.sh), and each fuzz target for 25 s from its seeds in build-fuzz/. Every part
# runs even when an earlier one failed; the exit status is non-zero if any did.
set -uo pipefail
cd "$(dirname "$0")/.."
.ci/setup.sh || exit 1
status=0
echo "== the test suite (build/)"
ctest --test-dir build --output-on-failure "$@" || status=1
echo "== the test suite under the sanitizers (build-asan/)"
.ci/sanitize.sh "$@" || status=1
echo "== the fuzz targets, 25 s each (build-fuzz/)"
{ cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DLAT_FUZZ=ON > /dev/null &&
  cmake --build build-fuzz -j"$(nproc)" > /dev/null &&
  ctest --test-dir build-fuzz --output-on-failure -R '^fuzz_'; } || status=1
exit $status
