#!/usr/bin/env bash
# Stops the services scripts/run.sh started (SIGTERM: they drain and exit;
# one still running after 10 s is killed).
set -uo pipefail
cd "$(dirname "$0")/.."
for pidfile in .run/*.pid; do
  [ -e "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid"
      echo "killed $(basename "$pidfile" .pid): it did not stop within 10 s"
    else
      echo "stopped $(basename "$pidfile" .pid)"
    fi
  fi
  rm -f "$pidfile"
done
