#!/usr/bin/env bash
# Creates the development identity keys under .run/keys/ when missing: an
# Ed25519 pair for the gateway (it signs the customers, drivers and analysts it
# authenticated) and one for call-svc (it signs itself as a service). The
# services' defaults point at these files; production mounts its own.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v openssl >/dev/null; then
  echo "installing openssl (Debian package)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi

mkdir -p .run/keys
chmod 700 .run/keys
for name in gateway call-svc; do
  key=.run/keys/${name}.key.pem
  if [ ! -s "$key" ] || [ ! -s ".run/keys/${name}.pub.pem" ]; then
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$key")
    openssl pkey -in "$key" -pubout -out ".run/keys/${name}.pub.pem"
    echo "created the development identity key of $name in .run/keys/"
  fi
done
