#!/usr/bin/env bash
# Tear down the cluster of tests/slurm/up.sh: cancel its jobs, then stop slurmd, slurmctld and munged by the
# PIDs that up.sh saved (only if that PID still is that daemon). Safe to run twice or after a failed up.sh.
#   tests/slurm/down.sh [RUNDIR]    (default $S2CAC_SLURM_DIR or /tmp/s2cac-slurm)
set -uo pipefail
RUN=$(realpath -m "${1:-${S2CAC_SLURM_DIR:-/tmp/s2cac-slurm}}")
export SLURM_CONF=$RUN/slurm.conf

alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# cancel what is left while slurmctld is still up (the job steps end with their jobs)
if [ -s "$RUN/slurmctld.pid" ] && alive "$(cat "$RUN/slurmctld.pid")" && [ -f "$SLURM_CONF" ]; then
  ids=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    timeout 10 scancel $ids 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(timeout 5 squeue -h -t R,CG,PD -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

status=0
stop() {  # stop <name> <expected /proc/PID/comm>
  local f="$RUN/$1.pid" pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if ! alive "$pid"; then rm -f "$f"; return 0; fi
  if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != "$2" ]; then
    echo "slurm down: pid $pid is not $2 (comm=$(cat /proc/"$pid"/comm 2>/dev/null)); not killing" >&2
    status=1
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 150); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then echo "slurm down: $1 ($pid) ignored SIGTERM, sending SIGKILL" >&2; kill -KILL "$pid"; fi
  echo "slurm down: stopped $1 ($pid)"
  rm -f "$f"
}
stop slurmd slurmd
# job step daemons still alive (jobs that did not end within the wait above, e.g. on a loaded machine): those
# of this cluster carry its SLURM_CONF in their environment (inherited from slurmd, started by up.sh)
steps=()
for d in /proc/[0-9]*; do
  [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] || continue
  { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" && steps+=("${d#/proc/}")
done
if ((${#steps[@]})); then
  kill -TERM "${steps[@]}" 2>/dev/null
  sleep 5
  for pid in "${steps[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
  echo "slurm down: stopped job step daemons ${steps[*]}"
fi
stop slurmctld slurmctld
stop munged munged
rm -f "$RUN"/*.pidfile
# the symlink /etc/slurm/slurm.conf made by up.sh, if it is still this cluster's
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$SLURM_CONF" ]; then
  rm -f /etc/slurm/slurm.conf
fi
exit $status
