#!/usr/bin/env bash
# Stop the single-node CI cluster that .ci/slurm/start.sh started: each daemon by the PID in its pid
# file (SIGTERM, then SIGKILL after 20 s), waiting until it has exited. Idempotent.
set -uo pipefail

STATE=${SLURM_CI_STATE:-/var/lib/resnet-exp-slurm}

stop() { # name pidfile
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    echo "[slurm-ci] stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[slurm-ci] $name did not exit; SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
  fi
  rm -f "$pidfile"
}

# Jobs first, so slurmd has nothing left to wait for.
command -v scancel >/dev/null && scancel --full --quiet --state=RUNNING,PENDING --user=root 2>/dev/null
stop slurmd "$STATE/run/slurmd.pid"
stop slurmctld "$STATE/run/slurmctld.pid"
stop slurmdbd "$STATE/run/slurmdbd.pid"
stop mariadbd "$STATE/run/mysqld.pid"
stop munged /run/munge/munged.pid
exit 0
