#!/usr/bin/env bash
# Mints a development token for the gateway (HS256 with GATEWAY_AUTH__HS256_SECRET,
# or the dev secret):  scripts/token.sh ROLE [SUBJECT_UUID] [TTL_SECS]
# ROLE is customer, driver or analyst; the subject defaults to a new UUID.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet -p gateway-grpc-web -- token "$@"
