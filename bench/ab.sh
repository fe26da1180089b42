#!/usr/bin/env bash
# Interleaved A/B of builds of patternd: the same generated records ingested
# by each in turn, round after round, on one throwaway PostgreSQL.
#
#   bench/ab.sh [--count N] [--rounds R] NAME=BUILD_DIR[:VAR=VALUE,...] ...
#
#   --count N    records (default 200000; 8 tenants, seed 1)
#   --rounds R   rounds; each runs every variant once, in the order given (default 3)
#   NAME=DIR     a variant: the patternd binary in DIR (e.g. a Release build
#                of another commit), optionally run with environment VAR=VALUE
#   -h, --help   show this help
#
# Each run: a fresh database migrated by that variant's own binary, a
# CHECKPOINT, then `patternd ingest --quiet` with its defaults.  Prints a
# line per run (wall s, workflows/s, client and server CPU s) and, per
# variant, the means.  On a machine where the client and the server share
# few cores, CPU seconds are the steadier measure.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

count=200000 rounds=3
variants=()
while [ $# -gt 0 ]; do
  case "$1" in
    --count) [ $# -ge 2 ] || { usage >&2; exit 2; }; count=$2; shift 2 ;;
    --rounds) [ $# -ge 2 ] || { usage >&2; exit 2; }; rounds=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *=*) variants+=("$1"); shift ;;
    *) usage >&2; exit 2 ;;
  esac
done
[ ${#variants[@]} -ge 1 ] || { usage >&2; exit 2; }
for v in "${variants[@]}"; do
  dir=${v#*=}
  dir=${dir%%:*}
  [ -x "$dir/patternd" ] || { echo "ab.sh: no patternd in $dir" >&2; exit 2; }
done

export LC_ALL=C
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPD_BUILD_TESTS=OFF >&2
cmake --build build-bench -j"$(nproc)" --target pd_gen >&2
tmp=$(mktemp -d)
chmod 755 "$tmp" # PostgreSQL runs as postgres when we are root
cleanup() {
  if [ -e "$tmp/pg" ]; then scripts/pg.sh stop "$tmp/pg" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
url=$(scripts/pg.sh start "$tmp/pg")
base=${url%/postgres}
pm=$(head -n 1 "$tmp/pg/data/postmaster.pid")
hz=$(getconf CLK_TCK)
build-bench/pd_gen --count "$count" --tenants 8 --seed 1 >"$tmp/in.ndjson"

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

echo "| round | variant | wall s | workflows/s | client CPU s | server CPU s |"
echo "|---:|---|---:|---:|---:|---:|"
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    name=${v%%=*} spec=${v#*=}
    dir=${spec%%:*} envs=()
    if [ "$dir" != "$spec" ]; then IFS=, read -r -a envs <<<"${spec#*:}"; fi
    psql -X -q "$url" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS ab" -c "CREATE DATABASE ab"
    "$dir/patternd" migrate --db "$base/ab" >/dev/null
    psql -X -q "$url" -c CHECKPOINT
    s0=$(server_ticks)
    t0=$EPOCHREALTIME
    env "${envs[@]}" /usr/bin/time -o "$tmp/time" -f '%U %S' "$dir/patternd" ingest --quiet --db "$base/ab" "$tmp/in.ndjson" >"$tmp/out"
    t1=$EPOCHREALTIME
    sleep 0.3 # the backend exits and is reaped, so that its CPU is counted
    s1=$(server_ticks)
    grep -q "\"processed\": $count," "$tmp/out" || { cat "$tmp/out" >&2; echo "ab.sh: $name did not process every record" >&2; exit 1; }
    awk -v r="$r" -v n="$name" -v a="$t0" -v b="$t1" -v c="$count" -v s="$((s1 - s0))" -v hz="$hz" \
      -v cpu="$(awk '{ print $1 + $2 }' "$tmp/time")" \
      'BEGIN { printf "| %d | %s | %.2f | %.0f | %.2f | %.2f |\n", r, n, b - a, c / (b - a), cpu, s / hz }'
  done
done | tee "$tmp/rows"
echo
echo "| variant | mean workflows/s | mean client CPU s | mean server CPU s |"
echo "|---|---:|---:|---:|"
awk -F' *[|] *' '{ n[$3]++; w[$3] += $5; c[$3] += $6; s[$3] += $7; if (!($3 in o)) { o[$3] = ++k; name[k] = $3 } }
  END { for (i = 1; i <= k; i++) { v = name[i]; printf "| %s | %.0f | %.2f | %.2f |\n", v, w[v] / n[v], c[v] / n[v], s[v] / n[v] } }' "$tmp/rows"
echo
echo "Command: \`bench/ab.sh --count $count --rounds $rounds ${variants[*]}\`; PostgreSQL $(psql -X -tA "$url" -c 'SHOW server_version') via scripts/pg.sh (fsync and synchronous_commit on); nproc=$(nproc)"
