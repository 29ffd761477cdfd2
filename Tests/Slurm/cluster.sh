#!/usr/bin/env bash
# A throwaway Slurm cluster on this host, for the tests of slurm/*.sbatch.
#
#   cluster.sh up [--nodes N]   start munged, slurmctld and N slurmd ("node1".."nodeN", default 2)
#                               in a new folder; prints that folder on stdout (its last line).
#                               Clients then need: export SLURM_CONF=<folder>/slurm.conf
#   cluster.sh down FOLDER      cancel its jobs, stop its daemons by PID, delete FOLDER
#                               (KEEP=1 keeps it); a second down, or a missing FOLDER, is fine.
#   cluster.sh logs FOLDER      print the daemons' logs
#
# Needs root (SlurmUser=root, no systemd). Installs Debian's slurmctld, slurmd, slurm-client
# and munge when missing. Every file, socket and port is the cluster's own, so several
# clusters (parallel test runs) and a system Slurm can coexist.
set -Eeuo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }

install_packages() {
    local missing=() p
    for p in slurmctld slurmd slurm-client munge; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    [ "$(id -u)" = 0 ] || die "needs root to install ${missing[*]}"
    echo "cluster.sh: installing ${missing[*]}" >&2
    # Without --no-install-recommends apt pulls ~33 packages the cluster never uses.
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# N consecutive TCP ports nobody listens on, from a random base so parallel clusters differ.
free_ports() {
    local n=$1 base p ok used
    used=$(ss -Hltn 2>/dev/null | awk '{n=split($4,a,":"); print a[n]}')
    for _ in $(seq 50); do
        base=$((20000 + RANDOM % 30000)); ok=1
        for ((p = base; p < base + n; p++)); do
            grep -qx "$p" <<<"$used" && { ok=0; break; }
        done
        [ $ok = 1 ] && { seq "$base" $((base + n - 1)); return; }
    done
    die "no free ports"
}

print_logs() {
    local dir=$1 f
    for f in "$dir"/log/*; do
        [ -f "$f" ] || continue
        echo "===== $f" >&2
        tail -n 60 "$f" >&2
    done
}

# The PIDs in these pid files that still belong to the daemon named (a reused PID is left
# alone).
live_pids() {
    local name=$1 file pid
    shift
    for file in "$@"; do
        pid=$(cat "$file" 2>/dev/null) || continue
        [[ $pid =~ ^[0-9]+$ ]] && grep -qx "$name" "/proc/$pid/comm" 2>/dev/null && echo "$pid"
    done
}

# A zombie counts as stopped: its parent (here init) reaps it in its own time.
running() { [ -r "/proc/$1/stat" ] && ! awk '{exit $3 != "Z"}' "/proc/$1/stat"; }

# TERM, up to 10 s of grace, then KILL; all the PIDs at once.
stop_pids() {
    local pid left
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null
    for _ in $(seq 100); do
        left=()
        for pid in "$@"; do running "$pid" && left+=("$pid"); done
        [ ${#left[@]} -eq 0 ] && return 0
        sleep 0.1
    done
    kill -KILL "${left[@]}" 2>/dev/null || true
}

# Runs a daemon with no descriptor of ours beyond stdin, stdout and stderr: munged keeps what
# it inherits, and a caller that learns of our exit by a descriptor closing (Foundation's
# Process) would wait forever.
daemon() {
    (
        for fd in "/proc/$BASHPID/fd"/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] && [ -e "/proc/$BASHPID/fd/$fd" ]; then eval "exec $fd>&-"; fi
        done
        exec "$@"
    )
}

up() {
    local nodes=2
    while [ $# -gt 0 ]; do
        case $1 in
            --nodes) nodes=$2; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    [[ $nodes =~ ^[1-9][0-9]*$ ]] || die "--nodes wants a positive number"
    [ "$(id -u)" = 0 ] || die "needs root (the daemons run as SlurmUser=root)"
    install_packages
    local dir
    dir=$(mktemp -d /tmp/deepdem-slurm.XXXXXX)
    chmod 755 "$dir"
    mkdir -p "$dir"/{munge,state,log,spool,tmp,run}
    chmod 700 "$dir/munge"

    # A failed start leaves nothing running and shows why, on our own stderr (fd 3): the
    # failing command may be a daemon's, with stderr sent to its log.
    exec 3>&2
    trap '{ echo "cluster.sh: the cluster in $dir did not start"; print_logs "$dir"; } 2>&3; down "$dir"' ERR

    mungekey --create --keyfile="$dir/munge/munge.key" >/dev/null 2>&1 \
        || die "mungekey --create failed"
    daemon munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed" </dev/null >>"$dir/log/munged.log" 2>&1

    local ports ctld_port hw i host
    mapfile -t ports < <(free_ports $((nodes + 1)))
    ctld_port=${ports[0]}
    host=$(hostname -s)
    # The node's real shape, minus its name and uptime; every simulated node gets it.
    hw=$(slurmd -C | head -1 | tr ' ' '\n' | grep -Ev '^(NodeName|UpTime)=' | tr '\n' ' ')

    {
        echo "ClusterName=deepdem"
        echo "SlurmctldHost=$host(127.0.0.1)"
        echo "SlurmctldPort=$ctld_port"
        echo "SlurmUser=root"
        echo "SlurmdUser=root"
        echo "AuthType=auth/munge"
        echo "CredType=cred/munge"
        # cred_expire also sets how long a requeued job waits before it may start again
        # (default 120 s).
        echo "AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5"
        echo "StateSaveLocation=$dir/state"
        echo "SlurmdSpoolDir=$dir/spool/%n"
        echo "SlurmctldPidFile=$dir/run/slurmctld.pid"
        echo "SlurmdPidFile=$dir/run/slurmd-%n.pid"
        echo "SlurmctldLogFile=$dir/log/slurmctld.log"
        echo "SlurmdLogFile=$dir/log/slurmd-%n.log"
        # Two slurmd on one host share /tmp: PMIx's per-node folders would clash.
        echo "TmpFS=$dir/tmp/%n"
        echo "ProctrackType=proctrack/linuxproc"
        echo "TaskPlugin=task/none"
        echo "SelectType=select/cons_tres"
        echo "SelectTypeParameters=CR_Core"
        # An impossible request fails at submission instead of pending forever.
        echo "EnforcePartLimits=ALL"
        echo "SchedulerType=sched/backfill"
        echo "SchedulerParameters=sched_interval=1,bf_interval=1"
        echo "MpiDefault=none"
        echo "ReturnToService=2"
        echo "KillWait=10"
        echo "JobCompType=jobcomp/none"
        echo "AccountingStorageType=accounting_storage/none"
        echo "JobAcctGatherType=jobacct_gather/none"
        for ((i = 1; i <= nodes; i++)); do
            echo "NodeName=node$i NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[$i]} $hw State=UNKNOWN"
        done
        echo "PartitionName=main Nodes=node[1-$nodes] Default=YES MaxTime=INFINITE State=UP"
    } >"$dir/slurm.conf"
    # slurmd will not start without a cgroup.conf, even with no cgroup plugin configured.
    echo "CgroupPlugin=cgroup/v1" >"$dir/cgroup.conf"
    for ((i = 1; i <= nodes; i++)); do mkdir -p "$dir/tmp/node$i" "$dir/spool/node$i"; done

    export SLURM_CONF="$dir/slurm.conf"
    daemon slurmctld -c -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmctld.log" 2>&1
    for ((i = 1; i <= nodes; i++)); do
        daemon slurmd -N "node$i" -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmd-node$i.log" 2>&1
    done

    local idle=0
    for _ in $(seq 300); do
        idle=$(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | grep -c . || true)
        [ "$idle" -ge "$nodes" ] && break
        sleep 0.1
    done
    if [ "$idle" -lt "$nodes" ]; then
        sinfo -N -l >&2 || true
        false
    fi
    trap - ERR
    exec 3>&-
    echo "cluster.sh: $nodes node(s) idle; export SLURM_CONF=$dir/slurm.conf" >&2
    echo "$dir"
}

down() {
    local dir=${1:-}
    [ -n "$dir" ] || die "down wants the cluster's folder"
    [ -d "$dir" ] || return 0
    [ -f "$dir/slurm.conf" ] || die "$dir is not a cluster folder"
    export SLURM_CONF="$dir/slurm.conf"
    # Jobs first, so no slurmstepd or task outlives its slurmd.
    if [ -f "$dir/run/slurmctld.pid" ] && scancel --full --quiet --user=root 2>/dev/null; then
        for _ in $(seq 100); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    # munged last: the others talk to it while they stop.
    local pids
    mapfile -t pids < <(live_pids slurmd "$dir"/run/slurmd-*.pid; live_pids slurmctld "$dir/run/slurmctld.pid")
    stop_pids "${pids[@]}"
    mapfile -t pids < <(live_pids munged "$dir/run/munged.pid")
    stop_pids "${pids[@]}"
    if [ "${KEEP:-0}" = 1 ]; then
        echo "cluster.sh: stopped; kept $dir" >&2
    else
        rm -rf "$dir"
    fi
}

case ${1:-} in
    up) shift; up "$@" ;;
    down) shift; down "$@" ;;
    logs) [ -n "${2:-}" ] || die "logs wants the cluster's folder"; print_logs "$2" ;;
    *) die "usage: cluster.sh up [--nodes N] | down FOLDER | logs FOLDER" ;;
esac
