#!/usr/bin/env bash
# Installs (Debian's slurm-wlm and munge) and starts a single-node Slurm
# cluster on this machine for suanwang's Slurm executor tests and benchmarks:
# munged, slurmctld and slurmd, no systemd, no cgroups, no slurmdbd. The node
# is this host's short hostname with nproc CPUs (SUANWANG_SLURM_CPUS
# overrides), a bit less memory than the machine has, and 2 fake GPUs declared
# as GRES backed by empty files. Run as root; idempotent: a second run leaves
# a running cluster with the same configuration alone.
#
# Accounting: without slurmdbd, `sacct` has no data ("accounting storage is
# disabled"), so job state, exit code, elapsed time and allocated TRES come
# from slurmctld itself (`scontrol show job`, kept for MinJobAge after the
# end) and, after that, from the jobcomp/filetxt completion log
# (/var/log/slurm/jobcomp.log, same key=value format).
#
# Stop it with: kill $(cat /run/slurmd.pid) $(cat /run/slurmctld.pid)
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "slurm.sh: run as root" >&2
    exit 1
fi

# 1. Packages, only when missing.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "installing slurm-wlm and munge (apt-get)..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge >&2
fi

# 2. munge: key, directories, daemon.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=128 count=1 status=none of=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
munge -n | unmunge >/dev/null

# 3. Configuration.
host=$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)
cpus=${SUANWANG_SLURM_CPUS:-$(nproc)}
mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
# Leave 5 % (at least 256 MB) to the system.
real_mb=$(( mem_mb - (mem_mb / 20 > 256 ? mem_mb / 20 : 256) ))
[ "$real_mb" -gt 0 ] || real_mb=$mem_mb

install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /var/lib/fakegpu
# Fake GPU device files. slurmd wants character devices (a plain file works
# for counting but logs an error and sets no CUDA_VISIBLE_DEVICES), so they
# are copies of /dev/null (1,3) and /dev/zero (1,5): nothing to misuse.
minor=(3 5)
changed=0
for i in 0 1; do
    f=/var/lib/fakegpu/gpu$i
    [ -c "$f" ] && continue
    rm -f "$f"
    changed=1
    mknod -m 0600 "$f" c 1 "${minor[$i]}" 2>/dev/null || {
        echo "slurm.sh: cannot mknod $f (no CAP_MKNOD?); using an empty file" >&2
        touch "$f"
    }
done

conf=$(mktemp)
gres=$(mktemp)
trap 'rm -f "$conf" "$gres"' EXIT
cat >"$conf" <<EOF
# Written by suanwang scripts/slurm.sh: a single-node test cluster.
ClusterName=suanwang
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
MailProg=/bin/true
MpiDefault=none
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No systemd, no cgroups.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
# Accounting without slurmdbd: per-job usage is gathered, sacct has no store,
# so finished jobs are read from slurmctld (kept MinJobAge seconds) and then
# from the completion log.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MinJobAge=3600
MaxJobCount=100000
SchedulerType=sched/backfill
KillWait=5
InactiveLimit=0
GresTypes=gpu
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mb} Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
cat >"$gres" <<EOF
# Written by suanwang scripts/slurm.sh: 2 fake GPUs backed by empty files.
NodeName=${host} Name=gpu File=/var/lib/fakegpu/gpu[0-1] Flags=nvidia_gpu_env
EOF

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! cmp -s "$conf" /etc/slurm/slurm.conf || ! cmp -s "$gres" /etc/slurm/gres.conf; then
    changed=1
    install -m 0644 "$conf" /etc/slurm/slurm.conf
    install -m 0644 "$gres" /etc/slurm/gres.conf
fi

# 4. Daemons: restart on a changed configuration, start when not running.
if [ "$changed" = 1 ]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if alive "$pidfile"; then
            pid=$(cat "$pidfile")
            kill "$pid"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
fi
if ! alive /run/slurmctld.pid; then
    /usr/sbin/slurmctld
fi
up=0
for _ in $(seq 1 100); do
    if scontrol ping 2>/dev/null | grep -q "is UP"; then up=1; break; fi
    alive /run/slurmctld.pid || break
    sleep 0.2
done
if [ "$up" != 1 ]; then
    echo "slurm.sh: slurmctld did not come up" >&2
    tail -n 20 /var/log/slurm/slurmctld.log >&2 || true
    exit 1
fi
if ! alive /run/slurmd.pid; then
    /usr/sbin/slurmd -N "$host"
fi

# 5. Wait for the node to be idle (or busy with earlier jobs).
state=""
for i in $(seq 1 150); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1 || true)
    case "$state" in
        idle | mixed | allocated) break ;;
        down* | drain* | fail* | inval*)
            # A restarted node may come back down or drained: resume it.
            [ $((i % 10)) = 0 ] && scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
done
case "$state" in
    idle | mixed | allocated) ;;
    *)
        echo "slurm.sh: node $host is '$state', not idle; see /var/log/slurm/" >&2
        sinfo -N -l >&2 || true
        tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        exit 1
        ;;
esac
echo "slurm: $(sinfo -V) node=$host state=$state cpus=$cpus memory_mb=$real_mb gres=gpu:2 partition=main"
