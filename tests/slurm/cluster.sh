#!/usr/bin/env bash
# cluster.sh start|stop|env [DIR]: a single-node Slurm on localhost for tests (tests/slurm/README.md).
#   eval "$(tests/slurm/cluster.sh start)"   # starts munged, slurmctld and slurmd; exports
#                                            # LAT_SLURM_DIR and SLURM_CONF for sbatch, squeue, ...
#   tests/slurm/cluster.sh stop              # stops them and removes $LAT_SLURM_DIR
# Everything (config, munge key and socket, state, spool, logs) lives in one temporary folder;
# nothing under /etc or /var is read or written. Ports are picked free at start, so several
# clusters can run side by side. A start that fails says why (with the daemon's log) and exits 1.
set -euo pipefail

SLURM_LIB=/usr/lib/x86_64-linux-gnu/slurm-wlm
WAIT_SECONDS=${LAT_SLURM_WAIT:-60}

die() { echo "cluster.sh: $*" >&2; exit 1; }

# a TCP port on 127.0.0.1 that nothing listens on (a connection to it is refused)
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free TCP port found on 127.0.0.1"
}

env_lines() { printf 'export LAT_SLURM_DIR=%q\nexport SLURM_CONF=%q\n' "$1" "$1/slurm.conf"; }

log_tail() { [ -f "$1" ] && { echo "--- last lines of $1:"; tail -n 15 "$1"; } >&2 || true; }

# a daemon has died once its pid file names a process that is gone (the file comes a moment after start)
pid_dead() { [ -s "$1" ] && ! kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
  local dir=$1 memory
  memory=$(awk '/^MemTotal:/ { print int($2 / 1024 / 2) }' /proc/meminfo) # half the RAM, in MB
  cat > "$dir/slurm.conf" <<EOF
# a one-node test cluster written by tests/slurm/cluster.sh
ClusterName=lattest
SlurmctldHost=localhost
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge-socket/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# no cgroups: processes are tracked through /proc and tasks are not bound
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
NodeName=localhost CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  local dir=$1
  # munged wants its key private and its socket's folder open to all
  mkdir -m 700 "$dir/munge"
  mkdir -m 755 "$dir/munge-socket"
  head -c 1024 /dev/urandom > "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  munged --key-file="$dir/munge/munge.key" --socket="$dir/munge-socket/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" ||
    { log_tail "$dir/log/munged.log"; die "munged did not start (see its log above)"; }
  munge -n -S "$dir/munge-socket/munge.socket" | unmunge -S "$dir/munge-socket/munge.socket" > /dev/null ||
    { log_tail "$dir/log/munged.log"; die "munged started but does not answer on its socket"; }
}

start_daemon() { # name dir: slurmctld or slurmd, in the background (they fork themselves)
  local name=$1 dir=$2 args=()
  [ "$name" = slurmd ] && args=(-N localhost)
  "$name" -f "$dir/slurm.conf" "${args[@]}" 2>> "$dir/log/$name.stderr" ||
    { log_tail "$dir/log/$name.stderr"; log_tail "$dir/log/$name.log"; die "$name did not start (see its log above)"; }
}

wait_idle() {
  local dir=$1 state=''
  for _ in $(seq $((WAIT_SECONDS * 2))); do
    ! pid_dead "$dir/slurmctld.pid" || { log_tail "$dir/log/slurmctld.log"; die "slurmctld died after starting (see its log above)"; }
    ! pid_dead "$dir/slurmd.pid" || { log_tail "$dir/log/slurmd.log"; die "slurmd died after starting (see its log above)"; }
    state=$(SLURM_CONF="$dir/slurm.conf" sinfo -h -n localhost -o %T 2>/dev/null || true)
    [ "$state" = idle ] && return
    sleep 0.5
  done
  log_tail "$dir/log/slurmctld.log"
  log_tail "$dir/log/slurmd.log"
  for name in slurmctld slurmd; do
    [ -s "$dir/$name.pid" ] || die "$name exited at once without writing its pid file or log"
  done
  die "the node did not become idle within $WAIT_SECONDS s (sinfo says '${state:-nothing}')"
}

start() {
  local dir=${1:-}
  for cmd in munged munge slurmctld slurmd sinfo sbatch; do
    command -v "$cmd" > /dev/null ||
      die "'$cmd' is not installed: Slurm tests need Debian's slurm-wlm and munge (.ci/setup.sh installs them)"
  done
  [ -e "$SLURM_LIB/auth_munge.so" ] || die "Slurm's munge plugin $SLURM_LIB/auth_munge.so is missing"
  if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/lat-slurm.XXXXXX")
  elif [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then die "$dir is not empty"
  else mkdir -p "$dir"; fi
  dir=$(cd "$dir" && pwd)
  chmod 755 "$dir"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  # a start that fails stops what it did start
  started=""
  trap "[ -n \"\$started\" ] || stop_in $(printf %q "$dir") > /dev/null 2>&1 || true" EXIT
  write_config "$dir"
  start_munge "$dir"
  start_daemon slurmctld "$dir"
  start_daemon slurmd "$dir"
  wait_idle "$dir"
  started=1
  env_lines "$dir"
}

# ends the daemon whose pid file is given: TERM, then KILL after 10 s
end_daemon() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

stop_in() {
  local dir=$1
  [ -f "$dir/slurm.conf" ] || die "$dir holds no test cluster (no slurm.conf)"
  end_daemon "$dir/slurmd.pid"
  end_daemon "$dir/slurmctld.pid"
  end_daemon "$dir/munge/munged.pid"
  [ -n "${LAT_SLURM_KEEP:-}" ] || rm -rf "$dir"
}

cmd=${1:-}
dir=${2:-${LAT_SLURM_DIR:-}}
case "$cmd" in
  start) start "${2:-}" ;;
  stop) [ -n "$dir" ] || die "stop: which cluster? (give its folder or set LAT_SLURM_DIR)"; stop_in "$dir" ;;
  env) [ -n "$dir" ] || die "env: which cluster? (give its folder or set LAT_SLURM_DIR)"
       [ -f "$dir/slurm.conf" ] || die "$dir holds no test cluster (no slurm.conf)"
       env_lines "$dir" ;;
  *) echo "usage: $0 start [DIR] | stop [DIR] | env [DIR]   (DIR defaults to \$LAT_SLURM_DIR)" >&2; exit 2 ;;
esac
