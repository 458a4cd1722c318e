#!/bin/sh
# Runs a libFuzzer target for a bounded time as a meson test.  The seeds are
# copied to a scratch directory so that new inputs never land in the source
# tree; crash inputs are kept in the artifact directory for the developer.
# usage: run_fuzzer.sh FUZZER SEED_DIR ARTIFACT_DIR [SECONDS]
# PETREL_FUZZ_SECONDS overrides SECONDS for a longer local run.
set -eu

fuzzer=$1
seeds=$2
artifacts=$3
seconds=${PETREL_FUZZ_SECONDS:-${4:-20}}

work=$(mktemp -d "${TMPDIR:-/tmp}/petrel-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/corpus" "$artifacts"
cp "$seeds"/* "$work/corpus/"

# libFuzzer exits non-zero on a crash, a leak, a timeout or an abort(); 1,
# not its default 77, which meson takes for "skipped" and so hid crashes.
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$work/corpus"
