#!/usr/bin/env bash
# What metrics and tracing cost: the whole-trip load and the gateway read,
# each with telemetry off (TAXI_RPC_METRICS=off, no OTLP endpoint) and on
# (per-RPC metrics, traces sampled at 10 % and exported to a counting OTLP
# sink), alternating off/on/off/on in one run so that the machine's noise
# falls on both sides. Prints every figure and the on/off ratios: the
# throughput, and the CPU time the services spent per trip and per read
# (from /proc), which another busy process on the machine disturbs far less.
#
#   bash scripts/bench-telemetry.sh [TRIP_SECONDS] [GATEWAY_SECONDS]
#
# Release build; the system is started and stopped by the script (it uses
# run.sh's ports, so nothing else may run there).
set -euo pipefail
cd "$(dirname "$0")/.."

trip_secs=${1:-15}
gateway_secs=${2:-6}
target=${CARGO_TARGET_DIR:-target}
export TAXI_PROFILE=release
export GATEWAY_LIMITS__RATE_PER_SECOND=1000000 GATEWAY_LIMITS__BURST=1000000
cargo build --release --bins --quiet
loadgen="$target/release/loadgen"
out=$(mktemp -d)

"$loadgen" otlp-sink 127.0.0.1:4317 >"$out/sink.log" 2>&1 &
sink=$!
trap 'kill "$sink" 2>/dev/null || true; bash scripts/stop.sh >/dev/null 2>&1 || true' EXIT

run_mode() {
  local mode=$1 round=$2
  (
    if [ "$mode" = on ]; then
      export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317
      export OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1
    else
      export TAXI_RPC_METRICS=off
      unset OTEL_EXPORTER_OTLP_ENDPOINT
    fi
    bash scripts/run.sh --detach >"$out/run-$mode-$round.log" 2>&1
  )
  echo "== telemetry $mode, round $round"
  local services="call-svc dispatch-svc payment-svc query-svc gateway-grpc-web"
  local before
  before=$(cpu_ms $services)
  "$loadgen" trips "$trip_secs" 8 | tee "$out/trips-$mode-$round.txt"
  echo "cpu_ms $(( $(cpu_ms $services) - before ))" >>"$out/trips-$mode-$round.txt"
  local gateway_before query_before
  gateway_before=$(cpu_ms gateway-grpc-web)
  query_before=$(cpu_ms query-svc)
  "$loadgen" gateway "$gateway_secs" 32 | tee "$out/gateway-$mode-$round.txt"
  echo "gateway_cpu_ms $(( $(cpu_ms gateway-grpc-web) - gateway_before ))" >>"$out/gateway-$mode-$round.txt"
  echo "query_cpu_ms $(( $(cpu_ms query-svc) - query_before ))" >>"$out/gateway-$mode-$round.txt"
  bash scripts/stop.sh >/dev/null
}

# cpu_ms NAME...: user + system CPU time so far of the services run.sh
# started, in milliseconds.
cpu_ms() {
  local total=0 ticks
  ticks=$(getconf CLK_TCK)
  for name in "$@"; do
    local stat
    stat=$(cat "/proc/$(cat ".run/${name}.pid")/stat")
    # utime and stime are fields 14 and 15, after the command in parentheses.
    read -r -a fields <<<"${stat##*) }"
    total=$(( total + (fields[11] + fields[12]) * 1000 / ticks ))
  done
  echo "$total"
}

for round in 1 2; do
  run_mode off "$round"
  run_mode on "$round"
done
kill -TERM "$sink"
wait "$sink" || true
cat "$out/sink.log"

# The mean of both rounds per mode, and on / off.
python3 - "$out" <<'EOF'
import pathlib, re, sys
out = pathlib.Path(sys.argv[1])
def number(pattern, text):
    return float(re.search(pattern, text).group(1))
def figures(mode):
    rows = {}
    def add(key, value):
        rows.setdefault(key, []).append(value)
    for f in sorted(out.glob(f"trips-{mode}-*.txt")):
        text = f.read_text()
        trips = number(r"trips: (\d+) ", text)
        add("trips/s", number(r"trips: \d+ \(([\d.]+)/s\)", text))
        add("command p99 ms", number(r"command latency\s+p50\s+[\d.]+ ms\s+p99\s+([\d.]+) ms", text))
        add("CPU ms per trip", number(r"cpu_ms (\d+)", text) / trips)
    for f in sorted(out.glob(f"gateway-{mode}-*.txt")):
        text = f.read_text()
        direct = number(r"direct to query-svc.*\((\d+) requests\)", text)
        through = number(r"through the gateway.*\((\d+) requests\)", text)
        add("direct reads/s", number(r"direct to query-svc\s+(\d+) req/s", text))
        add("gateway reads/s", number(r"through the gateway\s+(\d+) req/s", text))
        add("gateway CPU µs/read", number(r"gateway_cpu_ms (\d+)", text) * 1000 / through)
        add("query CPU µs/read", number(r"query_cpu_ms (\d+)", text) * 1000 / (direct + through))
    return {key: sum(values) / len(values) for key, values in rows.items()}
off, on = figures("off"), figures("on")
print(f"{'':22}{'off':>10}{'on':>10}{'on/off':>9}")
for key in off:
    print(f"{key:22}{off[key]:>10.2f}{on[key]:>10.2f}{on[key] / off[key]:>9.3f}")
EOF
