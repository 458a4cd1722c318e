#!/usr/bin/env bash
# tests/run.sh - the one test command, used by developers and CI (.ci/run).
#
# Installs missing build and test dependencies (Debian packages), then runs
# every meson test suite twice: a normal -Werror build in build-ci/ and an
# ASan+UBSan build in build-asan/.  Exits non-zero if anything fails and ends
# with a one-line summary.  Extra arguments go to `meson test` in both passes
# (e.g. tests/run.sh --suite unit).  PETREL_PASSES="normal" skips the
# sanitizer pass.  Last, tests/bench/compare.sh --quick runs once.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

# ---- dependencies -----------------------------------------------------------
# The packages to build and to run every suite (the lists are in the script).
"$ROOT/deploy/install-deps.sh" build test

# ---- passes -----------------------------------------------------------------
TEST_ARGS=("$@")
SUMMARY=()
TOTAL_OK=0
TOTAL_FAIL=0
TOTAL_SKIP=0
FAILED=0

# setup_dir DIR MESON_OPTIONS...: a fresh configuration of DIR.  The Debian
# tree that tests/deploy/test_nspawn.py boots (DIR/nspawn, made by
# debootstrap) outlives the wipe: it does not depend on the build.
setup_dir() {
  local dir=$1
  shift
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    local keep=""
    if [ -d "$dir/nspawn" ]; then
      keep=$(mktemp -d "$ROOT/.nspawn-keep.XXXXXX")
      mv "$dir/nspawn" "$keep/"
    fi
    local rc=0
    meson setup --wipe "$dir" "$@" || rc=$?
    if [ -n "$keep" ]; then
      mv "$keep/nspawn" "$dir/"
      rmdir "$keep"
    fi
    return "$rc"
  else
    rm -rf "$dir"
    meson setup "$dir" "$@"
  fi
}

# run_pass NAME DIR "MESON_OPTIONS" "TEST_OPTIONS": configure, build, test.
# Never exits; records the result.
run_pass() {
  local name=$1 dir=$2
  local -a setup_opts test_opts
  read -r -a setup_opts <<<"$3"
  read -r -a test_opts <<<"$4"
  local log="$ROOT/$dir/meson-logs/run-sh-output.txt"
  echo
  echo "==> [$name] meson setup $dir ${setup_opts[*]}"
  if ! setup_dir "$dir" "${setup_opts[@]}"; then
    SUMMARY+=("$name: meson setup FAILED")
    FAILED=1
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
    return
  fi
  echo "==> [$name] ninja -C $dir"
  if ! ninja -C "$dir"; then
    SUMMARY+=("$name: build FAILED")
    FAILED=1
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
    return
  fi
  echo "==> [$name] meson test ${test_opts[*]} ${TEST_ARGS[*]}"
  local rc=0
  meson test -C "$dir" --print-errorlogs "${test_opts[@]}" "${TEST_ARGS[@]}" 2>&1 \
    | tee "$log" || rc=$?
  local ok fail skip timeout xpass
  ok=$(awk '/^Ok:/ {print $2}' "$log" | tail -1)
  fail=$(awk '/^Fail:/ {print $2}' "$log" | tail -1)
  skip=$(awk '/^Skipped:/ {print $2}' "$log" | tail -1)
  timeout=$(awk '/^Timeout:/ {print $2}' "$log" | tail -1)
  xpass=$(awk '/^Unexpected Pass:/ {print $3}' "$log" | tail -1)
  ok=${ok:-0} fail=${fail:-0} skip=${skip:-0} timeout=${timeout:-0} xpass=${xpass:-0}
  fail=$((fail + timeout + xpass))
  if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
    fail=1   # meson itself failed (e.g. no tests matched)
  fi
  TOTAL_OK=$((TOTAL_OK + ok))
  TOTAL_FAIL=$((TOTAL_FAIL + fail))
  TOTAL_SKIP=$((TOTAL_SKIP + skip))
  if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then
    FAILED=1
    local names
    names=$(grep -E '^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|UNEXPECTEDPASS|ERROR) ' "$log" \
      | sed -E 's/^ *[0-9]+\/[0-9]+ +//; s/^[^:]+://; s/ +(FAIL|TIMEOUT|UNEXPECTEDPASS|ERROR) .*/ (\1)/' \
      | awk '!seen[$0]++' | paste -sd ',' - | sed 's/,/, /g' || true)
    SUMMARY+=("$name: $ok ok, $fail failed, $skip skipped  <-- FAILED: ${names:-see above}")
  else
    SUMMARY+=("$name: $ok ok, $fail failed, $skip skipped")
  fi
}

PASSES=${PETREL_PASSES:-normal asan}

for pass in $PASSES; do
  case $pass in
    normal)
      run_pass normal build-ci \
        "-Dwerror=true -Dbuildtype=debugoptimized" ""
      ;;
    asan)
      # The fuzz suite already runs under sanitizers in the normal pass.
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_pass asan build-asan \
        "-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true -Dbuildtype=debugoptimized" \
        "--no-suite fuzz --timeout-multiplier 2"
      ;;
    *)
      echo "unknown pass '$pass' in PETREL_PASSES" >&2
      exit 2
      ;;
  esac
done

# ---- benchmark smoke test ---------------------------------------------------
# Petrel and Mosquitto side by side with small N and one round, on the normal
# build (not under ASan): checks that the comparison runs and reports, not a
# speed.  Skipped when the normal pass did not run or a test subset was asked
# for; PETREL_COMPARE=0 skips it too.
if [[ " $PASSES " == *" normal "* ]] && ((${#TEST_ARGS[@]} == 0)) \
    && [ "${PETREL_COMPARE:-1}" != 0 ] && [ -x "$ROOT/build-ci/broker/petreld" ]; then
  echo
  echo "==> [bench] tests/bench/compare.sh --quick"
  if PETRELD=$ROOT/build-ci/broker/petreld PETREL=$ROOT/build-ci/cli/petrel \
      timeout 180 "$ROOT/tests/bench/compare.sh" --quick; then
    SUMMARY+=("bench: compare.sh --quick ran and reported")
    TOTAL_OK=$((TOTAL_OK + 1))
  else
    SUMMARY+=("bench: compare.sh --quick  <-- FAILED")
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
    FAILED=1
  fi
fi

echo
echo "==================== summary ===================="
for line in "${SUMMARY[@]}"; do
  echo "  $line"
done
echo "tests: $TOTAL_OK passed, $TOTAL_FAIL failed, $TOTAL_SKIP skipped"
if [ $((TOTAL_OK + TOTAL_FAIL)) -eq 0 ]; then
  echo "error: no test ran" >&2
  exit 1
fi
exit "$FAILED"
