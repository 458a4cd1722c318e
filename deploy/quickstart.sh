#!/usr/bin/env bash
# deploy/quickstart.sh - build petreld and run it in the foreground on
# 127.0.0.1:1883 with its data in ./data (at the repository root).
# Installs missing build dependencies with apt-get first.  Extra arguments
# are passed to petreld (e.g. -v for more logging).  Ctrl-C stops it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
  meson ninja-build pkg-config gcc
  libevent-dev libsqlite3-dev libssl-dev libcmocka-dev libsystemd-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "==> installing missing packages: ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "error: not root and no sudo; please install: ${missing[*]}" >&2
      exit 1
    fi
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
ninja -C build
mkdir -p data

echo "==> starting petreld on 127.0.0.1:1883 (Ctrl-C to stop)"
exec build/broker/petreld --listen 127.0.0.1:1883 --data-dir ./data "$@"
