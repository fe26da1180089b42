#!/usr/bin/env bash
# What a hostile or noisy client can do to `patternd serve`, measured on
# loopback against a throwaway PostgreSQL.
#
#   bench/abuse.sh [--duration S] [--workers N]
#
#   --duration S   seconds of each fairness phase (default 20; the first 3 not measured)
#   --workers N    writer threads of serve (default 4)
#   -h, --help     show this help
#
# Builds patternd, pd_gen and pd_load (CMake Release) into build-bench/,
# starts PostgreSQL with scripts/pg.sh and `patternd serve` with its
# defaults as a member of patternd_service, then:
#  1. amplification: 4 connections each POST a 16 MB body of "1\n" lines
#     (8M tiny invalid records) with a valid key, while /healthz is probed
#     every 20 ms: serve's peak RSS (VmHWM), the slowest /healthz, the
#     statuses and the largest answer;
#  2. fairness: a quiet tenant posts 100 records every 100 ms alone, then
#     beside a hog tenant with 16 clients posting 1,000-record batches flat
#     out (retrying refusals after 200 ms): the quiet tenant's p50/p99 in
#     both, its refusals, and how many of the hog's requests got 200 or 429;
#  3. bad keys: 48 connections read /v1/patterns flat out with bad keys
#     (in turn a stale one, a real key id with a wrong secret, and a made-up
#     one) while a tenant reads with its valid key 10 times a second, all
#     from 127.0.0.1: the valid reader's p50/p99 and refusals, the
#     attackers' 401s and 429s.
# Prints markdown tables and the commands.
set -euo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

duration=20 workers=4
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

. "$(dirname "$0")/serve_common.sh"
bench_start
bench_service_db bench_abuse
key_of() { $bin/patternd keys create --db "$base/bench_abuse" --tenant "$1" | tail -n 1; }
echo "tenant-00 $(key_of tenant-00)" >"$tmp/hog.keys"
echo "tenant-01 $(key_of tenant-01)" >"$tmp/quiet.keys"
echo "tenant-02 $(key_of tenant-02)" >"$tmp/attacker.keys"

bench_serve --workers "$workers"
rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$serve_pid/status"; }
rss_before=$(rss_mib)

# 1. Amplification, with /healthz probed meanwhile.
echo "abuse.sh: amplification" >&2
: >"$tmp/healthz"
( while [ ! -e "$tmp/flood.done" ]; do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/healthz" >>"$tmp/healthz" || echo 99 >>"$tmp/healthz"
    sleep 0.02
  done ) &
probe=$!
flood=$($bin/pd_load --port "$port" --keys "$tmp/attacker.keys" --flood 16000000 --connections 4 --duration 60)
touch "$tmp/flood.done"; wait "$probe"
echo "abuse.sh: flood: $flood" >&2
rss_flood=$(rss_mib)
healthz_max=$(sort -g "$tmp/healthz" | tail -n 1 | awk '{ printf "%.1f", $1 * 1000 }')
healthz_n=$(wc -l <"$tmp/healthz")

# 2. Fairness.
$bin/pd_gen --count $((5000 * duration)) --tenants 2 --seed 6 | grep '"tenant_id": "tenant-01"' >"$tmp/quiet.ndjson"
$bin/pd_gen --count $((40000 * duration)) --tenants 1 --seed 5 >"$tmp/hog.ndjson"
quiet() { $bin/pd_load --port "$port" --keys "$tmp/quiet.keys" --input "$tmp/quiet.ndjson" \
  --batch 100 --rate 10 --connections 2 --duration "$1" --warmup 3; }
echo "abuse.sh: quiet tenant alone" >&2
solo=$(quiet "$duration")
echo "abuse.sh: solo: $solo" >&2
echo "abuse.sh: quiet tenant beside the hog" >&2
$bin/pd_load --port "$port" --keys "$tmp/hog.keys" --input "$tmp/hog.ndjson" --batch 1000 \
  --connections 16 --duration $((duration + 6)) --warmup 3 --retry-refused 200 >"$tmp/hog.out" &
hog_pid=$!
sleep 3
shared=$(quiet "$duration")
wait "$hog_pid"
hog=$(cat "$tmp/hog.out")
echo "abuse.sh: shared: $shared" >&2
echo "abuse.sh: hog: $hog" >&2

# 3. Bad keys from the address of a valid reader.
echo "abuse.sh: bad keys beside a valid reader" >&2
quiet_key=$(cut -d' ' -f2 "$tmp/quiet.keys")
{ echo "x ${quiet_key%~*}~AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
  echo "x pdk_tenant-01~0123456789abcdef~AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; } >"$tmp/bad.keys"
$bin/pd_load --port "$port" --keys "$tmp/bad.keys" --get /v1/patterns --connections 48 \
  --duration $((duration + 6)) --warmup 3 >"$tmp/bad.out" &
bad_pid=$!
sleep 3
reader=$($bin/pd_load --port "$port" --keys "$tmp/quiet.keys" --get /v1/patterns --rate 10 \
  --connections 2 --duration "$duration" --warmup 3)
wait "$bad_pid"
bad=$(cat "$tmp/bad.out")
echo "abuse.sh: reader: $reader" >&2
echo "abuse.sh: bad keys: $bad" >&2

kill -TERM "$serve_pid"; wait "$serve_pid"; serve_pid=""

echo
echo "| attack | measured |"
echo "|---|---|"
echo "| 4 × 16 MB of \`1\\n\` lines, valid key | statuses: $(json_num status_413 "$flood") × 413, $(json_num status_other "$flood") other; largest answer $(json_num max_answer_bytes "$flood") bytes; serve peak RSS $rss_flood MiB (before: $rss_before); slowest of $healthz_n \`/healthz\` probes $healthz_max ms |"
echo
echo "| quiet tenant (100 records / 100 ms) | p50 ms | p99 ms | max ms | 200 | 429 | 503 |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '| alone | %s | %s | %s | %s | %s | %s |\n' "$(json_num p50_ms "$solo")" "$(json_num p99_ms "$solo")" \
  "$(json_num max_ms "$solo")" "$(json_num status_200 "$solo")" "$(json_num status_429 "$solo")" "$(json_num status_503 "$solo")"
printf '| beside the hog | %s | %s | %s | %s | %s | %s |\n' "$(json_num p50_ms "$shared")" "$(json_num p99_ms "$shared")" \
  "$(json_num max_ms "$shared")" "$(json_num status_200 "$shared")" "$(json_num status_429 "$shared")" "$(json_num status_503 "$shared")"
h200=$(json_num status_200 "$hog"); h429=$(json_num status_429 "$hog")
echo
awk -v a="$h200" -v b="$h429" -v r="$(json_num records_per_s "$hog")" 'BEGIN {
  printf "hog (16 clients, 1,000-record batches): %d answered 200, %d refused with 429 (%.0f%% of its attempts), %.0f records/s committed\n", a, b, 100 * b / (a + b), r }'
echo
echo "| from 127.0.0.1 | p50 ms | p99 ms | max ms | 200 | 401 | 429 | 503 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for row in "valid key, 10 reads/s:$reader" "48 connections of bad keys:$bad"; do
  j=${row#*:}
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${row%%:*}" "$(json_num p50_ms "$j")" "$(json_num p99_ms "$j")" \
    "$(json_num max_ms "$j")" "$(json_num status_200 "$j")" "$(json_num status_401 "$j")" "$(json_num status_429 "$j")" "$(json_num status_503 "$j")"
done
echo
echo "Command: \`bench/abuse.sh --duration $duration --workers $workers\`"
echo "serve: \`patternd serve --workers $workers\` (every other setting its default) as a member of patternd_service"
echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); nproc=$(nproc); load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
