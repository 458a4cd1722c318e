#!/usr/bin/env bash
# deploy/install-deps.sh - installs the Debian packages Petrel needs for the
# given purposes, only those that are missing (apt-get update first, then
# apt-get install --no-install-recommends).  Used by deploy/quickstart.sh
# (build) and tests/run.sh (build test); nothing is done when all are there.
#
# Usage: deploy/install-deps.sh PURPOSE...
#   build   compile petreld, libpetrel and the petrel CLI
#   test    run every meson test suite (tests/run.sh), the Debian package
#           and the system that boots it (tests/deploy) included
# Not root: through sudo if there is one; else it names what is missing and
# exits 1.
set -euo pipefail

BUILD=(
  meson ninja-build pkg-config gcc
  libevent-dev libsqlite3-dev libssl-dev libcmocka-dev libsystemd-dev
  libnats-dev libwslay-dev libhttp-parser-dev
  libjansson-dev
)
TEST=(
  mosquitto mosquitto-clients python3-paho-mqtt
  nats-server
  clang libclang-rt-14-dev
  systemd strace groff-base man-db openssl
  # browser tests (tests/browser): headless Chromium driven by Selenium;
  # MQTT.js comes from npm (tests/browser/install-mqttjs.sh)
  chromium chromium-driver python3-selenium
  nodejs npm # MQTT.js, and compare.sh's WebSocket peer Aedes (tests/bench/install-aedes.sh)
  prometheus # promtool checks /metrics (tests/integration/test_http_metrics.py)
  # the Debian package and the system that boots it (tests/deploy)
  dpkg-dev lintian debootstrap systemd-container
  # the dashboard's browser test (tests/browser): headless Chromium, Selenium
  chromium chromium-driver python3-selenium
)

if (($# == 0)); then
  echo "usage: $0 build|test..." >&2
  exit 2
fi
wanted=()
for purpose in "$@"; do
  case $purpose in
    build) wanted+=("${BUILD[@]}") ;;
    test) wanted+=("${TEST[@]}") ;;
    *)
      echo "$0: unknown purpose '$purpose' (build, test)" >&2
      exit 2
      ;;
  esac
done

# A tool may come from outside Debian: NodeSource's nodejs package carries
# its own npm and conflicts with Debian's npm package, so nodejs and npm are
# wanted only when the command itself is missing.
declare -A by_command=([nodejs]=node [npm]=npm)
missing=()
for p in "${wanted[@]}"; do
  if [ -n "${by_command[$p]:-}" ] && command -v "${by_command[$p]}" >/dev/null 2>&1; then
    continue
  fi
  if [[ " ${missing[*]} " == *" $p "* ]]; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
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
