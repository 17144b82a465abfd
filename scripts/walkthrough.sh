#!/usr/bin/env bash
# A whole trip through the public gateway of a running system (scripts/run.sh),
# with minted tokens and buf curl over gRPC reflection. The README shows the
# same commands.
set -euo pipefail
cd "$(dirname "$0")/.."

GW=http://127.0.0.1:8080
# No call may hang the walk-through (it is also the test suite's smoke test).
export BUF_TIMEOUT=${BUF_TIMEOUT:-30s}
CUSTOMER=$(scripts/token.sh customer)
DRIVER=$(scripts/token.sh driver)
ANALYST=$(scripts/token.sh analyst)

# rpc TOKEN METHOD JSON: one gRPC call through the gateway.
rpc() {
  node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge \
    -H "authorization: Bearer $1" -d "$3" "$GW/$2"
}
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n 1; }

echo "== 1. a driver registers, goes online at Seoul Station"
rpc "$DRIVER" taxi.dispatch.v1.DispatchService/RegisterDriver '{"name": "Kim Gisa", "licensePlate": "12가3456", "taxiType": "TAXI_TYPE_NORMAL"}' >/dev/null
rpc "$DRIVER" taxi.dispatch.v1.DispatchService/SetOnline '{}' >/dev/null
rpc "$DRIVER" taxi.dispatch.v1.DispatchService/UpdateLocation '{"location": {"latitude": 37.5547, "longitude": 126.9707}}' | field status

echo "== 2. a customer calls a taxi to Gangnam"
reply=$(rpc "$CUSTOMER" taxi.call.v1.CallService/RequestCall '{
  "pickup": {"latitude": 37.5547, "longitude": 126.9707},
  "dropoff": {"latitude": 37.4979, "longitude": 127.0276},
  "taxiType": "TAXI_TYPE_NORMAL", "idempotencyKey": "walkthrough-1", "paymentMethod": "tok_visa"}')
CALL_ID=$(echo "$reply" | field callId)
echo "call $CALL_ID quoted $(echo "$reply" | field quotedFareKrw) KRW"

echo "== 3. the driver accepts the offer: assigned, advance charged"
# Only a driver holding an offer may accept, and the offer reaches dispatch
# through the event stream a moment after the request: wait for it, as the
# driver's app waits for WatchOffers.
for _ in $(seq 50); do
  if reply=$(rpc "$DRIVER" taxi.call.v1.CallService/AcceptCall "{\"callId\": \"$CALL_ID\"}" 2>&1); then
    break
  fi
  echo "$reply" | grep -q "no live offer" || { echo "$reply" >&2; exit 1; }
  sleep 0.2
done
echo "$reply" | field status

echo "== 4. the taxi departs"
rpc "$DRIVER" taxi.call.v1.CallService/StartTrip "{\"callId\": \"$CALL_ID\"}" | field status

echo "== 5. the taxi arrives after 12 km: final settlement"
reply=$(rpc "$DRIVER" taxi.call.v1.CallService/CompleteTrip "{\"callId\": \"$CALL_ID\", \"distanceM\": 12000}")
echo "$(echo "$reply" | field status), final fare $(echo "$reply" | field finalFareKrw) KRW"

echo "== 6. the customer checks the call"
rpc "$CUSTOMER" taxi.call.v1.CallService/GetCall "{\"callId\": \"$CALL_ID\"}"

echo "== 7. the ledger: advance + final charge or refund = final fare"
rpc "$CUSTOMER" taxi.payment.v1.PaymentService/ListPayments "{\"callId\": \"$CALL_ID\"}"

echo "== 8. the customer's mypage, from the read model (waits until it has version 4)"
rpc "$CUSTOMER" taxi.query.v1.QueryService/GetCallView "{\"callId\": \"$CALL_ID\", \"minVersion\": 4}" | field status
rpc "$CUSTOMER" taxi.query.v1.QueryService/ListMyCalls '{"pageSize": 10}' | field callId

echo "== 9. the analysts' dashboard for this hour"
FROM=$(date -u +%Y-%m-%dT%H:00:00Z)
TO=$(date -u -d '+1 hour' +%Y-%m-%dT%H:00:00Z)
rpc "$ANALYST" taxi.query.v1.QueryService/GetDashboard "{\"from\": \"$FROM\", \"to\": \"$TO\", \"bucket\": \"BUCKET_HOUR\"}" |
  sed -n '/"totals"/,/"byTaxiType"/p'

echo "== 10. what the gateway refuses: another customer's call, no token, an internal method"
rpc "$(scripts/token.sh customer)" taxi.call.v1.CallService/GetCall "{\"callId\": \"$CALL_ID\"}" 2>&1 | field code || true
node_modules/.bin/buf curl --protocol grpc --http2-prior-knowledge -d '{}' "$GW/taxi.dispatch.v1.DispatchService/GetDriver" 2>&1 | field code || true
# Reflection does not list internal methods, so the local schema is needed to even send one.
node_modules/.bin/buf curl --schema proto --protocol grpc --http2-prior-knowledge -H "authorization: Bearer $CUSTOMER" \
  -d '{}' "$GW/taxi.payment.v1.PaymentService/ChargeAdvance" 2>&1 | field code || true
