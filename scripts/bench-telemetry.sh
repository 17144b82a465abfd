#!/usr/bin/env bash
# What metrics and tracing cost: the whole-trip load and the gateway read,
# each with telemetry off (TAXI_RPC_METRICS=off, no OTLP endpoint) and on
# (per-RPC metrics, traces sampled at 10 % and exported to a counting OTLP
# sink), alternating off/on/off/on in one run so that the machine's noise
# falls on both sides. Prints every figure and the on/off ratios.
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
  "$loadgen" trips "$trip_secs" 8 | tee "$out/trips-$mode-$round.txt"
  "$loadgen" gateway "$gateway_secs" 32 | tee "$out/gateway-$mode-$round.txt"
  bash scripts/stop.sh >/dev/null
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
def figures(mode):
    trips, direct, through, p99 = [], [], [], []
    for f in sorted(out.glob(f"trips-{mode}-*.txt")):
        text = f.read_text()
        trips.append(float(re.search(r"trips: \d+ \(([\d.]+)/s\)", text).group(1)))
        p99.append(float(re.search(r"command latency\s+p50\s+[\d.]+ ms\s+p99\s+([\d.]+) ms", text).group(1)))
    for f in sorted(out.glob(f"gateway-{mode}-*.txt")):
        text = f.read_text()
        direct.append(float(re.search(r"direct to query-svc\s+(\d+) req/s", text).group(1)))
        through.append(float(re.search(r"through the gateway\s+(\d+) req/s", text).group(1)))
    mean = lambda xs: sum(xs) / len(xs)
    return {"trips/s": mean(trips), "command p99 ms": mean(p99),
            "direct reads/s": mean(direct), "gateway reads/s": mean(through)}
off, on = figures("off"), figures("on")
print(f"{'':18}{'off':>10}{'on':>10}{'on/off':>9}")
for key in off:
    print(f"{key:18}{off[key]:>10.1f}{on[key]:>10.1f}{on[key] / off[key]:>9.3f}")
EOF
