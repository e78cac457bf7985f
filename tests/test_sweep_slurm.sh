#!/usr/bin/env bash
# test_sweep_slurm.sh: `lat sweep --slurm --submit` on a real single-node Slurm (tests/slurm/cluster.sh).
# The fake recipe's grid (tests/experiment_fake.lua) and lm_trojans --quick are submitted as job
# arrays; every array task runs its shard, the last to end merges, and the merged results equal a
# single process's (the fake recipe's byte for byte, lm_trojans' without its time columns). A
# cluster that cannot start fails the test with the reason; it never passes or skips.
#   LAT=build/lat LAT_DATA=data tests/test_sweep_slurm.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LAT=${LAT:-$here/../build/lat}
export LAT_NUM_THREADS=1 LAT_PROGRESS=plain
fail() { echo "FAIL: $*"; exit 1; }

env_lines=$("$here/slurm/cluster.sh" start) || fail "the test Slurm cluster did not start (the reason is above)"
eval "$env_lines"
trap '"$here/slurm/cluster.sh" stop' EXIT
echo "ok   cluster started in $LAT_SLURM_DIR"
work=$LAT_SLURM_DIR/sweeps
mkdir -p "$work" && cd "$work" || fail "cannot make $work"

# sweep NAME RECIPE [options]: lat sweep --slurm --submit into $work/NAME, then waits for the array
sweep() {
  local name=$1 recipe=$2 out job
  shift 2
  out=$("$LAT" sweep --slurm --submit --tasks=3 --cpus=1 --time=0:10:00 "$recipe" "$@" --out="$work/$name" 2>&1) ||
    fail "lat sweep failed: $out"
  echo "$out"
  job=$(echo "$out" | sed -n 's/.*submitted as job \([0-9]*\).*/\1/p')
  [ -n "$job" ] || fail "no job id in: $out"
  for _ in $(seq 240); do
    [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
    sleep 0.5
  done
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || fail "the array job $job did not end within 120 s: $(squeue -j "$job")"
  local logs
  logs=$(ls "$work/$name/slurm/"*.out 2>/dev/null | wc -l)
  [ "$logs" = 3 ] || fail "$name: $logs task logs in $work/$name/slurm, not 3: $(tail -n 5 "$work/$name/slurm/"*.out)"
  [ -f "$work/$name/results.csv" ] || fail "$name: no merged results.csv; the tasks' logs: $(tail -n 8 "$work/$name/slurm/"*.out)"
  local shards
  shards=$(cd "$work/$name/shards" && echo *)
  [ "$shards" = "0-of-3.jsonl 1-of-3.jsonl 2-of-3.jsonl" ] || fail "$name: the tasks were not the shards 0, 1 and 2 of 3: $shards"
  echo "ok   $name: 3 array tasks of job $job ran and merged"
}

# same_results A B: the two CSVs without their time columns (*_seconds)
cat > "$work/same_results.lua" <<'EOF'
local lat = require 'lat'
local function text(path)
  local rows, columns = lat.log.read_csv(path)
  local out = {}
  for _, r in ipairs(rows) do
    for _, c in ipairs(columns) do
      if not c:find('seconds', 1, true) then out[#out + 1] = c .. '=' .. tostring(r[c]) end
    end
  end
  return table.concat(out, ',')
end
local a, b = text(arg[1]), text(arg[2])
if #a == 0 or a ~= b then error(('%s and %s differ:\n%s\n%s'):format(arg[1], arg[2], a, b), 0) end
EOF
same_results() { "$LAT" "$work/same_results.lua" "$1" "$2"; }

fake=$here/experiment_fake.lua
"$LAT" "$fake" --radii=0.1,0.2,0.3 --out="$work/fake_single" > /dev/null || fail "the single-process fake run failed"
sweep fake_slurm "$fake" --radii=0.1,0.2,0.3
for f in results.csv summary.csv; do
  cmp "$work/fake_single/$f" "$work/fake_slurm/$f" || fail "the fake recipe's $f from Slurm differs from the single process's"
done
echo "ok   fake recipe: results.csv and summary.csv from the array equal the single process's byte for byte"

lm=$here/../recipes/lm_trojans.lua
"$LAT" "$lm" --quick --cache="$work/cache" --out="$work/lm_single" > /dev/null 2>&1 || fail "the single-process lm_trojans run failed"
sweep lm_slurm "$lm" --quick --cache="$work/cache"
for f in results.csv summary.csv; do
  same_results "$work/lm_single/$f" "$work/lm_slurm/$f" || fail "lm_trojans' $f from Slurm differs from the single process's"
done
cmp "$work/lm_single/generations.txt" "$work/lm_slurm/generations.txt" || fail "lm_trojans' generations.txt differs"
echo "ok   lm_trojans --quick: results.csv, summary.csv and generations.txt from the array equal the single process's"
echo "3 passed, 0 failed"
