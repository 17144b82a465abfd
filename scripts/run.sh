#!/usr/bin/env bash
# Runs the whole system on this machine: installs and starts PostgreSQL, Redis
# and NATS (JetStream) when missing, builds the services, starts call-svc,
# dispatch-svc, payment-svc, query-svc and the public gateway-grpc-web, waits
# until each reports SERVING, and prints where they listen. With Node.js on the
# machine it also builds the browser app (web/), which the gateway serves on
# http://127.0.0.1:8081 with development sign-in (GATEWAY_DEV_TOKENS=true).
# Ctrl-C stops everything.
#
#   scripts/run.sh                # foreground; logs in .run/logs/
#   scripts/run.sh --detach       # leave the services running; stop with scripts/stop.sh
#   scripts/run.sh --prometheus   # also Prometheus on :9090, scraping every service
#                                 # with deploy/prometheus (alerts included)
#   TAXI_PROFILE=release scripts/run.sh   # optimised build (for benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."

detach=""
prometheus="${TAXI_PROMETHEUS:-}"
for arg in "$@"; do
  case "$arg" in
    --detach) detach=1 ;;
    --prometheus) prometheus=1 ;;
    *) echo "usage: scripts/run.sh [--detach] [--prometheus]" >&2; exit 2 ;;
  esac
done

bash scripts/ensure-infra.sh
bash scripts/npm-install.sh .
bash scripts/dev-keys.sh

DB_URL=${TAXI_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/taxi}
if ! psql "${DB_URL%/*}/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = '${DB_URL##*/}'" | grep -q 1; then
  psql "${DB_URL%/*}/postgres" -qc "CREATE DATABASE ${DB_URL##*/}"
fi

if command -v npm >/dev/null; then
  echo "building the browser app (web/)"
  if ! out=$(bash scripts/npm-install.sh web 2>&1 && cd web && npm run build 2>&1); then
    echo "$out" >&2
    echo "error: the browser app did not build" >&2
    exit 1
  fi
else
  echo "warning: no Node.js/npm here, so the browser app (web/) is not built; the API still works" >&2
fi

PROFILE=${TAXI_PROFILE:-debug}
echo "building the services ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --bins --quiet
else
  cargo build --bins --quiet
fi

mkdir -p .run/logs
bash scripts/stop.sh >/dev/null 2>&1 || true

# start NAME PORT [VAR=VALUE ...]: runs a service in the background.
start() {
  local name=$1 port=$2
  shift 2
  env "$@" "${CARGO_TARGET_DIR:-target}/${PROFILE}/${name}" >".run/logs/${name}.log" 2>&1 &
  echo $! >".run/${name}.pid"
}

start dispatch-svc 50052 DISPATCH_LISTEN_ADDR=127.0.0.1:50052 "DISPATCH_DATABASE__URL=${DB_URL}"
start payment-svc 50053 PAYMENT_LISTEN_ADDR=127.0.0.1:50053 "PAYMENT_DATABASE__URL=${DB_URL}"
start call-svc 50051 CALL_LISTEN_ADDR=127.0.0.1:50051 "CALL_DATABASE__URL=${DB_URL}" \
  CALL_DISPATCH__URL=http://127.0.0.1:50052 CALL_PAYMENT__URL=http://127.0.0.1:50053
start query-svc 50054 QUERY_LISTEN_ADDR=127.0.0.1:50054
# Development mode: the app signs in through POST /dev/token (never in production).
start gateway-grpc-web 8080 GATEWAY_LISTEN_ADDR=127.0.0.1:8080 GATEWAY_HTTP_ADDR=127.0.0.1:8081 \
  "GATEWAY_DEV_TOKENS=${GATEWAY_DEV_TOKENS:-true}"

wait_serving() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    if node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge \
      "http://127.0.0.1:${port}/grpc.health.v1.Health/Check" 2>/dev/null | grep -q SERVING; then
      printf '  %-17s grpc://127.0.0.1:%s  SERVING\n' "$name" "$port"
      return 0
    fi
    if ! kill -0 "$(cat ".run/${name}.pid")" 2>/dev/null; then
      echo "error: $name exited; see .run/logs/${name}.log" >&2
      tail -n 20 ".run/logs/${name}.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "error: $name is not SERVING after 30 s; see .run/logs/${name}.log" >&2
  exit 1
}

echo "the taxi platform is up:"
wait_serving call-svc 50051
wait_serving dispatch-svc 50052
wait_serving payment-svc 50053
wait_serving query-svc 50054
wait_serving gateway-grpc-web 8080
if [ -n "$prometheus" ]; then
  mkdir -p .run/prometheus
  prometheus --config.file=deploy/prometheus/prometheus.yml --storage.tsdb.path=.run/prometheus \
    --web.listen-address=127.0.0.1:9090 >.run/logs/prometheus.log 2>&1 &
  echo $! >.run/prometheus.pid
  for _ in $(seq 1 100); do
    curl -fsS http://127.0.0.1:9090/-/ready >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS http://127.0.0.1:9090/-/ready >/dev/null 2>&1 ||
    { echo "error: Prometheus is not ready after 20 s; see .run/logs/prometheus.log" >&2; exit 1; }
  echo "  prometheus        http://127.0.0.1:9090 (targets: /targets, alerts: /alerts); Grafana: import deploy/grafana/taxi.json"
fi
echo "logs: .run/logs/   walk-through: scripts/walkthrough.sh (or the README)"
echo "the app: http://127.0.0.1:8081"
echo "metrics: http://127.0.0.1:{9101,9102,9103,9104}/metrics (call, dispatch, payment, query) and http://127.0.0.1:8081/metrics (gateway)"
if [ -n "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ]; then
  echo "traces: exported over OTLP to ${OTEL_EXPORTER_OTLP_ENDPOINT}"
else
  echo "traces: off (set OTEL_EXPORTER_OTLP_ENDPOINT to a collector to export them)"
fi

if [ -n "$detach" ]; then
  echo "running in the background; stop with scripts/stop.sh"
  exit 0
fi
trap 'bash scripts/stop.sh; exit 0' INT TERM
echo "press Ctrl-C to stop"
wait
