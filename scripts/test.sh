#!/usr/bin/env bash
# The whole test suite: what CI runs (via .ci/run) and what a developer runs.
#
#   scripts/test.sh            everything: format check, -Werror build, all
#                              tests against a throwaway PostgreSQL, then the
#                              unit and database tests again under
#                              AddressSanitizer + UndefinedBehaviorSanitizer,
#                              the worker pool under ThreadSanitizer, and 15 s
#                              of libFuzzer on each of the record parser and
#                              detector, and the HTTP request parser
#   scripts/test.sh --quick    only the -Werror build and its tests
#
# The full run also runs the database suites on the two other
# deployments, with the -Werror build: behind PgBouncer in transaction
# pooling (scripts/pgbouncer.sh) and on Citus, a coordinator and 2 workers
# (scripts/citus.sh, which builds Citus from $CITUS_SRC when it is not
# installed; default: the tarball in ../shared/citus/).  The tests read the
# deployment from PD_TEST_DEPLOYMENT (tests/support/support.h).  Then it
# runs every recipe of README.md and docs/deployments.md as written
# (scripts/recipes.sh), against throwaway clusters of its own.
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
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then  # the clusters' own view of the failure, before they go
    find "$tmp" \( -name server.log -o -name pgbouncer.log \) -print 2>/dev/null | sort | while read -r log; do
      printf '\n--- the last lines of %s\n' "${log#"$tmp"/}"
      tail -n 40 "$log"
    done
  fi
  scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  [ ! -d "$tmp/bouncer" ] || scripts/pgbouncer.sh stop "$tmp/bouncer" >/dev/null 2>&1 || true
  [ ! -d "$tmp/citus" ] || scripts/citus.sh stop "$tmp/citus" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
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

# Runs Criterion binaries of build/ with the deployment's environment: each
# argument is "binary" or "binary=filter" (a Criterion --filter pattern).
deploy_tests() {
  local spec bin filter failed=0
  for spec in "$@"; do
    bin=${spec%%=*}; filter=""
    [ "$bin" = "$spec" ] || filter=${spec#*=}
    echo "--- $bin${filter:+ ($filter)}"
    local t0=$SECONDS
    if [ "$bin" = pool_race ]; then  # a plain program, not Criterion
      (cd build && ./pool_race) || failed=1
    else
      # Citus relays its workers' notices; the tests' own output stays.
      (cd build && ./"$bin" --jobs "$([ "$bin" = test_faults ] && echo 1 || nproc)" ${filter:+--filter "$filter"}) 2>&1 \
        | { grep -v -E '^(WARNING|DETAIL|HINT):' || true; } || failed=1
    fi
    echo "--- $bin: $((SECONDS - t0)) s"
    [ "$failed" = 0 ] || return 1
  done
}
# On Citus, of test_ingest: the exactly-once suite and report (the rest is not about the database).
exactly_once='@(ingest/@(sample_one_worker_matches_reference|sample_eight_workers_small_batches_matches_reference|same_file_twice_counts_once|shuffled_input_gives_same_statistics|two_processes_on_the_same_file_count_once|typical_input_is_the_first_workflow_of_each_pattern)|report/*)'
serve_isolation='serve/@(refuses_to_run_as_a_role_that_bypasses_row_level_security|records_of_another_tenant_are_rejected_and_nothing_of_them_written|sample_through_two_servers_matches_reference|revisions_through_two_servers_match_reference|healthz_readyz_and_metrics)'

step "PgBouncer (transaction pooling): migrate, exactly-once, faults, serve isolation, keys and report"
bouncer_url=$(scripts/pgbouncer.sh start "$tmp/bouncer")
echo "$bouncer_url"
PD_TEST_DEPLOYMENT=pgbouncer PD_TEST_DATABASE_URL=$bouncer_url PD_TEST_PGDIR="$tmp/bouncer/pg" \
  deploy_tests test_pgbouncer test_migrate test_ingest test_faults pool_race test_tenancy "test_serve=$serve_isolation" test_auth test_revisions \
  test_review test_review_db test_review_cli test_openapi
scripts/pgbouncer.sh stop "$tmp/bouncer"

step "Citus (coordinator + 2 workers): migrate, exactly-once, worker restarts and backend kills, races, RLS on the shards, serve"
export CITUS_SRC=${CITUS_SRC:-$root/../shared/citus/citus-13.2.2-pg15.20.tar.gz}
citus_url=$(scripts/citus.sh start "$tmp/citus")
echo "$citus_url"
# The fault tests first: a worker restart takes longer with every database the other tests add.
PD_TEST_DEPLOYMENT=citus PD_TEST_DATABASE_URL=$citus_url PD_TEST_CITUS_DIR="$tmp/citus" \
  PD_TEST_PGDIR="$tmp/citus/coordinator" \
  deploy_tests "test_faults=faults/@(killed_backends_change_nothing|killed_backends_during_revisions_change_nothing|citus_worker_restarts_change_nothing|citus_worker_restarts_during_revisions_change_nothing)" \
  test_citus test_migrate "test_ingest=$exactly_once" pool_race "test_tenancy=keys/*" "test_serve=$serve_isolation" test_auth test_revisions \
  test_review test_review_db test_review_cli test_openapi
scripts/citus.sh stop "$tmp/citus"

step "Recipes of README.md and docs/deployments.md, run as written (scripts/recipes.sh)"
scripts/recipes.sh

step "AddressSanitizer + UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1 CTEST_ARGS="" run_suite build-asan -DCMAKE_BUILD_TYPE=Debug "-DPD_SANITIZE=address;undefined"

step "ThreadSanitizer (worker pool, concurrent writers, ingest with 8 workers)"
CTEST_ARGS="-R pool_race" run_suite build-tsan -DCMAKE_BUILD_TYPE=Debug -DPD_SANITIZE=thread
step "libFuzzer: record parsing, detection and output; HTTP requests (15 s each)"
cmake -S "$root" -B build-fuzz -DCMAKE_C_COMPILER=clang -DPD_FUZZ=ON -DPD_BUILD_TESTS=OFF \
  "-DPD_SANITIZE=address;undefined" -DPD_WERROR=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_record fuzz_http >/dev/null
mkdir -p "$tmp/corpus" "$tmp/corpus-http"
split -l 1 -a 4 tests/data/edge.ndjson "$tmp/corpus/edge-"
split -l 1 -a 4 tests/data/sample-600.ndjson "$tmp/corpus/sample-"
(cd "$tmp" && "$root/build-fuzz/fuzz_record" -max_total_time=15 -max_len=4096 -print_final_stats=1 corpus 2>&1 | tail -n 3)
# New inputs go to the temporary folder; the seeds (the tests' requests) stay as they are.
(cd "$tmp" && "$root/build-fuzz/fuzz_http" -max_total_time=15 -max_len=4096 -print_final_stats=1 \
  corpus-http "$root/tests/http/fuzz_http_corpus" 2>&1 | tail -n 3)

echo
echo "all tests passed"
