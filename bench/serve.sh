#!/usr/bin/env bash
# Load benchmark of `patternd serve` over HTTP on loopback, against a
# throwaway PostgreSQL, next to `patternd ingest` on the same machine.
#
#   bench/serve.sh [--batch N] [--workers N] [--connections C] [--duration S]
#
#   --batch N        records per POST request (default 1000, as ingest's batches)
#   --workers N      writer threads of serve and of ingest (default 4)
#   --connections C  client connections (default 8)
#   --duration S     seconds per load phase, the first 3 not measured (default 20)
#   -h, --help       show this help
#
# Builds patternd, pd_gen and pd_load (CMake Release) into build-bench/,
# starts PostgreSQL with scripts/pg.sh (durable default settings), then:
#  1. ingest: `patternd ingest` of generated records (8 tenants) into a
#     fresh database: the reference throughput;
#  2. serve, as a member of patternd_service (row-level security on), with a
#     key per tenant, in another fresh database, loaded by build-bench/pd_load
#     with request bodies of --batch records of one tenant each:
#       max   closed loop, C connections: the maximum sustained rate;
#       50%   open loop at half that rate (latency from each request's due time);
#       90%   open loop at 0.9 of it.
# Every phase sends records never sent before (nothing is a duplicate).
# Prints a markdown table, the ratio to ingest and the commands.
set -euo pipefail

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

batch=1000 workers=4 connections=8 duration=20
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

. "$(dirname "$0")/serve_common.sh"
bench_start
psql -q -v ON_ERROR_STOP=1 "$url" -c "CREATE DATABASE bench_ingest" >&2
$bin/patternd migrate --db "$base/bench_ingest" >&2
bench_service_db bench_serve

# 1. ingest, the reference.
ingest_count=$((40000 * duration / 2))
$bin/pd_gen --count "$ingest_count" --tenants 8 --seed 1 >"$tmp/ingest.ndjson"
echo "serve.sh: ingest of $ingest_count records" >&2
ingest_summary=$($bin/patternd ingest --quiet --db "$base/bench_ingest" --workers "$workers" "$tmp/ingest.ndjson" | tail -n 1)
ingest_rate=$(json_num workflows_per_second "$ingest_summary")
echo "serve.sh: ingest: $ingest_summary" >&2
rm -f "$tmp/ingest.ndjson"

# 2. serve.
for i in 0 1 2 3 4 5 6 7; do
  t=tenant-0$i
  echo "$t $($bin/patternd keys create --db "$base/bench_serve" --tenant "$t" | tail -n 1)"
done >"$tmp/keys"
bench_serve --workers "$workers"

seed=2
phase() { # name rate(requests/s, 0 = closed loop) connections
  # Records for the whole phase: at the target rate with 30% to spare (the load catches up after a stall),
  # or, in the closed loop, for 120,000/s; past that the input would run out
  # before the phase ends and the rate would be of a shorter window.
  local count
  if [ "$2" = 0 ]; then
    count=$((120000 * duration))
  else
    count=$(awk -v r="$2" -v b="$batch" -v d="$duration" 'BEGIN { printf "%d", r * b * d * 1.3 + b }')
  fi
  $bin/pd_gen --count "$count" --tenants 8 --seed "$seed" >"$tmp/load.ndjson"
  # Written back now, not while the phase's commits wait on the disk.
  sync
  seed=$((seed + 1))
  echo "serve.sh: phase $1" >&2
  $bin/pd_load --port "$port" --keys "$tmp/keys" --input "$tmp/load.ndjson" --batch "$batch" \
    --connections "$3" --rate "$2" --duration "$duration" --warmup 3
  rm -f "$tmp/load.ndjson"
}
max=$(phase max 0 "$connections")
echo "serve.sh: max: $max" >&2
max_rps=$(json_num requests_per_s "$max")
max_records=$(json_num records_per_s "$max")
r50=$(awk -v r="$max_rps" 'BEGIN { printf "%.3f", r * 0.5 }')
r90=$(awk -v r="$max_rps" 'BEGIN { printf "%.3f", r * 0.9 }')
open_connections=$((connections * 2))
half=$(phase 50% "$r50" "$open_connections")
echo "serve.sh: 50%: $half" >&2
ninety=$(phase 90% "$r90" "$open_connections")
echo "serve.sh: 90%: $ninety" >&2

kill -TERM "$serve_pid"; wait "$serve_pid"; serve_pid=""
errors=$(grep -c 'level=error' "$tmp/serve.err" || true)

row() { # label json
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(json_num requests_per_s "$2")" \
    "$(json_num records_per_s "$2")" "$(json_num p50_ms "$2")" "$(json_num p99_ms "$2")" \
    "$(json_num max_ms "$2")" "$(json_num status_503 "$2")"
}
echo
echo "| load | requests/s | records/s | p50 ms | p99 ms | max ms | 503s |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row "max (closed loop, $connections connections)" "$max"
row "50% of max (open loop)" "$half"
row "90% of max (open loop)" "$ninety"
echo
awk -v s="$max_records" -v i="$ingest_rate" 'BEGIN {
  printf "patternd ingest: %.0f records/s; serve at max: %.0f records/s = %.0f%% of ingest (target >= 90%%)\n", i, s, 100 * s / i }'
echo "serve errors logged: $errors"
echo
echo "Command: \`bench/serve.sh --batch $batch --workers $workers --connections $connections --duration $duration\`"
echo "serve: \`patternd serve --workers $workers\` as a member of patternd_service (RLS enforced); requests of $batch records of one tenant, 8 tenants, records from pd_gen"
echo "PostgreSQL: $(psql -tA "$url" -c 'SHOW server_version') via scripts/pg.sh (fsync=$(psql -tA "$url" -c 'SHOW fsync'), synchronous_commit=$(psql -tA "$url" -c 'SHOW synchronous_commit'))"
echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); nproc=$(nproc); load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
