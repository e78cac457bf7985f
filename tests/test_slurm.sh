#!/usr/bin/env bash
# test_slurm.sh: a job array on a real single-node Slurm (tests/slurm/cluster.sh). Three array
# tasks each run `lat -e` and write what Slurm told them (SLURM_ARRAY_TASK_ID and _COUNT) to a
# file of their own; all three files must be there and right. A cluster that cannot start fails
# the test with the reason; it never passes or skips.
#   LAT=build/lat tests/test_slurm.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LAT=${LAT:-$here/../build/lat}
fail() { echo "FAIL: $*"; exit 1; }

env_lines=$("$here/slurm/cluster.sh" start) || fail "the test Slurm cluster did not start (the reason is above)"
eval "$env_lines"
trap '"$here/slurm/cluster.sh" stop' EXIT
echo "ok   cluster started in $LAT_SLURM_DIR"

out=$LAT_SLURM_DIR/array
mkdir -p "$out"
cat > "$out/task.sh" <<EOF
#!/bin/bash
exec "$LAT" -e '
  local id, count = os.getenv("SLURM_ARRAY_TASK_ID"), os.getenv("SLURM_ARRAY_TASK_COUNT")
  local f = assert(io.open("$out/task_" .. id .. ".txt", "w"))
  f:write(("id=%s count=%s\n"):format(id, count))
  f:close()'
EOF
chmod +x "$out/task.sh"
timeout 120 sbatch --wait --array=0-2 --job-name=lat-array-test --output="$out/slurm-%A_%a.out" "$out/task.sh" ||
  { tail -n 20 "$out"/slurm-*.out "$LAT_SLURM_DIR/log/slurmctld.log" 2>/dev/null; fail "the array job failed or did not end within 120 s"; }
echo "ok   sbatch --array=0-2 --wait returned"

for id in 0 1 2; do
  f=$out/task_$id.txt
  [ -f "$f" ] || fail "array task $id wrote no $f"
  got=$(cat "$f")
  [ "$got" = "id=$id count=3" ] || fail "array task $id wrote '$got', expected 'id=$id count=3'"
  echo "ok   array task $id: $got"
done
[ "$(ls "$out"/task_*.txt | wc -l)" = 3 ] || fail "more than three task files: $(ls "$out")"
echo "1 passed, 0 failed"
