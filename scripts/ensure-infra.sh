#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and NATS (with JetStream) answer on their
# standard loopback ports, installing them from Debian packages and starting
# them when they are missing. Safe to run again and again.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    if port_open "$port"; then return 0; fi
    sleep 0.5
  done
  echo "error: $name did not come up on 127.0.0.1:$port" >&2
  exit 1
}

ensure_postgres() {
  if ! port_open 5432; then
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
      echo "installing PostgreSQL"
      apt_install postgresql postgresql-client
    fi
    echo "starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || $SUDO pg_ctlcluster "$version" main start
    wait_for_port 5432 PostgreSQL
  fi
  # The services connect as postgres over TCP without a password (local development only).
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
    local hba
    hba=$(as_postgres "psql -Atqc 'SHOW hba_file'")
    echo "allowing trust authentication on 127.0.0.1 in $hba"
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_postgres "psql -Atqc 'SELECT pg_reload_conf()'" >/dev/null
    sleep 1
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null
}

# The servers' binaries are needed even when a server already listens: tests
# of outages start redis-server and nats-server processes of their own.
ensure_redis() {
  if ! command -v redis-server >/dev/null; then
    echo "installing Redis"
    apt_install redis-server
  fi
  if port_open 6379; then return; fi
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  wait_for_port 6379 Redis
}

ensure_nats() {
  if ! command -v nats-server >/dev/null; then
    echo "installing NATS"
    apt_install nats-server
  fi
  if port_open 4222; then return; fi
  echo "starting NATS with JetStream"
  local store=${NATS_STORE_DIR:-/var/lib/nats-server}
  $SUDO mkdir -p "$store"
  nohup nats-server -js -a 127.0.0.1 -p 4222 -sd "$store" >"${TMPDIR:-/tmp}/nats-server.log" 2>&1 &
  wait_for_port 4222 NATS
}

# Prometheus and promtool (Debian's prometheus 2.42), for the dashboard and
# alert tests: each test starts a Prometheus of its own on a free port and
# never uses the package's service (which an init system would start on
# :9090; where none runs, as in a container, nothing starts), so it is not
# started here either.
ensure_prometheus() {
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "installing Prometheus"
    apt_install --no-install-recommends prometheus
  fi
}

ensure_postgres
ensure_redis
ensure_nats
ensure_prometheus
echo "infrastructure ready: PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379, NATS 127.0.0.1:4222; prometheus and promtool installed"
