#!/usr/bin/env bash
# The benchmark harness: `patternd ingest` side by side with PostgreSQL's own
# ceiling (COPY) and a naive baseline, on one throwaway PostgreSQL.
#
#   bench/harness.sh [--count N] [--workers "1 2 4 8"] [--batches "100 1000 5000"]
#                    [--small N] [--naive-count N] [--copy-runs N] [--out DIR]
#                    [--deploy-workers N] [--deploy-batch N] [--no-deployments] [--best N]
#
#   --count N        records to generate and ingest (default 1000000; 8 tenants, seed 1)
#   --workers "..."  worker counts of the grid (default "1 2 4 8")
#   --batches "..."  batch sizes of the grid (default "100 1000 5000")
#   --small N        records of the smaller default-settings run, for the
#                    per-record cost ratio (default min(100000, N/10))
#   --naive-count N  records of the naive baseline, the first N of the input
#                    (default min(20000, N)): one transaction per record
#   --copy-runs N    timed COPY runs for each ceiling; the fastest is kept (default 3)
#   --best N         runs of each default-settings and deployment row; the fastest
#                    is kept (default 2)
#   --out DIR        where harness.md, harness.csv and harness.png go
#                    (default bench/results)
#   --deploy-workers N, --deploy-batch N
#                    settings of the PgBouncer and Citus rows (default 4 and 1000)
#   --no-deployments skip the PgBouncer and Citus rows
#   -h, --help       show this help
#
# Builds patternd and pd_gen (CMake Release) into build-bench/, starts one
# PostgreSQL with scripts/pg.sh (checks fsync and synchronous_commit are on),
# generates the input once (not timed) and measures, each ingest into a fresh
# migrated database after a CHECKPOINT:
#   - patternd's default settings at --small records and at --count records;
#   - patternd ingest at every --workers x --batches pair, at --count records;
#   - the ceiling: the ledger rows written by the default run at --count
#     (tenant_id, workflow_id, signatures, characteristics: one per
#     workflow), exported, then COPYed (psql \copy) into an empty minimal
#     table of the harness's own, whatever patternd's schema: those four
#     columns and the ledger's primary key (tenant_id, workflow_id);
#     workflows/s = records of the input / COPY seconds, the fastest of
#     --copy-runs;
#   - the occurrence ceiling, kept for comparison with older reports: one
#     row per occurrence (tenant_id, pattern_id, workflow_id,
#     similarity_score, matched_characteristics) COPYed the same way into a
#     table keyed (tenant_id, pattern_id, workflow_id);
#   - the naive baseline: `patternd ingest --workers 1 --batch 1`;
#   - the same --small records through PgBouncer in transaction pooling
#     (scripts/pgbouncer.sh, its own PostgreSQL) and on Citus, a coordinator
#     and 2 workers (scripts/citus.sh; CITUS_SRC as in scripts/test.sh when
#     Citus is not installed), beside the direct default run at --small.
# For each: workflows/s (records / wall time of the process), ratios to the
# ceiling and the naive baseline (and, printed at the end, Citus to direct and
# direct to the ceiling), p50/p99 batch commit latency (patternd's
# summary), peak RSS and user+sys CPU of the client (GNU time) and CPU of the
# PostgreSQL server (postmaster and its children, from /proc).  Fails loudly
# unless every ingest processed every record with no errors.  Prints the
# markdown report with a verdict on the performance criteria (exit status 0 even
# when a criterion is not met) and writes it, a CSV and a gnuplot PNG to --out.
set -euo pipefail

usage() { sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; }

# The command line as typed, for the report (quoting arguments with spaces).
invocation="bench/$(basename "$0")"
for arg in "$@"; do
  case "$arg" in *[[:space:]]*) invocation+=" \"$arg\"" ;; *) invocation+=" $arg" ;; esac
done

count=1000000
workers_list="1 2 4 8"
batches_list="100 1000 5000"
small="" naive_count="" copy_runs=3 out="" best=2
deploy_workers=4 deploy_batch=1000 deployments=true
need() { [ "$1" -ge 2 ] || { usage >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --count) need $#; count=$2; shift 2 ;;
    --workers) need $#; workers_list=$2; shift 2 ;;
    --batches) need $#; batches_list=$2; shift 2 ;;
    --small) need $#; small=$2; shift 2 ;;
    --naive-count) need $#; naive_count=$2; shift 2 ;;
    --copy-runs) need $#; copy_runs=$2; shift 2 ;;
    --out) need $#; out=$2; shift 2 ;;
    --deploy-workers) need $#; deploy_workers=$2; shift 2 ;;
    --deploy-batch) need $#; deploy_batch=$2; shift 2 ;;
    --no-deployments) deployments=false; shift ;;
    --best) need $#; best=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
die_usage() { echo "harness.sh: $*" >&2; exit 2; }
posint() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ]; }
posint "$count" && [ "$count" -ge 100 ] || die_usage "--count must be an integer >= 100"
[ -z "$small" ] && small=$((count / 10 < 100000 ? count / 10 : 100000))
[ -z "$naive_count" ] && naive_count=$((count < 20000 ? count : 20000))
posint "$small" && [ "$small" -le "$count" ] || die_usage "--small must be an integer in 1..--count"
posint "$naive_count" && [ "$naive_count" -le "$count" ] || die_usage "--naive-count must be an integer in 1..--count"
posint "$copy_runs" || die_usage "--copy-runs must be a positive integer"
posint "$best" || die_usage "--best must be a positive integer"
posint "$deploy_workers" && posint "$deploy_batch" || die_usage "--deploy-workers and --deploy-batch take positive integers"
for v in $workers_list $batches_list; do posint "$v" || die_usage "--workers and --batches take positive integers"; done
[ -n "${workers_list// /}" ] && [ -n "${batches_list// /}" ] || die_usage "--workers and --batches must not be empty"
# Sorted, unique, so that the table and the chart read in order.
workers_list=$(tr ' ' '\n' <<<"$workers_list" | grep . | sort -n -u | tr '\n' ' ')
batches_list=$(tr ' ' '\n' <<<"$batches_list" | grep . | sort -n -u | tr '\n' ' ')

# Numbers are printed and parsed with a decimal point whatever the locale.
export LC_ALL=C
cd "$(dirname "$0")/.."
root=$(pwd)
out=${out:-bench/results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# Other work on the machine skews the numbers; the report says how busy it was.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$EPOCHREALTIME
seed=1
tenants=8
hz=$(getconf CLK_TCK)

tmp=$(mktemp -d)
# PostgreSQL runs as the postgres user when we are root; it must be able to
# enter this folder to reach its data directory inside it.
chmod 755 "$tmp"
cleanup() {
  if [ -e "$tmp/pg" ]; then scripts/pg.sh stop "$tmp/pg" || true; fi
  if [ -e "$tmp/bouncer" ]; then scripts/pgbouncer.sh stop "$tmp/bouncer" || true; fi
  if [ -e "$tmp/citus" ]; then scripts/citus.sh stop "$tmp/citus" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that the EXIT trap still cleans up

say() { echo "harness.sh: $*" >&2; }
fail() { echo "harness.sh: FAILED: $*" >&2; exit 1; }

scripts/setup.sh
command -v gnuplot >/dev/null || fail "gnuplot is not installed (apt-get install gnuplot-nox)"
[ -x /usr/bin/time ] || fail "GNU time (/usr/bin/time) is not installed"
# Always configure and build: both are no-ops when up to date, and this makes
# sure the binary measured is a Release build of the current sources.
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPD_BUILD_TESTS=OFF >&2
cmake --build build-bench -j"$(nproc)" --target patternd pd_gen >&2
pd=$root/build-bench/patternd

# patternd's own defaults, read from its --help, to label the default runs.
help=$("$pd" ingest --help)
def_workers=$(sed -n 's/.*--workers N .*(default: \([0-9][0-9]*\)).*/\1/p' <<<"$help")
def_batch=$(sed -n 's/.*--batch N .*(default: \([0-9][0-9]*\)).*/\1/p' <<<"$help")
def_label="${def_workers:-?} workers, batch ${def_batch:-?}"

url=$(scripts/pg.sh start "$tmp/pg")
say "PostgreSQL at $url"
base=${url%/postgres}
# The server processes measured: the postmasters of the current target (their
# children are counted with them) and other processes counted on their own
# (PgBouncer).  The target starts as the direct PostgreSQL.
postmasters=" $(head -n 1 "$tmp/pg/data/postmaster.pid") " others=" "
admin_url=$url target=direct checkpoint_urls=$url
q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$@"; }

# Durable commits, or the numbers mean nothing.
pg_version=$(q "$url" -c 'SHOW server_version')
pg_fsync=$(q "$url" -c 'SHOW fsync')
pg_sync=$(q "$url" -c 'SHOW synchronous_commit')
pg_fpw=$(q "$url" -c 'SHOW full_page_writes')
pg_wsm=$(q "$url" -c 'SHOW wal_sync_method')
pg_sb=$(q "$url" -c 'SHOW shared_buffers')
pg_mwal=$(q "$url" -c 'SHOW max_wal_size')
[ "$pg_fsync" = on ] && [ "$pg_sync" = on ] \
  || fail "the server must have fsync=on and synchronous_commit=on (has fsync=$pg_fsync, synchronous_commit=$pg_sync)"
say "server: PostgreSQL $pg_version, fsync=$pg_fsync, synchronous_commit=$pg_sync"

# CPU ticks used so far by the PostgreSQL server: the postmaster's own and
# its reaped children's (utime+stime+cutime+cstime), plus utime+stime of its
# live children (backends, checkpointer, WAL writer, autovacuum, ...).  A
# backend that exits in between moves from the second sum to the first.
server_ticks() {
  local f line rest total=0
  local -a a
  for f in /proc/[0-9]*/stat; do
    read -r line 2>/dev/null <"$f" || continue # it may have exited meanwhile
    rest=${line##*) } # the command name may hold spaces and parentheses
    read -r -a a <<<"$rest"
    # a[0] is field 3 (state): ppid a[1], utime a[11], stime a[12], cutime a[13], cstime a[14]
    local pid=${f#/proc/}
    pid=${pid%/stat}
    if [[ "$postmasters" == *" $pid "* ]]; then
      total=$((total + a[11] + a[12] + a[13] + a[14]))
    elif [[ "$postmasters" == *" ${a[1]} "* || "$others" == *" $pid "* ]]; then
      total=$((total + a[11] + a[12]))
    fi
  done
  echo "$total"
}

# Reads a number field from patternd's one-line JSON summary.
json_num() { sed -n "s/.*\"$1\": *\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" <<<"$2"; }

# Fresh database NAME on the current target, migrated; prints its URL.
fresh_db() {
  local db_url
  if [ "$target" = citus ]; then
    db_url=$(scripts/citus.sh createdb "$tmp/citus" "$1")
  else
    q "$admin_url" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >&2
    db_url=$base/$1
  fi
  "$pd" migrate --db "$db_url" >&2
  echo "$db_url"
}
drop_db() { [ "$target" = citus ] || q "$admin_url" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >&2; }

# Runs a command under GNU time and samples the server's CPU around it.
# Sets m_wall (s), m_rss (KiB), m_cpu (client user+sys s), m_srv (server s),
# m_load (1-minute load average just before).  The command's stdout and
# stderr go to $tmp/stdout and $tmp/stderr; returns its exit status.
measure() {
  local t0 t1 s0 s1 rc=0
  local u
  for u in $checkpoint_urls; do # so that no run pays for the dirty pages of the one before
    q "$u" -c CHECKPOINT
  done
  m_load=$(cut -d' ' -f1 /proc/loadavg)
  s0=$(server_ticks)
  t0=$EPOCHREALTIME
  /usr/bin/time -o "$tmp/time" -f '%M %U %S' "$@" >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
  t1=$EPOCHREALTIME
  # Let the backend that served the client exit and be reaped, so that its
  # CPU time is counted in the postmaster's cutime/cstime.
  sleep 0.3
  s1=$(server_ticks)
  m_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  m_srv=$(awk -v a="$s0" -v b="$s1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
  if [ "$rc" -eq 0 ]; then
    local rss user sys
    read -r rss user sys <"$tmp/time"
    m_rss=$rss
    m_cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  fi
  return "$rc"
}

csv=$out/harness.csv
echo "kind,label,records,workers,batch,wall_s,workflows_per_s,summary_workflows_per_s,pct_of_ceiling,x_naive,us_per_record,batches,commit_p50_ms,commit_p99_ms,commit_max_ms,client,client_peak_rss_mib,client_cpu_s,server_cpu_s,occurrence_rows,load1_before" >"$tmp/rows.csv"

declare -A occ_rows # occurrence rows written, per record count: every run must agree
n_run=0
run_db="" # the database of run_ingest's last run, kept for the caller to read and drop
# run_ingest KIND LABEL FILE RECORDS DBNAME [patternd flags...]
# Appends a line to $tmp/rows.csv (the ratio columns are filled in at the end):
# the fastest of --best runs for the default and deployment rows, each into a
# fresh database (DBNAME_1, DBNAME_2, ...), else of one run.
run_ingest() {
  local kind=$1 label=$2 file=$3 n=$4 db=$5
  shift 5
  local reps=1 r line best_wall="" best_line=""
  case "$kind" in default | deploy) reps=$best ;; esac
  for r in $(seq 1 "$reps"); do
    [ -z "$run_db" ] || drop_db "$run_db"
    run_db=$db
    [ "$reps" -eq 1 ] || run_db=${db}_$r
    ingest_once "$kind" "$label" "$file" "$n" "$run_db" "$@"
    if [ -z "$best_wall" ] || awk -v a="$m_wall" -v b="$best_wall" 'BEGIN { exit !(a < b) }'; then
      best_wall=$m_wall best_line=$line_out
    fi
    [ "$reps" -eq 1 ] || say "[$n_run] $label: run $r of $reps"
  done
  echo "$best_line" >>"$tmp/rows.csv"
}
# ingest_once KIND LABEL FILE RECORDS DBNAME [flags...]: one measured run;
# sets line_out to its CSV line.
ingest_once() {
  local kind=$1 label=$2 file=$3 n=$4 db=$5
  shift 5
  local db_url
  n_run=$((n_run + 1))
  db_url=$(fresh_db "$db")
  say "[$n_run] $label: ingesting $n records ($*)"
  if ! measure "$pd" ingest --quiet --db "$db_url" "$@" "$file"; then
    tail -n 20 "$tmp/stderr" "$tmp/stdout" "$tmp/time" >&2
    fail "patternd ingest exited non-zero ($label, $n records)"
  fi
  local summary processed errors rows
  summary=$(tail -n 1 "$tmp/stdout")
  processed=$(json_num processed "$summary")
  errors=$(json_num errors "$summary")
  if [ "$processed" != "$n" ] || [ "$errors" != 0 ]; then
    echo "summary: $summary" >&2
    tail -n 20 "$tmp/stderr" >&2
    fail "$label: $n records in, summary says processed=${processed:-?} errors=${errors:-?}"
  fi
  rows=$(q "$db_url" -c 'SELECT count(*) FROM pattern_occurrences')
  if [ -z "${occ_rows[$n]:-}" ]; then
    occ_rows[$n]=$rows
  elif [ "${occ_rows[$n]}" != "$rows" ]; then
    fail "$label wrote $rows occurrence rows for $n records; an earlier run wrote ${occ_rows[$n]}"
  fi
  local w b
  w=$(sed -n 's/.*--workers \([0-9]*\).*/\1/p' <<<"$*")
  b=$(sed -n 's/.*--batch \([0-9]*\).*/\1/p' <<<"$*")
  line_out="$kind,$label,$n,${w:-$def_workers},${b:-$def_batch},$m_wall,$(awk -v n="$n" -v w="$m_wall" 'BEGIN { printf "%.1f", n / w }'),$(json_num workflows_per_second "$summary"),,,$(awk -v n="$n" -v w="$m_wall" 'BEGIN { printf "%.2f", w * 1e6 / n }'),$(json_num batches "$summary"),$(json_num p50 "$summary"),$(json_num p99 "$summary"),$(json_num max "$summary"),patternd,$(awk -v k="$m_rss" 'BEGIN { printf "%.1f", k / 1024 }'),$m_cpu,$m_srv,$rows,$m_load"
  say "[$n_run] $label: $m_wall s, $(awk -v n="$n" -v w="$m_wall" 'BEGIN { printf "%.0f", n / w }') workflows/s, patternd CPU $m_cpu s, server CPU $m_srv s"
  say "[$n_run] summary: $summary"
}

say "generating $count records (not timed)"
build-bench/pd_gen --count "$count" --tenants "$tenants" --seed "$seed" >"$tmp/records.ndjson"
lines=$(wc -l <"$tmp/records.ndjson")
[ "$lines" -eq "$count" ] || fail "pd_gen wrote $lines lines, not $count"
# pd_gen streams deterministically: the first N lines are a valid input of N records.
head -n "$small" "$tmp/records.ndjson" >"$tmp/small.ndjson"
head -n "$naive_count" "$tmp/records.ndjson" >"$tmp/naive.ndjson"

# 1. Default settings at the smaller count, then the grid at the full count.
run_ingest default "ingest (defaults)" "$tmp/small.ndjson" "$small" bench_default_small
drop_db "$run_db"
run_db=""
for b in $batches_list; do
  for w in $workers_list; do
    run_ingest grid "ingest" "$tmp/records.ndjson" "$count" bench_grid --workers "$w" --batch "$b"
  done
done
drop_db "$run_db"
run_db=""

# 2. Default settings at the full count; its ledger and occurrence rows feed
# the ceilings.
run_ingest default "ingest (defaults)" "$tmp/records.ndjson" "$count" bench_default_full
say "exporting the ledger and pattern_occurrences rows of the default run (not timed)"
q "$base/$run_db" -c "\\copy (SELECT tenant_id, workflow_id, signatures, characteristics FROM workflows) TO '$tmp/ledger.copy'"
q "$base/$run_db" -c "\\copy (SELECT tenant_id, pattern_id, workflow_id, similarity_score, matched_characteristics FROM pattern_occurrences) TO '$tmp/occurrences.copy'"
ledger_rows=$(wc -l <"$tmp/ledger.copy")
[ "$ledger_rows" -eq "$count" ] || fail "exported $ledger_rows ledger rows for $count records"
exported=$(wc -l <"$tmp/occurrences.copy")
[ "$exported" -eq "${occ_rows[$count]}" ] || fail "exported $exported occurrence rows, the table has ${occ_rows[$count]}"
drop_db "$run_db"
run_db=""

# 3. The ceilings: COPY those rows into an empty minimal table, in a
# database of its own; the fastest of --copy-runs runs is kept.  The tables
# are fixed here, not derived from patternd's schema, so that a slower table
# of patternd's can never flatter the ratio.
# ceiling KIND LABEL TABLE "COLUMNS, PRIMARY KEY (...)" FILE ROWS
ceiling() {
  local kind=$1 label=$2 table=$3 ddl=$4 file=$5 rows=$6
  local copy_url copy_best="" line="" r copied
  copy_walls=()
  copy_url=$(fresh_db "bench_$table")
  for r in $(seq 1 "$copy_runs"); do
    q "$copy_url" -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS $table" \
      -c "CREATE TABLE $table ($ddl)"
    n_run=$((n_run + 1))
    say "[$n_run] $label: COPY of $rows rows, run $r of $copy_runs"
    if ! measure psql -X -q -v ON_ERROR_STOP=1 "$copy_url" -c "\\copy $table FROM '$file'"; then
      tail -n 20 "$tmp/stderr" >&2
      fail "COPY into $table failed"
    fi
    copied=$(q "$copy_url" -c "SELECT count(*) FROM $table")
    [ "$copied" -eq "$rows" ] || fail "COPY loaded $copied rows of $rows"
    say "[$n_run] $label run $r: $m_wall s, server CPU $m_srv s"
    copy_walls+=("$m_wall")
    if [ -z "$copy_best" ] || awk -v a="$m_wall" -v b="$copy_best" 'BEGIN { exit !(a < b) }'; then
      copy_best=$m_wall
      line="$kind,$label (best of $copy_runs),$count,1,$rows,$m_wall,$(awk -v n="$count" -v w="$m_wall" 'BEGIN { printf "%.1f", n / w }'),,,,$(awk -v n="$count" -v w="$m_wall" 'BEGIN { printf "%.2f", w * 1e6 / n }'),1,,,,psql,$(awk -v k="$m_rss" 'BEGIN { printf "%.1f", k / 1024 }'),$m_cpu,$m_srv,$rows,$m_load"
    fi
  done
  echo "$line" >>"$tmp/rows.csv"
  drop_db "bench_$table"
}
ceiling ceiling "ceiling: COPY of the ledger rows" ceiling_ledger \
  "tenant_id text NOT NULL, workflow_id text COLLATE \"C\" NOT NULL, signatures text[] NOT NULL, characteristics text, PRIMARY KEY (tenant_id, workflow_id)" \
  "$tmp/ledger.copy" "$ledger_rows"
ledger_walls=$(printf '%s s, ' "${copy_walls[@]}")
ceiling ceiling_occ "old ceiling: COPY of the occurrence rows" ceiling_occurrences \
  "tenant_id text NOT NULL, pattern_id bigint NOT NULL, workflow_id text NOT NULL, similarity_score double precision NOT NULL, matched_characteristics jsonb NOT NULL, PRIMARY KEY (tenant_id, pattern_id, workflow_id)" \
  "$tmp/occurrences.copy" "$exported"
occ_walls=$(printf '%s s, ' "${copy_walls[@]}")

# 4. The naive baseline: one transaction per record on one connection.
run_ingest naive "naive: a transaction per record" "$tmp/naive.ndjson" "$naive_count" bench_naive --workers 1 --batch 1
drop_db "$run_db"
run_db=""

# 5. The same --small records through PgBouncer and on Citus, each on its own
# throwaway deployment started now (the direct PostgreSQL stays up, idle).
deploy_flags=(--workers "$deploy_workers" --batch "$deploy_batch")
if $deployments; then
  say "PgBouncer (transaction pooling) in front of its own PostgreSQL"
  base=$(scripts/pgbouncer.sh start "$tmp/bouncer")
  base=${base%/postgres}
  admin_url=$(scripts/pgbouncer.sh direct-url "$tmp/bouncer") target=pgbouncer checkpoint_urls=$admin_url
  postmasters=" $(head -n 1 "$tmp/bouncer/pg/data/postmaster.pid") " others=" $(cat "$tmp/bouncer/pgbouncer.pid") "
  run_ingest deploy "ingest via PgBouncer (transaction pooling)" "$tmp/small.ndjson" "$small" bench_bouncer "${deploy_flags[@]}"
  scripts/pgbouncer.sh stop "$tmp/bouncer" >&2

  say "Citus: a coordinator and 2 workers"
  export CITUS_SRC=${CITUS_SRC:-$root/../shared/citus/citus-13.2.2-pg15.20.tar.gz}
  citus_url=$(scripts/citus.sh start "$tmp/citus")
  target=citus checkpoint_urls="$citus_url $(scripts/citus.sh worker-url "$tmp/citus" 1) $(scripts/citus.sh worker-url "$tmp/citus" 2)"
  postmasters=" " others=" "
  for node in coordinator worker1 worker2; do postmasters+="$(head -n 1 "$tmp/citus/$node/data/postmaster.pid") "; done
  run_ingest deploy "ingest on Citus (coordinator + 2 workers)" "$tmp/small.ndjson" "$small" bench_citus "${deploy_flags[@]}"
  scripts/citus.sh stop "$tmp/citus" >&2
fi

# Ratios, now that the ceiling and the baseline are known.
ceiling_wps=$(awk -F, '$1 == "ceiling" { print $7 }' "$tmp/rows.csv")
naive_wps=$(awk -F, '$1 == "naive" { print $7 }' "$tmp/rows.csv")
awk -F, -v OFS=, -v c="$ceiling_wps" -v nv="$naive_wps" 'NR == 1 { print; next } {
  $9 = sprintf("%.1f", 100 * $7 / c); $10 = sprintf("%.1f", $7 / nv); print }' "$tmp/rows.csv" >"$csv"

# The markdown table, in the order: ceiling, naive, defaults, grid.
table=$(awk -F, 'NR > 1 {
  rank = ($1 == "ceiling") ? 0 : ($1 == "ceiling_occ") ? 1 : ($1 == "naive") ? 2 : ($1 == "default" || $1 == "deploy") ? 3 : 4
  print rank "\t" $0 }' "$csv" | sort -t$'\t' -k1,1n -s | cut -f2- | awk -F, '
  function dash(v) { return v == "" ? "—" : v }
  function ms(v) { return v == "" ? "—" : sprintf("%.1f", v) }
  {
    label = $2
    client = ($16 == "psql") ? " †" : ""
    copy = ($1 == "ceiling" || $1 == "ceiling_occ")
    workers = copy ? "—" : $4
    batch = copy ? "1 COPY" : $5
    printf "| %s | %d | %s | %s | %.2f | %.0f | %.1f%% | %.1f× | %.1f | %s | %s | %s | %.1f%s | %.2f%s | %.2f | %.1f |\n",
      label, $3, workers, batch, $6, $7, $9, $10, $11, dash($12), ms($13), ms($14), $17, client, $18, client, $19, $19 * 1e6 / $3
  }')

# The chart: throughput against workers, one line per batch size.
{
  printf 'workers'
  for b in $batches_list; do printf '\t"batch %s"' "$b"; done
  printf '\n'
  for w in $workers_list; do
    printf '%s' "$w"
    for b in $batches_list; do
      printf '\t%s' "$(awk -F, -v w="$w" -v b="$b" '$1 == "grid" && $4 == w && $5 == b { print $7 }' "$csv")"
    done
    printf '\n'
  done
} >"$tmp/chart.dat"
def_full_wps=$(awk -F, -v n="$count" '$1 == "default" && $3 == n { print $7 }' "$csv")
ymax=$(awk -F, 'NR > 1 && $7 > m { m = $7 } END { printf "%.0f", m * 1.12 }' "$csv")
LC_ALL=C.UTF-8 gnuplot -e "datafile='$tmp/chart.dat'; outfile='$out/harness.png'; ceiling=$ceiling_wps; naive=$naive_wps; nbatches=$(wc -w <<<"$batches_list"); def_workers=${def_workers:-0}; def_wps=$def_full_wps; ymax=$ymax; subtitle='$(printf "%s records, %s tenants, PostgreSQL %s (fsync, synchronous_commit on), nproc=%s, %s" "$count" "$tenants" "${pg_version%% *}" "$(nproc)" "$(date -u +%Y-%m-%d)")'" \
  bench/chart.gp
[ -s "$out/harness.png" ] || fail "gnuplot wrote no chart"

# The ratios and the performance targets.
def_small_us=$(awk -F, -v n="$small" '$1 == "default" && $3 == n { print $11 }' "$csv")
def_small_wps=$(awk -F, -v n="$small" '$1 == "default" && $3 == n { print $7 }' "$csv")
def_full_us=$(awk -F, -v n="$count" '$1 == "default" && $3 == n { print $11 }' "$csv")
def_full_rss=$(awk -F, -v n="$count" '$1 == "default" && $3 == n { print $17 }' "$csv")
def_full_p99=$(awk -F, -v n="$count" '$1 == "default" && $3 == n { print $14 }' "$csv")
def_full_srv=$(awk -F, -v n="$count" '$1 == "default" && $3 == n { printf "%.1f", $19 * 1e6 / $3 }' "$csv")
ceiling_srv=$(awk -F, '$1 == "ceiling" { printf "%.1f", $19 * 1e6 / $3 }' "$csv")
occ_wps=$(awk -F, '$1 == "ceiling_occ" { print $7 }' "$csv")
citus_wps=$(awk -F, '$1 == "deploy" && $2 ~ /Citus/ { print $7 }' "$csv")
bouncer_wps=$(awk -F, '$1 == "deploy" && $2 ~ /PgBouncer/ { print $7 }' "$csv")
verdict=$(awk -v d="$def_full_wps" -v c="$ceiling_wps" -v oc="$occ_wps" -v nv="$naive_wps" -v a="$def_full_us" -v b="$def_small_us" \
  -v N="$count" -v S="$small" -v label="$def_label" -v rss="$def_full_rss" -v p99="$def_full_p99" \
  -v ds="$def_full_srv" -v cs="$ceiling_srv" -v dsm="$def_small_wps" -v ci="$citus_wps" -v pb="$bouncer_wps" -v best="$best" 'BEGIN {
  ok = "**met**"; no = "**NOT met**"
  p = 100 * d / c; x = d / nv; r = a / b
  printf "- Direct ingest, default settings (%s), at %d records: %.1f%% of the ledger COPY ceiling (%.0f / %.0f workflows/s, best of %d each; target ≥ 75%%) — %s\n", label, N, p, d, c, best, (p >= 75 ? ok : no)
  if (ci != "") {
    q = 100 * ci / dsm
    printf "- Citus / direct at %d records: %.1f%% (%.0f / %.0f workflows/s, best of %d each; target ≥ 70%%) — %s\n", S, q, ci, dsm, best, (q >= 70 ? ok : no)
  }
  if (pb != "") printf "- PgBouncer / direct at %d records: %.1f%% (%.0f / %.0f workflows/s)\n", S, 100 * pb / dsm, pb, dsm
  printf "- Of the old occurrence-row COPY ceiling: %.1f%% (%.0f / %.0f workflows/s)\n", 100 * d / oc, d, oc
  printf "- Server CPU per workflow: %.1f µs for ingest, %.1f µs for the ledger COPY (%.2f×)\n", ds, cs, ds / cs
  printf "- ≥ 10× the naive baseline: %.0f / %.0f workflows/s = %.1f× — %s\n", d, nv, x, (x >= 10 ? ok : no)
  printf "- Per-record cost at %d within 20%% of that at %d: %.2f / %.2f µs = ratio %.3f (target ≤ 1.20) — %s\n", N, S, a, b, r, (r <= 1.20 ? ok : no)
  printf "- Peak RSS at %d below 100 MiB: %.1f MiB — %s\n", N, rss, (rss < 100 ? ok : no)
  printf "- Commit p99 at %d: %.1f ms\n", N, p99
}')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
{
  echo "## patternd ingest vs the COPY ceiling and the naive baseline"
  echo
  echo "| run | records | workers | batch | wall s | workflows/s | of ceiling | × naive | µs per record | batches | commit p50 ms | commit p99 ms | patternd peak RSS MiB | patternd CPU s | server CPU s | server CPU µs per workflow |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "$table"
  echo
  echo "### Ratios and targets"
  echo
  echo "$verdict"
  echo
  echo "### How it was measured"
  echo
  echo "- Command: \`$invocation\` ($elapsed s in all)"
  echo "- Input: \`build-bench/pd_gen --count $count --tenants $tenants --seed $seed\` (not timed); the $small-record default run and the naive baseline use its first $small and $naive_count records."
  echo "- Every ingest: a fresh database, \`patternd migrate\`, a \`CHECKPOINT\`, then \`/usr/bin/time -f '%M %U %S' build-bench/patternd ingest --quiet --db URL [--workers W --batch B] FILE\`; its summary must say processed = records and errors = 0, and every run at $count records wrote the same ${occ_rows[$count]} occurrence rows."
  echo "- workflows/s = records / wall time of the whole process (start-up, reading, connecting included). Commit latency: patternd's summary, each batch's transaction from BEGIN to COMMIT acknowledged."
  echo "- Ceiling: the $ledger_rows ledger rows (one per workflow) written by the $count-record default run, exported with \`\\copy (SELECT tenant_id, workflow_id, signatures, characteristics FROM workflows) TO FILE\` and loaded with \`psql -c '\\copy ceiling_ledger FROM FILE'\` into an empty minimal table in a fresh database: \`CREATE TABLE ceiling_ledger (tenant_id text NOT NULL, workflow_id text COLLATE \"C\" NOT NULL, signatures text[] NOT NULL, characteristics text, PRIMARY KEY (tenant_id, workflow_id))\`, fixed by the harness whatever patternd's schema; one transaction; workflows/s = $count input records / COPY wall seconds; fastest of $copy_runs runs (${ledger_walls%, }). It writes what patternd must store per workflow and nothing else: not the revision columns of the ledger (version, digest, numbers), nor the \`operation_patterns\` statistics, the weekly series or the audit rows that ingest maintains as well."
  echo "- Old ceiling, kept for comparison with earlier reports: the ${exported} occurrence rows of the same run, \`\\copy (SELECT tenant_id, pattern_id, workflow_id, similarity_score, matched_characteristics FROM pattern_occurrences) TO FILE\`, loaded the same way into \`ceiling_occurrences (tenant_id text, pattern_id bigint, workflow_id text, similarity_score double precision, matched_characteristics jsonb, PRIMARY KEY (tenant_id, pattern_id, workflow_id))\`, all NOT NULL; fastest of $copy_runs runs (${occ_walls%, })."
  echo "- Default-settings and deployment rows: the fastest of $best runs, each into a fresh database."
  echo "- Naive baseline: \`patternd ingest --workers 1 --batch 1\` (one transaction per record on one connection) on the first $naive_count records only, since the full input would take too long; its rate is per record."
  if $deployments; then
    echo "- PgBouncer and Citus rows: the first $small records, \`--workers $deploy_workers --batch $deploy_batch\`, compare with the direct \`ingest (defaults)\` row at $small. PgBouncer 1.18 (\`pool_mode = transaction\`, scripts/pgbouncer.sh) in front of its own PostgreSQL; its server CPU includes PgBouncer's. Citus: a coordinator and 2 workers (scripts/citus.sh), every node a PostgreSQL on these same $(nproc) cores; its server CPU is the three nodes'. On one machine the Citus row shows the cost of distribution, not scale-out: the nodes compete for the cores that one PostgreSQL had to itself. Each batch is one call of a function distributed by tenant, which Citus delegates whole to the worker holding the tenant (a one-node transaction, no two-phase commit)."
  fi
  echo "- † the COPY rows' client is psql: its peak RSS and CPU, not patternd's."
  echo "- Server CPU: utime+stime+cutime+cstime of the postmaster plus utime+stime of its live children, from /proc, before and 0.3 s after each run (CLK_TCK=$hz); it includes the server's background processes."
  echo "- PostgreSQL $pg_version via scripts/pg.sh on the same machine: fsync=$pg_fsync, synchronous_commit=$pg_sync, full_page_writes=$pg_fpw, wal_sync_method=$pg_wsm, shared_buffers=$pg_sb, max_wal_size=$pg_mwal."
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- Machine: nproc=$(nproc), CPU: ${cpu:-unknown}; load average (1/5/15 min) before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- Files: \`$(realpath --relative-to="$root" "$csv")\`, \`$(realpath --relative-to="$root" "$out/harness.md")\`, \`$(realpath --relative-to="$root" "$out/harness.png")\`"
} | tee "$out/harness.md"
