#!/usr/bin/env bash
# tests/browser/install-mqttjs.sh DIR - installs MQTT.js (npm package mqtt,
# a test-only dependency) under DIR/node_modules, unless its browser bundle
# is already there.  Called by the browser tests with a directory in the
# build tree; nothing is installed into the source tree.
set -euo pipefail
MQTTJS_VERSION=5.16.0
dir=${1:?usage: install-mqttjs.sh DIR}
bundle="$dir/node_modules/mqtt/dist/mqtt.min.js"
if [ -f "$bundle" ] && grep -q "\"version\": \"$MQTTJS_VERSION\"" "$dir/node_modules/mqtt/package.json"; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-mqttjs.sh: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error \
  "mqtt@$MQTTJS_VERSION" >&2
test -f "$bundle"
