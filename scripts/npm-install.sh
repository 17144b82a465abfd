#!/usr/bin/env bash
# Installs the Node.js packages of a directory as its package-lock.json pins
# them, skipping the install when node_modules already matches the lock file.
#
# `npm install`, not `npm ci`: buf ships one optional package per platform and
# the npm registry this project is built against lacks the macOS and Windows
# ones, so the lock file cannot list them and `npm ci` refuses it as out of
# sync. `npm install` with an unchanged package.json keeps to the lock file.
#
#   scripts/npm-install.sh .     # buf, for protobuf lint
#   scripts/npm-install.sh web   # the browser app's toolchain
set -euo pipefail
dir=${1:?usage: scripts/npm-install.sh DIR}
cd "$dir"
installed=node_modules/.package-lock.json
if [ -f "$installed" ] && [ ! package-lock.json -nt "$installed" ]; then
  exit 0
fi
npm install --no-audit --no-fund --loglevel=error
