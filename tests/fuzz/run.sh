#!/usr/bin/env bash
# run.sh [seconds] [target ...]: runs each fuzz target (default: all) for the given time (default
# 30 s) from its committed seeds, and prints per target the executions per second, the coverage
# of libFuzzer's last status line (cov: code edges, ft: features) and whether it found anything.
# Exits 1 if any target found something; the reproducers are under <build>/fuzz/findings/.
# It configures and builds build-fuzz/ (clang, LAT_FUZZ=ON) unless LAT_FUZZ_BUILD names a built
# fuzz build (CTest does that). The long mode is this with more seconds: tests/fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx png safetensors json lua_parsers)

build=${LAT_FUZZ_BUILD:-}
if [ -z "$build" ]; then
  build=build-fuzz
  cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DLAT_FUZZ=ON > /dev/null
  cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}" > /dev/null
fi
work=$build/fuzz
export LAT_NUM_THREADS=1 OMP_NUM_THREADS=1
# the targets' scratch files (fuzz_file.c), removed even when a target died before its atexit
LAT_FUZZ_TMP=$(mktemp -d /dev/shm/lat-fuzz.XXXXXX)
export LAT_FUZZ_TMP
trap 'rm -rf "$LAT_FUZZ_TMP"' EXIT

status=0
printf '%-12s %9s %6s %7s  %s\n' target exec/s cov ft result
for t in "${targets[@]}"; do
  # new inputs go to the working corpus in the build, the committed seeds stay as they are
  mkdir -p "$work/corpus/$t" "$work/findings/$t"
  log=$work/$t.log
  flags=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/findings/$t/")
  # the Lua heap holds what the library keeps between inputs, where LeakSanitizer does not
  # look; leaks are still checked at exit (fuzz_lua_parsers.c)
  [ "$t" != lua_parsers ] || flags+=(-detect_leaks=0)
  touch "$work/$t.start"
  rc=0
  "$build/tests/fuzz/fuzz_$t" "${flags[@]}" "$work/corpus/$t" "tests/fuzz/corpus/$t" > "$log" 2>&1 || rc=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  field() { sed -n "s|.* $1: \([0-9]*\).*|\1|p" <<< "$last"; }
  found=$(find "$work/findings/$t" -type f -newer "$work/$t.start" | sort | tr '\n' ' ')
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    result="FOUND (exit $rc): ${found:-see $log}"
    status=1
  else
    result="nothing found"
  fi
  printf '%-12s %9s %6s %7s  %s\n' "$t" "$(field exec/s)" "$(field cov)" "$(field ft)" "$result"
done
exit $status
