#!/usr/bin/env bash
# A real single-node SLURM (Debian's slurm-wlm + munge) for the cluster test, without systemd.
#   .ci/slurm.sh start    install if needed, write the config, start munged/slurmctld/slurmd
#   .ci/slurm.sh stop     stop the daemons this script started (by the PIDs in their PID files)
#   .ci/slurm.sh status
# Idempotent: starting twice or stopping twice is harmless. Needs root.
set -euo pipefail

CONF_DIR=/etc/slurm
RUN_DIR=/run/slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "installing slurm-wlm and munge from Debian's packages"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
    fi
}

write_config() {
    local host node memory
    host=$(hostname -s)
    node=$(slurmd -C | head -n 1)
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((memory - 1024))/" <<<"$node")
    mkdir -p "$CONF_DIR"
    cat >"$CONF_DIR/slurm.conf" <<CONF
ClusterName=emotionnet-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$node State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    [[ $(id -u) == 0 ]] || { echo "slurm.sh: needs root (it installs packages and starts daemons)" >&2; exit 1; }
    install_packages
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge "$RUN_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    alive "$MUNGE_PID" || runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" --force
    write_config
    alive "$CTLD_PID" || slurmctld
    alive "$SLURMD_PID" || slurmd
    for _ in $(seq 1 60); do
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then
            echo "slurm is up: $(sinfo -h -o '%P %D %c %m %T')"
            return 0
        fi
        sleep 0.5
    done
    echo "slurm.sh: the node did not become idle; see /var/log/slurm/" >&2
    exit 1
}

stop() {
    local pidfile pid
    for pidfile in "$SLURMD_PID" "$CTLD_PID" "$MUNGE_PID"; do
        if alive "$pidfile"; then
            pid=$(cat "$pidfile")
            kill "$pid"
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$pidfile"
    done
    echo "slurm stopped"
}

status() {
    for pidfile in "$MUNGE_PID" "$CTLD_PID" "$SLURMD_PID"; do
        if alive "$pidfile"; then echo "$pidfile: running ($(cat "$pidfile"))"; else echo "$pidfile: not running"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
