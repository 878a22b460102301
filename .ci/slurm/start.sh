#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, with accounting, for tests/test_scale.py.
#
# As root, without systemd: installs Debian's slurmctld/slurmd/slurm-client/munge plus slurmdbd and
# MariaDB if missing, then starts munged, a private MariaDB (own datadir, socket, TCP port 127.0.0.1
# :${SLURM_CI_DB_PORT:-3307}), slurmdbd, slurmctld and slurmd; partition "debug" (default) holds
# this node with all its CPUs. Idempotent: a daemon whose pid file names a live process is left
# alone. Stop everything with .ci/slurm/stop.sh.
#
# Why accounting: submitit (hydra/launcher=slurm) reads job states with `sacct`. Without slurmdbd
# sacct fails, submitit sees state UNKNOWN forever, and a job that died before writing its result
# is waited for forever. With slurmdbd it sees FAILED and the sweep reports the job failed.
set -euo pipefail

STATE=${SLURM_CI_STATE:-/var/lib/resnet-exp-slurm}
DB_PORT=${SLURM_CI_DB_PORT:-3307}
CLUSTER=resnetexp
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# resnet_exp CI single-node cluster (.ci/slurm/start.sh)"

say() { echo "[slurm-ci] $*"; }
die() { echo "[slurm-ci] error: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # seconds, description, command...
  local n=$(( $1 * 5 )) what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up (see $STATE/log/)"
}

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"

need=()
for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge \
            slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  die "$CONF exists and is not ours; not touching a real cluster's configuration"
fi

mkdir -p "$STATE"/{log,run,ctld,spool,db}
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
REAL_MB=$(( MEM_MB > 4096 ? MEM_MB - 2048 : MEM_MB * 3 / 4 ))  # below the total: slurmd checks it

# -- munge -------------------------------------------------------------------------------------
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if ! alive /run/munge/munged.pid; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged --force
fi
wait_for 10 munged sh -c 'munge -n | unmunge'

# -- MariaDB for slurmdbd -------------------------------------------------------------------------
DB_SOCK=$STATE/run/mysqld.sock
chown mysql:mysql "$STATE/db"
if [ ! -d "$STATE/db/mysql" ]; then
  say "initialising MariaDB in $STATE/db"
  mariadb-install-db --user=mysql --datadir="$STATE/db" --auth-root-authentication-method=socket \
    >"$STATE/log/mariadb-install.log" 2>&1
fi
chown mysql:mysql "$STATE/run"
if ! alive "$STATE/run/mysqld.pid"; then
  say "starting MariaDB on 127.0.0.1:$DB_PORT"
  # setsid + nohup: the daemons outlive this script (and CI's shell) until stop.sh
  setsid nohup mariadbd --no-defaults --user=mysql --datadir="$STATE/db" --socket="$DB_SOCK" \
    --pid-file="$STATE/run/mysqld.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
    --skip-name-resolve --innodb-buffer-pool-size=64M --log-error="$STATE/log/mariadb.log" \
    </dev/null >/dev/null 2>&1 &
fi
wait_for 60 MariaDB mariadb --no-defaults --socket="$DB_SOCK" -e 'select 1'
DB_PASS_FILE=$STATE/db-password
[ -s "$DB_PASS_FILE" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DB_PASS_FILE")
DB_PASS=$(cat "$DB_PASS_FILE")
mariadb --no-defaults --socket="$DB_SOCK" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

# -- configuration -------------------------------------------------------------------------------
cat >"$CONF" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=300
# A requeued job (time limit, preemption) may start again cred_expire + 1 s later (default 120):
# 30 keeps the requeue test in tests/test_scale.py short.
AuthInfo=cred_expire=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
chmod 600 "$DBD_CONF"

# -- daemons ---------------------------------------------------------------------------------------
if ! alive "$STATE/run/slurmdbd.pid"; then
  say "starting slurmdbd"
  slurmdbd
fi
wait_for 30 slurmdbd sacctmgr -n list cluster
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if ! alive "$STATE/run/slurmctld.pid"; then
  say "starting slurmctld"
  slurmctld
fi
wait_for 30 slurmctld scontrol ping
if ! alive "$STATE/run/slurmd.pid"; then
  say "starting slurmd ($HOST: $CPUS CPUs, ${REAL_MB} MB)"
  slurmd
fi
node_ready() { sinfo -h -N -o '%T' | grep -Eq '^(idle|mixed|allocated)'; }
wait_for 30 "node $HOST" node_ready
wait_for 30 "accounting (sacct)" sacct -n -X -S now
say "up: $(sinfo -h -o '%P %a %D %T %C')"
