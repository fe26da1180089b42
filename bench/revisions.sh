#!/usr/bin/env bash
# The revision workload beside the all-new one, on one throwaway PostgreSQL.
#
#   bench/revisions.sh [--count N] [--best R]
#
#   --count N   workflows (default 200000; 8 tenants, seed 1)
#   --best R    runs of each workload, interleaved; the fastest is kept (default 2)
#   -h, --help  show this help
#
# Builds patternd and pd_gen (CMake Release) into build-bench/, starts a
# PostgreSQL with scripts/pg.sh (fsync and synchronous_commit on) and times
# `patternd ingest --quiet` with its default settings, each run into a fresh
# migrated database after a CHECKPOINT, on three inputs (not timed to make):
#   all-new     `pd_gen --count N`: N workflows, each once;
#   revisions   `pd_gen --count N --versions`: every workflow 3 times
#               (pending, running, then completed or failed), shuffled, so
#               later versions often arrive first: 3N records;
#   finals      the final versions of the revisions input alone (N records),
#               whose tables the revisions run must equal exactly: the
#               script fails unless operation_patterns and pattern_weeks are
#               the same after both.
# Prints a markdown table (records/s, workflows/s, µs per record, client and
# server CPU) and the ratios, with the command.
set -euo pipefail

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }

invocation="bench/$(basename "$0") $*"
count=200000 best=2
while [ $# -gt 0 ]; do
  case "$1" in
    --count) [ $# -ge 2 ] || { usage >&2; exit 2; }; count=$2; shift 2 ;;
    --best) [ $# -ge 2 ] || { usage >&2; exit 2; }; best=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 100 ] || { echo "revisions.sh: --count must be an integer >= 100" >&2; exit 2; }
[[ "$best" =~ ^[0-9]+$ ]] && [ "$best" -ge 1 ] || { echo "revisions.sh: --best must be a positive integer" >&2; exit 2; }

export LC_ALL=C
cd "$(dirname "$0")/.."
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
hz=$(getconf CLK_TCK)
tmp=$(mktemp -d)
chmod 755 "$tmp" # PostgreSQL runs as postgres when we are root
cleanup() {
  if [ -e "$tmp/pg" ]; then scripts/pg.sh stop "$tmp/pg" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { echo "revisions.sh: $*" >&2; }
fail() { echo "revisions.sh: FAILED: $*" >&2; exit 1; }

scripts/setup.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPD_BUILD_TESTS=OFF >&2
cmake --build build-bench -j"$(nproc)" --target patternd pd_gen >&2
pd=build-bench/patternd

url=$(scripts/pg.sh start "$tmp/pg")
base=${url%/postgres}
pm=$(head -n 1 "$tmp/pg/data/postmaster.pid")
q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$@"; }

# CPU ticks of the server: the postmaster with its reaped children, and its live children.
server_ticks() {
  local f line rest pid total=0
  local -a a
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue
    rest=${line##*) }
    read -r -a a <<<"$rest"
    pid=${f#/proc/}
    pid=${pid%/stat}
    if [ "$pid" = "$pm" ]; then
      total=$((total + a[11] + a[12] + a[13] + a[14]))
    elif [ "${a[1]}" = "$pm" ]; then
      total=$((total + a[11] + a[12]))
    fi
  done
  echo "$total"
}
json_int() { sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" <<<"$2"; }

say "generating the inputs (not timed)"
build-bench/pd_gen --count "$count" --tenants 8 --seed 1 >"$tmp/new.ndjson"
build-bench/pd_gen --count "$count" --tenants 8 --seed 1 --versions >"$tmp/revisions.ndjson"
grep -E '"status": "(completed|failed)"' "$tmp/revisions.ndjson" >"$tmp/finals.ndjson"
[ "$(wc -l <"$tmp/finals.ndjson")" -eq "$count" ] || fail "the revisions input does not hold $count final versions"

# The tables a run leaves, as one digest (the statistics and the weekly series).
tables_digest() {
  q "$1" -c "SELECT md5(string_agg(concat_ws('|', tenant_id, pattern_signature, occurrence_count, sum_tokens, sum_cost, duration_n, sum_duration_ms, sum_duration_ms_sq, error_n, sum_retry, first_event_at, last_event_at, automation_status), ',' ORDER BY tenant_id, pattern_signature)) FROM operation_patterns" \
    -c "SELECT md5(string_agg(concat_ws('|', w.tenant_id, p.pattern_signature, w.week, w.occurrences, w.cost), ',' ORDER BY w.tenant_id, p.pattern_signature, w.week)) FROM pattern_weeks w JOIN operation_patterns p ON p.tenant_id = w.tenant_id AND p.id = w.pattern_id"
}

declare -A best_wall best_row digest
for r in $(seq 1 "$best"); do
  for kind in new revisions finals; do
    db=bench_$kind
    q "$url" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >&2
    "$pd" migrate --db "$base/$db" >/dev/null
    q "$url" -c CHECKPOINT
    records=$(wc -l <"$tmp/$kind.ndjson")
    s0=$(server_ticks)
    t0=$EPOCHREALTIME
    /usr/bin/time -o "$tmp/time" -f '%M %U %S' "$pd" ingest --quiet --db "$base/$db" "$tmp/$kind.ndjson" \
      >"$tmp/stdout" 2>"$tmp/stderr" || { tail -n 20 "$tmp/stderr" >&2; fail "ingest of $kind exited non-zero"; }
    t1=$EPOCHREALTIME
    sleep 0.3 # the backend exits and is reaped, so that its CPU is counted
    s1=$(server_ticks)
    summary=$(tail -n 1 "$tmp/stdout")
    [ "$(json_int errors "$summary")" = 0 ] || fail "$kind: $summary"
    read -r rss user sys <"$tmp/time"
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    say "run $r, $kind: $records records in $wall s; $summary"
    d=$(tables_digest "$base/$db" | tr '\n' ' ')
    if [ -z "${digest[$kind]:-}" ]; then digest[$kind]=$d; elif [ "${digest[$kind]}" != "$d" ]; then fail "$kind: two runs left different tables"; fi
    if [ -z "${best_wall[$kind]:-}" ] || awk -v a="$wall" -v b="${best_wall[$kind]}" 'BEGIN { exit !(a < b) }'; then
      best_wall[$kind]=$wall
      best_row[$kind]=$(awk -v k="$kind" -v n="$records" -v w="$count" -v t="$wall" -v rss="$rss" -v u="$user" -v s="$sys" \
        -v srv="$(((s1 - s0)))" -v hz="$hz" -v sum="$summary" 'BEGIN {
        printf "| %s | %d | %.2f | %.0f | %.0f | %.2f | %.1f | %.2f | %.2f |", k, n, t, n / t, w / t, t * 1e6 / n, rss / 1024, u + s, srv / hz }')
    fi
  done
  q "$url" -c "SET client_min_messages = warning" -c "DROP DATABASE bench_new" -c "DROP DATABASE bench_revisions" -c "DROP DATABASE bench_finals" >&2
done
[ "${digest[revisions]}" = "${digest[finals]}" ] || fail "the revisions run and the finals run left different statistics"

echo
echo "| input | records | wall s | records/s | workflows/s | µs per record | patternd peak RSS MiB | patternd CPU s | server CPU s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for kind in new revisions finals; do echo "${best_row[$kind]}"; done
echo
awk -v n="${best_wall[new]}" -v r="${best_wall[revisions]}" -v c="$count" 'BEGIN {
  printf "- Workflows/s, revisions / all-new: %.0f / %.0f = %.2f (each revisions workflow is 3 records)\n", c / r, c / n, n / r
  printf "- Per record, revisions / all-new: %.2f / %.2f µs = %.2f×\n", r * 1e6 / (3 * c), n * 1e6 / c, (r / (3 * c)) / (n / c) }'
echo "- The revisions run left exactly the tables of the finals run (operation_patterns and pattern_weeks)."
echo
echo "Command: \`$invocation\` (fastest of $best interleaved runs each; patternd's default settings)"
echo "PostgreSQL $(q "$url" -c 'SHOW server_version') via scripts/pg.sh (fsync=$(q "$url" -c 'SHOW fsync'), synchronous_commit=$(q "$url" -c 'SHOW synchronous_commit')); machine: nproc=$(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
