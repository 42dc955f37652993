#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests and for trying the slurm executor without a cluster.
#
#   scripts/slurm_cluster.sh start    write slurm.conf (this node's real CPUs and memory, one CPU-only
#                                     partition `cpu`), start munged, slurmctld and slurmd, wait for the node
#   scripts/slurm_cluster.sh stop     stop the three daemons by their pid files
#   scripts/slurm_cluster.sh status   the daemons' pids and `sinfo`
#
# Everything lives in $MAGIC_SLURM_DIR (default /tmp/magic-slurm): config, munge key and socket, state,
# logs, pid files. Nothing under /etc is touched; point the Slurm commands at the cluster with
#   export SLURM_CONF=$MAGIC_SLURM_DIR/slurm.conf
# Needs Debian's `slurm-wlm` and `munge` (`make slurm-install`) and root (slurmd runs jobs as their user).
set -euo pipefail

DIR=${MAGIC_SLURM_DIR:-/tmp/magic-slurm}
CONF=$DIR/slurm.conf
DAEMONS=(slurmd slurmctld munged)  # stop order: the node, the controller, then authentication

die() { echo "slurm_cluster: $*" >&2; exit 1; }

pid_of() { [[ -s $DIR/$1.pid ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null && cat "$DIR/$1.pid"; }

write_config() {
    # `slurmd -C` reports the node as Slurm sees it: CPUs, sockets, cores, threads and RealMemory (MB).
    local node
    node=$(slurmd -C | head -1) || die "slurmd -C failed; is slurm-wlm installed?"
    local name=${node#NodeName=}; name=${name%% *}
    cat > "$CONF" <<EOF
# Written by scripts/slurm_cluster.sh: a one-node test cluster.
ClusterName=magic
SlurmctldHost=$name
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
SlurmctldPort=${MAGIC_SLURM_PORT:-6817}
SlurmdPort=$(( ${MAGIC_SLURM_PORT:-6817} + 1 ))
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# No cgroups in a container: processes are tracked by parentage, signals reach every process of a step.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# FIFO scheduling on every event: a dependant starts as soon as what it waits for ends.
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
KillWait=30
MinJobAge=600
$node State=UNKNOWN
PartitionName=cpu Nodes=$name Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null \
        || die "slurmctld or munged not found; install them with \`make slurm-install\` (Debian slurm-wlm, munge)"
    [[ $(id -u) == 0 ]] || die "run as root: slurmd must start jobs as their owner"
    mkdir -p "$DIR/state" "$DIR/spool"
    write_config
    if [[ ! -s $DIR/munge.key ]]; then
        dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge.key"
    fi
    pid_of munged >/dev/null || munged --force --socket="$DIR/munge.socket" --key-file="$DIR/munge.key" \
        --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed"
    pid_of slurmctld >/dev/null || slurmctld -f "$CONF"
    pid_of slurmd >/dev/null || slurmd -f "$CONF"
    for _ in $(seq 60); do  # the node registers with the controller within a few seconds
        if SLURM_CONF=$CONF sinfo -h -o %t 2>/dev/null | grep -qx idle; then
            echo "slurm_cluster: up; export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 1
    done
    die "the node did not come up within 60 s; see $DIR/slurmctld.log and $DIR/slurmd.log"
}

stop() {
    for daemon in "${DAEMONS[@]}"; do
        local pid
        if pid=$(pid_of "$daemon"); then
            kill "$pid"
            for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            echo "slurm_cluster: stopped $daemon ($pid)"
        fi
        rm -f "$DIR/$daemon.pid"
    done
}

status() {
    for daemon in "${DAEMONS[@]}"; do echo "$daemon: $(pid_of "$daemon" || echo stopped)"; done
    [[ -f $CONF ]] && SLURM_CONF=$CONF sinfo || true
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
