#!/usr/bin/env bash
# The whole test suite: what CI runs (via .ci/run) and what a developer runs.
#
#   scripts/test.sh            everything: format check, -Werror build, all
#                              tests against a throwaway PostgreSQL, then the
#                              unit and database tests again under
#                              AddressSanitizer + UndefinedBehaviorSanitizer,
#                              the worker pool under ThreadSanitizer, and 30 s
#                              of libFuzzer on the record parser and detector
#   scripts/test.sh --quick    only the -Werror build and its tests
#
# Installs what is missing (scripts/setup.sh), starts and removes its own
# PostgreSQL cluster, and exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
quick=false
[ "${1:-}" = "--quick" ] && quick=true

scripts/setup.sh

step() { printf '\n=== %s\n' "$*"; }

step "clang-format"
mapfile -t sources < <(find src include tests bench -name '*.[ch]' -not -path 'tests/data/*' | sort)
if ! clang-format --dry-run --Werror "${sources[@]}" >/dev/null 2>&1; then
  clang-format --dry-run --Werror "${sources[@]}" 2>&1 | head -20
  echo "clang-format: files are not formatted (run: clang-format -i \$(find src include tests bench -name '*.[ch]'))"
  exit 1
fi

tmp=$(mktemp -d /tmp/patternd-test.XXXXXX)
chmod 755 "$tmp"
cleanup() { scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT

step "PostgreSQL (throwaway cluster)"
PD_TEST_DATABASE_URL=$(scripts/pg.sh start "$tmp/pg")
export PD_TEST_DATABASE_URL PD_TEST_PGDIR="$tmp/pg"
echo "$PD_TEST_DATABASE_URL"

run_suite() { # build-dir cmake-args... ; then runs ctest with $CTEST_ARGS
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -DPD_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" >/dev/null
  (cd "$dir" && ctest --output-on-failure --timeout 900 ${CTEST_ARGS:-})
}

step "build (-Werror) and tests"
CTEST_ARGS="" run_suite build

$quick && exit 0

step "AddressSanitizer + UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1 CTEST_ARGS="" run_suite build-asan -DCMAKE_BUILD_TYPE=Debug "-DPD_SANITIZE=address;undefined"

step "ThreadSanitizer (worker pool, concurrent writers, ingest with 8 workers)"
CTEST_ARGS="-R pool_race" run_suite build-tsan -DCMAKE_BUILD_TYPE=Debug -DPD_SANITIZE=thread
step "libFuzzer: record parsing, detection and output (30 s)"
cmake -S "$root" -B build-fuzz -DCMAKE_C_COMPILER=clang -DPD_FUZZ=ON -DPD_BUILD_TESTS=OFF \
  "-DPD_SANITIZE=address;undefined" -DPD_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_record >/dev/null
mkdir -p "$tmp/corpus"
split -l 1 -a 4 tests/data/edge.ndjson "$tmp/corpus/edge-"
split -l 1 -a 4 tests/data/sample-600.ndjson "$tmp/corpus/sample-"
(cd "$tmp" && "$root/build-fuzz/fuzz_record" -max_total_time=30 -max_len=4096 -print_final_stats=1 corpus 2>&1 | tail -n 3)

echo
echo "all tests passed"
