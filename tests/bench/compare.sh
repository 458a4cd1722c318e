#!/usr/bin/env bash
# tests/bench/compare.sh - Petrel against Mosquitto and NATS (nats-server's
# MQTT listener on JetStream) on this machine, side by side: the scenarios of
# docs/benchmarks.md, each run against every broker in turn (A B C A B C),
# 3 rounds, medians and the ratios Petrel/Mosquitto and Petrel/NATS, with
# the QoS 1 messages acknowledged but never delivered beside each figure;
# then the WebSocket scenarios (Sws*): Petrel over ws:// beside its own TCP
# figures and beside the npm broker Aedes (installed from npm by
# install-aedes.sh into build-bench/aedes, or AEDES_DIR).
# compare.py does the measuring; this script prepares what it needs.
# B1, B1r and B2 are the bridge scenarios (tests/bench/compare_bridge.py).
#
# Usage: tests/bench/compare.sh [--quick] [--rounds N] [--only S1,S3] [-v]
#                               [--no-nats] [--petreld-set KEY=VALUE]...
#        tests/bench/compare.sh --cluster [--duration S] [--rate N]
#   --only Sws  just the WebSocket scenarios
#   --quick   small N, 1 round, about a minute: checks that it runs and
#             reports (tests/run.sh uses it); writes nothing under docs/
#   (full)    about 15 minutes; rewrites the results in docs/benchmarks.md
#             and docs/benchmarks.json
# Environment: PETRELD and PETREL select the binaries; otherwise a release
# build is made in build-bench/ (meson, buildtype=release).
# PETREL_SOURCE_REV names the code measured in the report (default: the git
# commit of this tree).  OUT_DIR puts the JSON and Markdown elsewhere.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH_DIR=$ROOT/build-bench

QUICK=0
for arg in "$@"; do
  [ "$arg" = "--quick" ] && QUICK=1
done

# S6 holds 10,000 connections: the brokers (started from here, so they
# inherit the limit) and petrel bench each need that many descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ] && [ $QUICK = 0 ]; then
  echo "compare: S6 needs more than 10,000 open files; the hard limit is $(ulimit -Hn)" >&2
  exit 1
fi

missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  missing+=(mosquitto)
fi
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  missing+=(nats-server)
fi
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The packaged services would hold ports 1883 and 4222 and a core: not
# needed here (each run starts its own broker on a free port).

if [ -z "${PETRELD:-}" ] || [ -z "${PETREL:-}" ]; then
  if [ ! -f "$BENCH_DIR/meson-private/coredata.dat" ]; then
    meson setup "$BENCH_DIR" -Dbuildtype=release >/dev/null
  fi
  ninja -C "$BENCH_DIR" broker/petreld cli/petrel >/dev/null
  PETRELD=${PETRELD:-$BENCH_DIR/broker/petreld}
  PETREL=${PETREL:-$BENCH_DIR/cli/petrel}
  # Which code was measured, for the report ("-dirty": uncommitted changes).
  if [ -z "${PETREL_SOURCE_REV:-}" ] && rev=$(git rev-parse --short HEAD 2>/dev/null); then
    if [ -n "$(git status --porcelain -- broker client-lib cli meson.build 2>/dev/null)" ]; then
      rev="$rev-dirty"
    fi
    export PETREL_SOURCE_REV=$rev
  fi
fi

# The WebSocket peer: without npm (or the registry) its column is n/a.
AEDES_DIR=${AEDES_DIR:-$BENCH_DIR/aedes}
if ! "$ROOT/tests/bench/install-aedes.sh" "$AEDES_DIR"; then
  echo "compare: Aedes could not be installed; the WebSocket scenarios go on without it" >&2
fi

if [ $QUICK = 1 ]; then
  OUT_DIR=${OUT_DIR:-$(mktemp -d)}
else
  OUT_DIR=${OUT_DIR:-$ROOT/docs}
fi
mkdir -p "$OUT_DIR"

# --cluster: the cluster path instead (tests/bench/cluster_bench.py: three
# nats-servers with JetStream, two nodes; QoS 0 and 1 inside one node and
# across, CPU per message on the publishing node).
if [ "${1:-}" = "--cluster" ]; then
  shift
  PETRELD=$PETRELD PETREL=$PETREL exec /usr/bin/python3 "$ROOT/tests/bench/cluster_bench.py" "$@"
fi

exec /usr/bin/python3 "$ROOT/tests/bench/compare.py" \
  --petreld "$PETRELD" --petrel "$PETREL" --aedes-dir "$AEDES_DIR/node_modules" \
  --json "$OUT_DIR/benchmarks.json" --md "$OUT_DIR/benchmarks.md" "$@"
