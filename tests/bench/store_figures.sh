#!/usr/bin/env bash
# tests/bench/store_figures.sh - figures of petreld's durable store, measured
# with real processes on 127.0.0.1 (see store_figures.py for what and how):
#   - QoS 1 publish rate, 1 publisher + 1 online persistent subscriber,
#     64-byte payloads, durability = process and = power, and mosquitto
#     (persistence true) for reference, with the ratio;
#   - drain rate of 100,000 messages queued for an offline persistent session
#     (and mosquitto);
#   - start-up time and broker RSS with 1,000,000 queued messages in
#     petrel.db, and RSS while a subscriber drains part of that queue.
#
# Usage: tests/bench/store_figures.sh [--quick] [--json FILE] [--n N]
#            [--drain N] [--rows N] [--starts K] [--no-mosquitto]
#   --quick   small counts, well under a minute (a smoke test)
#   --json    also write the results as JSON to FILE (else a JSON line at the end)
# Environment: PETRELD=path uses that binary; otherwise an optimized build is
# made in build-bench/ (meson, buildtype=release).
# Prints one human-readable line per figure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH_DIR=$ROOT/build-bench

if [ -z "${PETRELD:-}" ]; then
  if [ ! -f "$BENCH_DIR/meson-private/coredata.dat" ]; then
    meson setup "$BENCH_DIR" -Dbuildtype=release >/dev/null
  fi
  ninja -C "$BENCH_DIR" broker/petreld >/dev/null
  PETRELD=$BENCH_DIR/broker/petreld
fi
mkdir -p "$BENCH_DIR"
CLIENT=$BENCH_DIR/mqtt_bench
if [ ! -x "$CLIENT" ] || [ "$ROOT/tests/bench/mqtt_bench.c" -nt "$CLIENT" ]; then
  ${CC:-cc} -O2 -Wall -Wextra -o "$CLIENT" "$ROOT/tests/bench/mqtt_bench.c"
fi
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  echo "note: mosquitto not installed, reference figures skipped" >&2
  set -- "$@" --no-mosquitto
fi

exec /usr/bin/python3 "$ROOT/tests/bench/store_figures.py" \
  --petreld "$PETRELD" --bench "$CLIENT" "$@"
