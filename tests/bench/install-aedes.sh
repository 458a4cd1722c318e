#!/usr/bin/env bash
# tests/bench/install-aedes.sh DIR - installs the npm broker Aedes and the
# ws WebSocket server (compare.sh's WebSocket peer, tests/bench/aedes_ws.js)
# under DIR/node_modules, unless those versions are there already.  compare.sh
# calls it with a directory in the build tree; nothing goes into the source
# tree.  Debian's nodejs and npm run it (deploy/install-deps.sh test).
set -euo pipefail
AEDES_VERSION=0.51.3
WS_VERSION=8.18.3
dir=${1:?usage: install-aedes.sh DIR}
have() {
  grep -q "\"version\": \"$2\"" "$dir/node_modules/$1/package.json" 2>/dev/null
}
if have aedes "$AEDES_VERSION" && have ws "$WS_VERSION"; then
  exit 0
fi
command -v npm >/dev/null || { echo "install-aedes.sh: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dir"
npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error \
  "aedes@$AEDES_VERSION" "ws@$WS_VERSION" >&2
have aedes "$AEDES_VERSION" && have ws "$WS_VERSION"
