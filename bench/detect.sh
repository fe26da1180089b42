#!/usr/bin/env bash
# Benchmarks `patternd detect` (no database): throughput and peak memory.
#
#   bench/detect.sh [--count N]
#
#   --count N   records to generate (default 1000000); the run is repeated
#               with N/10 records to show that peak RSS does not grow with
#               the input size
#   -h, --help  show this help
#
# Builds patternd and pd_gen (CMake Release) into build-bench/, generates the
# records with pd_gen into a temporary file (not timed), then times
# `taskset -c 0 patternd detect FILE > /dev/null` three times per size with
# GNU time and prints a markdown table: best wall time, records/s at that
# time, and the highest peak RSS seen over the three runs.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

# The command line as typed, for the report (quoting arguments with spaces).
invocation="bench/$(basename "$0")"
for arg in "$@"; do
  case "$arg" in *[[:space:]]*) invocation+=" \"$arg\"" ;; *) invocation+=" $arg" ;; esac
done

count=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --count) [ $# -ge 2 ] || { usage >&2; exit 2; }; count=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 10 ] \
  || { echo "detect.sh: --count must be an integer >= 10" >&2; exit 2; }

cd "$(dirname "$0")/.."
# Other work on the machine skews the numbers; the report says how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
runs=3
seed=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM # so that the EXIT trap still cleans up

scripts/setup.sh
# Always configure and build: both are no-ops when up to date, and this makes
# sure the binary measured is a Release build of the current sources.
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPD_BUILD_TESTS=OFF >&2
cmake --build build-bench -j"$(nproc)" --target patternd pd_gen >&2

echo "detect.sh: generating $count records (not timed)" >&2
build-bench/pd_gen --count "$count" --seed "$seed" >"$tmp/large.ndjson"
# pd_gen is deterministic per seed, so the first N/10 lines are exactly what
# `pd_gen --count N/10` would write; no need to generate twice.
small=$((count / 10))
head -n "$small" "$tmp/large.ndjson" >"$tmp/small.ndjson"

# Sanity check (not timed): every record must come out as a pattern line, not
# a rejection, or the records/s below would not mean what it says.
out_lines=$(build-bench/patternd detect "$tmp/small.ndjson" | tee "$tmp/check.out" | wc -l)
rejected=$(grep -c '^{"line"' "$tmp/check.out" || true)
if [ "$out_lines" -ne "$small" ] || [ "$rejected" -ne 0 ]; then
  echo "detect.sh: FAILED sanity check: $small records in, $out_lines lines out, $rejected rejected" >&2
  exit 1
fi

rows=()
for size in "$count" "$small"; do
  if [ "$size" -eq "$count" ]; then file=$tmp/large.ndjson; else file=$tmp/small.ndjson; fi
  best="" rss_max=0
  for run in $(seq 1 "$runs"); do
    # -o keeps GNU time's report apart from patternd's own stderr.
    /usr/bin/time -o "$tmp/time" -f '%e %M' taskset -c 0 build-bench/patternd detect "$file" >/dev/null
    read -r wall rss_kib <"$tmp/time"
    echo "detect.sh: $size records, run $run: ${wall} s, peak RSS ${rss_kib} KiB" >&2
    if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$wall; fi
    if [ "$rss_kib" -gt "$rss_max" ]; then rss_max=$rss_kib; fi
  done
  rows+=("$(awk -v n="$size" -v w="$best" -v k="$rss_max" 'BEGIN {
    # GNU time reports wall time in hundredths of a second.
    rate = (w > 0) ? sprintf("%.0f", n / w) : "n/a (under 0.01 s)"
    printf "| %d | %.2f | %s | %.1f |", n, w, rate, k / 1024 }')")
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo
echo "| records | best wall s (of $runs) | records/s | peak RSS MiB (max of $runs) |"
echo "|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "Command: \`$invocation\`"
echo "Generated with: \`build-bench/pd_gen --count $count --seed $seed\` (default 8 tenants); the $small-record input is its first $small lines"
echo "Measured: \`/usr/bin/time -f '%e %M' taskset -c 0 build-bench/patternd detect FILE > /dev/null\` (wall time resolution 0.01 s)"
echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "Machine: nproc=$(nproc), CPU: ${cpu:-unknown}; load average (1/5/15 min) before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
