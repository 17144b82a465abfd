#!/usr/bin/env bash
# The full test suite: protobuf lint, the alert rules' check, a smoke run of
# the whole system with the README's walk-through and the browser app in
# headless Chromium, then every crate's unit, integration and end-to-end
# tests against real PostgreSQL (installed and started if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-infra.sh

echo "== buf lint"
bash scripts/npm-install.sh .
node_modules/.bin/buf lint
echo "buf lint: ok"

echo "== promtool: the alert rules and the scrape config in deploy/prometheus"
promtool check rules deploy/prometheus/alerts.yml
promtool check config deploy/prometheus/prometheus.yml

# Tests create one database, NATS prefix and Redis key prefix each; remove
# what a previous run left behind.
psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'taxi\_test\_%'" |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null; done

cargo run --quiet -p eventbus --example purge_test_streams
redis-cli -h 127.0.0.1 --scan --pattern 'test:*' | xargs -r -n 500 redis-cli -h 127.0.0.1 unlink >/dev/null

echo "== smoke: the whole system, and the README's walk-through against it"
bash scripts/run.sh --detach
trap 'bash scripts/stop.sh >/dev/null' EXIT
walk=$(bash scripts/walkthrough.sh)
echo "$walk" | grep -q '"netPaidKrw": "12800"' || { echo "$walk"; echo "walk-through did not settle the trip" >&2; exit 1; }
echo "$walk" | sed -n '/== 8/,/== 9/p' | grep -q CALL_STATUS_COMPLETED ||
  { echo "$walk"; echo "the mypage view did not reach COMPLETED" >&2; exit 1; }
# What an operator's Prometheus would scrape: every admin port answers, and
# the trip just made shows in each service's own figures.
for check in "9101 RequestCall" "9102 AssignDriver" "9103 ChargeAdvance" "9104 GetCallView" "8081 RequestCall"; do
  read -r port method <<<"$check"
  metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")
  grep -q "grpc_server_handled_total{.*grpc_method=\"$method\".*grpc_code=\"OK\"" <<<"$metrics" ||
    { echo "$metrics"; echo "the metrics on port $port do not show an answered $method" >&2; exit 1; }
done
echo "metrics: every admin port shows the trip"

echo "== browser: the web app against the running system, in headless Chromium"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium (Debian package)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# scripts/run.sh built the app and installed web/node_modules (playwright-core).
(cd web && node --test tests/e2e.mjs)
bash scripts/stop.sh
trap - EXIT
echo "smoke: a whole trip completed, settled and projected to the mypage view, by the API and in the browser"

echo "== cargo tests"
# The tracing test runs the services' own binaries as processes (run.sh built
# them above; build again in case the profile differs).
cargo build --bins --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  # Without nextest's per-test time limit, bound the whole run instead.
  timeout 75m cargo test --workspace --no-fail-fast "$@"
fi
