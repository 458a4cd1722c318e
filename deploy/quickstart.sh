#!/usr/bin/env bash
# deploy/quickstart.sh - build petreld and run it in the foreground on
# 127.0.0.1:1883 with its data in ./data (at the repository root).
# Installs missing build dependencies with apt-get first.  Extra arguments
# are passed to petreld (e.g. -v for more logging).  Ctrl-C stops it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

deploy/install-deps.sh build

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
ninja -C build
mkdir -p data

echo "==> starting petreld on 127.0.0.1:1883 (Ctrl-C to stop)"
exec build/broker/petreld --listen 127.0.0.1:1883 --data-dir ./data "$@"
