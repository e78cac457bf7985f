#!/usr/bin/env bash
# test.sh: sets up (installs and builds as needed) and runs the whole test suite under CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup.sh
ctest --test-dir build --output-on-failure "$@"
