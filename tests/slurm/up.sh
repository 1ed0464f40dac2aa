#!/usr/bin/env bash
# Bring up a private single-node SLURM cluster on localhost (munged + slurmctld + slurmd, no systemd, no
# cgroups, no accounting database) so that the workflow's SLURM profile can be exercised for real.
# Used by tests/test_slurm.py; also handy to try workflow/profiles/slurm on a workstation. Needs root.
#
#   tests/slurm/up.sh [RUNDIR]     (default $S2CAC_SLURM_DIR or /tmp/s2cac-slurm)
#   source RUNDIR/env.sh           # exports SLURM_CONF: sbatch/squeue/sinfo now talk to this cluster
#   tests/slurm/down.sh [RUNDIR]   # cancel jobs, stop the daemons by their saved PIDs
#
# Everything lives under RUNDIR: slurm.conf, the munge key and socket, spool/state, logs, PID files. The only
# change outside it is the symlink /etc/slurm/slurm.conf -> RUNDIR/slurm.conf (see below; refused if a real
# slurm.conf is there), removed by down.sh. A site's own munge installation is left alone. The Debian packages
# munge slurmctld slurmd slurm-client are installed with apt-get when missing (root only).
# Exit status 2: no cluster can be set up here (not root; packages missing and apt cannot install them; a real
# /etc/slurm/slurm.conf): tests/test_slurm.py skips with the message. Other failures exit 1.
# Environment: S2CAC_SLURM_NICE (default 0) is added to the niceness of the daemons and so of every job step.
set -euo pipefail
RUN=$(realpath -m "${1:-${S2CAC_SLURM_DIR:-/tmp/s2cac-slurm}}")
NICE=${S2CAC_SLURM_NICE:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
t0=$EPOCHREALTIME
log() { awk -v a="$t0" -v b="$EPOCHREALTIME" -v m="$*" 'BEGIN{printf "[slurm up %5.1fs] %s\n", b-a, m}'; }
fail() { echo "slurm up: $*" >&2; "$HERE/down.sh" "$RUN" >&2 || true; exit "${FAIL_CODE:-1}"; }

[ "$(id -u)" = 0 ] || { echo "slurm up: needs root (daemons run as root, packages come from apt)" >&2; exit 2; }
for d in munged slurmctld slurmd; do
  if [ -s "$RUN/$d.pid" ] && kill -0 "$(cat "$RUN/$d.pid")" 2>/dev/null; then
    echo "slurm up: $d already running (pid $(cat "$RUN/$d.pid")); run tests/slurm/down.sh $RUN first" >&2
    exit 1
  fi
done

# ---- 1. packages (Debian 12: slurm 22.05, munge 0.5.15) -------------------------------------------------
need=()
for p in munge slurmctld slurmd slurm-client; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  command -v apt-get >/dev/null || { echo "slurm up: missing ${need[*]} and no apt-get" >&2; exit 2; }
  log "apt-get install ${need[*]}"
  # bounded, so that an unreachable mirror fails instead of hanging; exit 2 = SLURM cannot be provided here
  # (tests/test_slurm.py then skips with this message rather than failing)
  timeout 300 apt-get update -qq ||
    { echo "slurm up: missing ${need[*]} and apt-get update failed (offline?)" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    { echo "slurm up: missing ${need[*]} and apt-get install failed" >&2; exit 2; }
fi
if [ -d /run/systemd/system ]; then  # with systemd, apt started the packaged services: not ours, leave them
  log "note: systemd host; the packaged services (if running) are independent of this private cluster"
fi

# ---- 2. layout, ports -----------------------------------------------------------------------------------
rm -rf "$RUN/state" "$RUN/spool" "$RUN/munge"
mkdir -p "$RUN/state" "$RUN/spool" "$RUN/log"
install -d -o munge -g munge -m 755 "$RUN/munge"  # munged wants the socket folder world-executable
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT=$(free_port); done

# ---- 3. munge (private key and socket) ------------------------------------------------------------------
SOCK=$RUN/munge/munge.socket
dd if=/dev/urandom of="$RUN/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$RUN/munge/munge.key" && chmod 600 "$RUN/munge/munge.key"
# munged as the munge user (setpriv execs, so $! is munged itself)
nice -n "$NICE" setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
  --key-file="$RUN/munge/munge.key" --socket="$SOCK" --pid-file="$RUN/munge/munged.pidfile" \
  --seed-file="$RUN/munge/munged.seed" --log-file="$RUN/log/munged.log" >"$RUN/log/munged.out" 2>&1 &
echo $! >"$RUN/munged.pid"
for _ in $(seq 100); do munge -S "$SOCK" -n 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 && break; sleep 0.1; done
munge -S "$SOCK" -n | unmunge -S "$SOCK" >/dev/null || fail "munged did not start: $(tail -5 "$RUN/log/munged.out")"
log "munged up (pid $(cat "$RUN/munged.pid"), socket $SOCK)"

# ---- 4. slurm.conf (node definition from `slurmd -C`) ---------------------------------------------------
HOST=$(hostname -s)
NODE=$(slurmd -C | head -1)  # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE")
MEM=$((MEM * 9 / 10))
NODE=$(sed "s/RealMemory=[0-9]*/RealMemory=$MEM/" <<<"$NODE")
CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$NODE")
CONF=$RUN/slurm.conf
cat >"$CONF" <<EOF
# Written by tests/slurm/up.sh: a private single-node test cluster (no accounting, no cgroups).
ClusterName=s2cac-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
AuthInfo=socket=$SOCK
MpiDefault=none
MailProg=/bin/true
# containers without systemd: track processes through /proc, no task binding or cgroup confinement
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# jobs without --mem get a share of the node, not all of it
DefMemPerCPU=$((MEM / CPUS / 2))
# time limits take effect within seconds (tests kill a job by its limit); SIGKILL 5 s after SIGTERM
KillWait=5
OverTimeLimit=0
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool
SlurmctldPidFile=$RUN/slurmctld.pidfile
SlurmdPidFile=$RUN/slurmd.pidfile
SlurmctldLogFile=$RUN/log/slurmctld.log
SlurmdLogFile=$RUN/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no slurmdbd: sacct does not work, so job states come from squeue; finished jobs stay visible to squeue
# for MinJobAge seconds (the snakemake SLURM plugin needs >= 120; the test reads every job's final state
# after the whole run, so keep them an hour)
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
# one fake GPU (a GRES with no device file), so jobs that request --gpus=1 are scheduled as on a GPU node;
# torch sees no CUDA device in them and runs on the CPU
GresTypes=gpu
$NODE Gres=gpu:1 NodeAddr=127.0.0.1 State=UNKNOWN
# no default partition, like sites that refuse jobs without one: every job must say -p debug
PartitionName=debug Default=NO Nodes=ALL MaxTime=INFINITE State=UP
EOF
echo "Name=gpu File=/dev/null" >"$RUN/gres.conf"  # a device file that exists; no real GPU behind it
cat >"$RUN/env.sh" <<EOF
# source me: point the SLURM client commands at the test cluster in $RUN
export SLURM_CONF=$CONF
EOF
export SLURM_CONF=$CONF
# Commands inside jobs must find the config without SLURM_CONF: the snakemake jobstep executor drops SLURM_*
# variables (SLURM_CONF included) before its nested srun. So /etc/slurm/slurm.conf (the compiled-in default)
# becomes a symlink to this one, unless it is a real file or belongs to another running test cluster.
ETC=/etc/slurm/slurm.conf
if [ -e "$ETC" ] && [ ! -L "$ETC" ]; then
  FAIL_CODE=2 fail "$ETC exists (a real SLURM installation?); not replacing it"
fi
if [ -L "$ETC" ]; then
  other=$(dirname "$(readlink "$ETC")")
  if [ "$other" != "$RUN" ] && [ -s "$other/slurmctld.pid" ] && kill -0 "$(cat "$other/slurmctld.pid")" 2>/dev/null; then
    fail "$ETC points to the running test cluster in $other; stop it first (tests/slurm/down.sh $other)"
  fi
fi
mkdir -p /etc/slurm
ln -sfn "$CONF" "$ETC"
log "wrote $CONF (ports $CTLD_PORT/$SLURMD_PORT; $NODE)"

# ---- 5. daemons (-D: foreground, backgrounded here; -c: clean state) ------------------------------------
nice -n "$NICE" slurmctld -D -c -f "$CONF" >"$RUN/log/slurmctld.out" 2>&1 &
echo $! >"$RUN/slurmctld.pid"
for _ in $(seq 150); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
scontrol ping 2>/dev/null | grep -q 'is UP' || fail "slurmctld did not start: $(tail -5 "$RUN/log/slurmctld.log")"
log "slurmctld up (pid $(cat "$RUN/slurmctld.pid"))"

nice -n "$NICE" slurmd -D -f "$CONF" >"$RUN/log/slurmd.out" 2>&1 &
echo $! >"$RUN/slurmd.pid"
for _ in $(seq 150); do [ "$(sinfo -h -n "$HOST" -o %t 2>/dev/null)" = idle ] && break; sleep 0.2; done
[ "$(sinfo -h -n "$HOST" -o %t)" = idle ] || fail "node not idle: $(sinfo 2>&1; tail -5 "$RUN/log/slurmd.log")"
log "slurmd up (pid $(cat "$RUN/slurmd.pid")), node idle"

# ---- 6. smoke test --------------------------------------------------------------------------------------
timeout 60 srun -p debug -N1 -n1 --mem=10 true || fail "srun smoke test failed"
timeout 60 srun -p debug -N1 -n1 --mem=10 --gpus=1 true || fail "srun smoke test with --gpus=1 (fake GRES) failed"
log "srun smoke test ok; cluster ready (source $RUN/env.sh)"
sinfo
