#!/usr/bin/env bash
# A real SLURM on this one machine, without systemd: for CI, for the tests in
# tests/slurm, and for trying slurm/*.sbatch before copying them to a cluster.
#
#   bash launch/local-slurm.sh install   # apt-get install slurmctld slurmd slurm-client munge (if absent)
#   bash launch/local-slurm.sh start     # munged + slurmctld + slurmd on localhost; idempotent, ~2 s
#   bash launch/local-slurm.sh status    # exit 0 when the controller answers and the node takes jobs
#   bash launch/local-slurm.sh stop      # stop the daemons this script started (by their pid files)
#
# Needs root (slurmd runs jobs as their user; munged runs as user munge).
# The cluster is one node, "localhost", with this machine's cores and memory,
# one partition "debug" (default, no time limit) and a fake GPU (gres gpu:1 on
# /dev/null) so that `sbatch --test-only` can check slurm/gpu.sbatch; nothing
# here uses it for real. Jobs may oversubscribe only with srun --overcommit.
#
# Files: the configuration goes to $SLURM_CONF (default /etc/slurm/slurm.conf,
# where sbatch/srun/sinfo look without any environment), state, spool, logs
# and pid files to $PVMPI_SLURM_STATE (default /var/tmp/pvmpi-slurm). A
# slurm.conf that this script did not write is never overwritten.
set -euo pipefail

CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
STATE=${PVMPI_SLURM_STATE:-/var/tmp/pvmpi-slurm}
MARK="# written by pvmpi launch/local-slurm.sh"
CLUSTER=pvmpi-local
PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: error: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (slurmd starts jobs as their user, munged as user munge)"
}

have_binaries() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null
}

alive() {  # alive PIDFILE: the process named in the pid file runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

cmd_install() {
    if have_binaries; then
        say "installed: $(slurmd -V 2>/dev/null)"
        return 0
    fi
    need_root
    command -v apt-get >/dev/null || die "no apt-get: install ${PACKAGES[*]} with this system's package manager"
    say "installing ${PACKAGES[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # The packages' own start-up (invoke-rc.d, systemd units) is refused without systemd: fine.
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 \
        || apt-get install -y --no-install-recommends "${PACKAGES[@]}"
    have_binaries || die "${PACKAGES[*]} did not install"
    say "installed: $(slurmd -V 2>/dev/null)"
}

write_conf() {
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; refusing to overwrite it (set SLURM_CONF to another path)"
    fi
    local cpus mem
    cpus=$(nproc --all)
    mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/spool" "$STATE/log"
    local new="$CONF.new.$$"
    cat >"$new" <<EOF
$MARK
# One-node SLURM on localhost for pvmpi's CI and tests (see the script).
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=pmi2
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# Schedule every 2 s (not every 60 s) and let a requeued job start again after 5 s
# (not cred_expire + 1 = 121 s): a requeue test then takes seconds, not minutes.
SchedulerParameters=sched_interval=2,bf_interval=2,sched_min_interval=100000
AuthInfo=cred_expire=5
# Finished jobs are forgotten after a few seconds: sbatch --wait then polls every 2 s
# (it doubles its poll interval up to 32 s while that stays below MinJobAge/2).
MinJobAge=4
KillWait=10
InactiveLimit=0
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$(dirname "$CONF")/gres.conf.new.$$" <<EOF
$MARK
# A fake GPU (no device behind it) so that sbatch --test-only accepts --gpus-per-task.
NodeName=localhost Name=gpu File=/dev/null
EOF
    mv "$(dirname "$CONF")/gres.conf.new.$$" "$(dirname "$CONF")/gres.conf"
    if [ -e "$CONF" ] && cmp -s "$new" "$CONF"; then
        rm -f "$new"
        return 1  # unchanged
    fi
    mv "$new" "$CONF"
    return 0
}

controller_up() { scontrol ping 2>/dev/null | grep -q "is UP"; }

node_state() { sinfo -h -n localhost -o %T 2>/dev/null | head -1; }

node_ready() {
    case "$(node_state)" in
        idle* | mixed* | allocated* | completing*) return 0 ;;
        *) return 1 ;;
    esac
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- munged --force
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

cmd_start() {
    have_binaries || die "SLURM is not installed: run 'bash launch/local-slurm.sh install' (root, Debian)"
    local changed=0
    if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        # Someone else's SLURM: use it if it answers, never reconfigure it.
        controller_up && node_ready && { say "using the existing SLURM of $CONF"; return 0; }
        die "$CONF belongs to another SLURM installation that does not answer; not touching it"
    fi
    if [ "$(id -u)" != 0 ]; then
        controller_up && node_ready && { say "running: $(node_state) node localhost"; return 0; }
        need_root
    fi
    write_conf && changed=1 || true
    if [ $changed = 0 ] && controller_up && node_ready && alive "$STATE/slurmctld.pid" \
        && alive "$STATE/slurmd.pid"; then
        say "already running: $(node_state) node localhost, $(sinfo -h -o %c -n localhost) CPUs"
        return 0
    fi
    start_munge
    if ! alive "$STATE/slurmctld.pid"; then
        # -i: ignore state files that do not match this configuration (a fresh machine has none)
        slurmctld -i
    elif [ $changed = 1 ]; then
        scontrol reconfigure >/dev/null 2>&1 || true
    fi
    if ! alive "$STATE/slurmd.pid"; then
        # the hostname is not "localhost": name the node explicitly
        slurmd -N localhost
    fi
    for i in $(seq 300); do
        if controller_up; then
            case "$(node_state)" in
                down* | drain* | fail*)
                    scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
            esac
            if node_ready; then
                say "started: node localhost $(node_state), $(sinfo -h -o %c -n localhost) CPUs, partition debug ($((i / 10)).$((i % 10)) s)"
                return 0
            fi
        fi
        sleep 0.1
    done
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    die "SLURM did not come up within 30 s (logs in $STATE/log)"
}

cmd_stop() {
    local f pid
    for f in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
        if alive "$f"; then
            pid=$(cat "$f")
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            say "stopped $(basename "$f" .pid) ($pid)"
        fi
    done
    # munged only if this script's configuration is in place (it started it)
    if [ -e "$CONF" ] && grep -qF "$MARK" "$CONF" && alive /run/munge/munged.pid; then
        pid=$(cat /run/munge/munged.pid)
        kill "$pid" && say "stopped munged ($pid)"
    fi
}

cmd_status() {
    if ! command -v sbatch >/dev/null; then
        say "not installed"
        return 3
    fi
    if controller_up; then
        say "controller UP; node localhost $(node_state)"
        sinfo
        node_ready && return 0
        return 3
    fi
    say "controller does not answer"
    return 3
}

case "${1:-status}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    *) echo "usage: $0 install|start|stop|restart|status" >&2; exit 2 ;;
esac
