#!/usr/bin/env bash
# Benchmarks `patternd ingest` against a throwaway PostgreSQL.
#
#   bench/ingest.sh [--counts "N1 N2 ..."] [--workers N] [--batch N]
#
#   --counts "..."  record counts to ingest, each into a fresh database
#                   (default "100000 1000000")
#   --workers N     passed to patternd ingest (default: patternd's own)
#   --batch N       passed to patternd ingest (default: patternd's own)
#   -h, --help      show this help
#
# Builds patternd and pd_gen (CMake Release) into build-bench/, starts a
# PostgreSQL with scripts/pg.sh (default, durable settings: fsync and
# synchronous_commit on), and for each count: creates a database, migrates
# it, generates the records (8 tenants; not timed) and times one
# `patternd ingest --quiet` run with GNU time.  Fails unless the summary says
# every record was processed and none errored.  Prints a markdown table and
# the ratio of the per-record time at the largest count to the smallest.
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

# The command line as typed, for the report (quoting arguments with spaces).
invocation="bench/$(basename "$0")"
for arg in "$@"; do
  case "$arg" in *[[:space:]]*) invocation+=" \"$arg\"" ;; *) invocation+=" $arg" ;; esac
done

counts="100000 1000000"
workers="" batch=""
while [ $# -gt 0 ]; do
  case "$1" in
    --counts) [ $# -ge 2 ] || { usage >&2; exit 2; }; counts=$2; shift 2 ;;
    --workers) [ $# -ge 2 ] || { usage >&2; exit 2; }; workers=$2; shift 2 ;;
    --batch) [ $# -ge 2 ] || { usage >&2; exit 2; }; batch=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in $counts; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] \
    || { echo "ingest.sh: --counts must be positive integers" >&2; exit 2; }
done
[ -n "${counts// /}" ] || { echo "ingest.sh: --counts is empty" >&2; exit 2; }

extra=()
if [ -n "$workers" ]; then extra+=(--workers "$workers"); fi
if [ -n "$batch" ]; then extra+=(--batch "$batch"); fi

cd "$(dirname "$0")/.."
# Other work on the machine skews the numbers; the report says how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
seed=1
tenants=8

tmp=$(mktemp -d)
# PostgreSQL runs as the postgres user when we are root; it must be able to
# enter this folder to reach its data directory inside it.
chmod 755 "$tmp"
cleanup() {
  if [ -e "$tmp/pg" ]; then scripts/pg.sh stop "$tmp/pg" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that the EXIT trap still cleans up

scripts/setup.sh
# Always configure and build: both are no-ops when up to date, and this makes
# sure the binary measured is a Release build of the current sources.
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPD_BUILD_TESTS=OFF >&2
cmake --build build-bench -j"$(nproc)" --target patternd pd_gen >&2

url=$(scripts/pg.sh start "$tmp/pg")
echo "ingest.sh: PostgreSQL at $url" >&2

# Reads an integer field from patternd's one-line JSON summary.
json_int() { sed -n "s/.*\"$1\": *\(-\{0,1\}[0-9][0-9]*\).*/\1/p" <<<"$2"; }

rows=()
declare -A us_per_record
for n in $counts; do
  db=bench_$n
  db_url=${url%/postgres}/$db
  psql -q -v ON_ERROR_STOP=1 "$url" \
    -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >&2
  build-bench/patternd migrate --db "$db_url" >&2

  echo "ingest.sh: generating $n records (not timed)" >&2
  build-bench/pd_gen --count "$n" --tenants "$tenants" --seed "$seed" >"$tmp/records.ndjson"

  echo "ingest.sh: ingesting $n records" >&2
  # -o keeps GNU time's report apart from patternd's own stderr.
  if ! /usr/bin/time -o "$tmp/time" -f '%e %M %U %S' \
      build-bench/patternd ingest --quiet --db "$db_url" "${extra[@]}" "$tmp/records.ndjson" \
      >"$tmp/stdout" 2>"$tmp/stderr"; then
    echo "ingest.sh: FAILED: patternd ingest exited non-zero for $n records" >&2
    tail -n 20 "$tmp/stderr" "$tmp/stdout" "$tmp/time" >&2
    exit 1
  fi
  summary=$(tail -n 1 "$tmp/stdout")
  processed=$(json_int processed "$summary")
  errors=$(json_int errors "$summary")
  if [ "$processed" != "$n" ] || [ "$errors" != 0 ]; then
    echo "ingest.sh: FAILED: $n records in, summary says processed=${processed:-?} errors=${errors:-?}" >&2
    echo "summary: $summary" >&2
    tail -n 20 "$tmp/stderr" >&2
    exit 1
  fi
  # The time file holds exactly the one format line, since the run succeeded.
  read -r wall rss_kib user sys <"$tmp/time"
  echo "ingest.sh: $n records: ${wall} s; summary: $summary" >&2
  if awk -v w="$wall" 'BEGIN { exit !(w <= 0) }'; then
    echo "ingest.sh: FAILED: $n records took under GNU time's 0.01 s resolution; use larger counts" >&2
    exit 1
  fi
  us_per_record[$n]=$(awk -v n="$n" -v w="$wall" 'BEGIN { printf "%.3f", w * 1e6 / n }')
  rows+=("$(awk -v n="$n" -v p="$processed" -v w="$wall" -v k="$rss_kib" -v u="$user" -v s="$sys" \
    'BEGIN { printf "| %d | %.2f | %.0f | %.2f | %.1f | %.2f |", n, w, p / w, w * 1e6 / n, k / 1024, u + s }')")
  rm -f "$tmp/records.ndjson" # the next count regenerates its own
done

smallest=$(tr ' ' '\n' <<<"$counts" | grep . | sort -n | head -n 1)
largest=$(tr ' ' '\n' <<<"$counts" | grep . | sort -n | tail -n 1)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)

echo
echo "| records | wall s | workflows/s | µs per record | patternd peak RSS MiB | patternd CPU s (user+sys) |"
echo "|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
if [ "$smallest" != "$largest" ]; then
  awk -v a="${us_per_record[$largest]}" -v b="${us_per_record[$smallest]}" -v L="$largest" -v S="$smallest" 'BEGIN {
    r = a / b
    printf "Per-record time at %d vs %d records: %.3f / %.3f µs = ratio %.2f (criterion: within 25%%, i.e. <= 1.25: %s)\n",
      L, S, a, b, r, (r <= 1.25 ? "met" : "NOT met") }'
else
  echo "Per-record time ratio: not computed (only one count was run)"
fi
echo
echo "Command: \`$invocation\`"
echo "Each count: fresh database, \`patternd migrate\`, records from \`build-bench/pd_gen --count N --tenants $tenants --seed $seed\`"
echo "Measured: \`/usr/bin/time -f '%e %M %U %S' build-bench/patternd ingest --quiet --db URL${extra[*]:+ ${extra[*]}} FILE\`"
echo "PostgreSQL: $(psql -tA "$url" -c 'SHOW server_version') via scripts/pg.sh on the same machine (fsync=$(psql -tA "$url" -c 'SHOW fsync'), synchronous_commit=$(psql -tA "$url" -c 'SHOW synchronous_commit')); its CPU time is not in the patternd columns"
echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "Machine: nproc=$(nproc), CPU: ${cpu:-unknown}; load average (1/5/15 min) before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
