#!/usr/bin/env bash
# A throwaway Citus cluster (a coordinator and 2 worker nodes) for tests.
#
#   scripts/citus.sh start DIR            create the 3 nodes in DIR (must not exist) on free
#                                         loopback ports, print the coordinator URL on stdout
#   scripts/citus.sh url DIR              print the coordinator URL
#   scripts/citus.sh createdb DIR NAME    create database NAME on every node, with the citus
#                                         extension and the workers registered in it; print
#                                         its coordinator URL (about 2 s: a copy of a template
#                                         made by start).  Each such database keeps a Citus
#                                         maintenance process per node and a few connections
#                                         between nodes: a test cluster holds some 60
#   scripts/citus.sh worker-url DIR N     print the URL of worker N (1 or 2)
#   scripts/citus.sh restart-worker DIR N restart worker N (pg_ctl -m fast), for fault tests
#   scripts/citus.sh restart DIR          restart the coordinator (pg_ctl -m fast)
#   scripts/citus.sh stop DIR             stop all nodes and remove DIR
#   scripts/citus.sh install              only make sure Citus is installed (see below)
#
# Each node is a scripts/pg.sh cluster (trust auth on loopback, so the coordinator
# reaches the workers as the connecting user) with shared_preload_libraries = citus,
# CREATE EXTENSION citus in the database postgres, the workers registered with
# citus_set_coordinator_host() and citus_add_node().  An installed Citus (citus.so in
# pg_config --pkglibdir) is used as it is; otherwise one is built from the source tarball
# named by CITUS_SRC and installed into the system PostgreSQL (as root, or with sudo),
# once: later runs find it installed and take no time.
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

here=$(cd "$(dirname "$0")" && pwd)
pg="$here/pg.sh"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "citus.sh: PostgreSQL server binaries not found; run scripts/setup.sh" >&2; exit 1; }
pg_config="$bindir/pg_config"
[ -x "$pg_config" ] || pg_config=$(command -v pg_config || true)

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

installed() {
  [ -n "$pg_config" ] || return 1
  [ -f "$("$pg_config" --pkglibdir)/citus.so" ] && [ -f "$("$pg_config" --sharedir)/extension/citus.control" ]
}

# Builds and installs Citus from $CITUS_SRC unless it is installed already.  A lock keeps
# two concurrent starts from building twice.
ensure_citus() {
  installed && return 0
  local src=${CITUS_SRC:-}
  if [ -z "$src" ] || [ ! -f "$src" ]; then
    echo "citus.sh: Citus is not installed and CITUS_SRC does not name a source tarball (e.g. CITUS_SRC=../shared/citus/citus-13.2.2-pg15.20.tar.gz)" >&2
    exit 1
  fi
  src=$(cd "$(dirname "$src")" && pwd)/$(basename "$src")
  [ -x "$bindir/pg_config" ] || { echo "citus.sh: building Citus needs postgresql-server-dev; run scripts/setup.sh" >&2; exit 1; }
  pg_config="$bindir/pg_config"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  exec 9>"${TMPDIR:-/tmp}/patternd-citus-build.lock"
  flock 9
  installed && { exec 9>&-; return 0; }
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/citus-build.XXXXXX")
  echo "citus.sh: building Citus from $src (log in $work/build.log)" >&2
  local t0=$SECONDS
  if ! ( set -e
         tar xzf "$src" -C "$work"
         cd "$work"/citus-*/
         ./configure PG_CONFIG="$pg_config" --without-libcurl
         # with_llvm=no: no LLVM bitcode for JIT inlining, which halves the build.
         make -j"$(nproc)" with_llvm=no
         $sudo make install with_llvm=no ) >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    echo "citus.sh: the Citus build failed; the full log is $work/build.log" >&2
    exit 1
  fi
  echo "citus.sh: Citus built and installed in $((SECONDS - t0)) s" >&2
  rm -rf "$work"
  exec 9>&-
}

psql_at() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -At -d "$1" -c "$2"; }

template=pd_citus_template

# Citus's node metadata is per database: registers the coordinator and the two workers in
# the database at URL $1 (the workers must have a database of the same name with citus).
register() {
  psql_at "$1" "SELECT citus_set_coordinator_host('127.0.0.1', $(cat "$dir/coordinator/port"))" >/dev/null
  for n in 1 2; do
    psql_at "$1" "SELECT citus_add_node('127.0.0.1', $(cat "$dir/worker$n/port"))" >/dev/null
  done
}

node_dir() {  # DIR N -> DIR/coordinator or DIR/workerN
  case "$2" in
    0) echo "$1/coordinator" ;;
    1|2) echo "$1/worker$2" ;;
    *) echo "citus.sh: worker number must be 1 or 2" >&2; exit 2 ;;
  esac
}

cmd=${1:-}; dir=${2:-}
case "$cmd" in
  -h|--help|"") usage; [ -n "$cmd" ]; exit ;;
  install) ensure_citus; exit ;;
esac
[ -n "$dir" ] || { echo "citus.sh: $cmd needs a folder" >&2; exit 2; }

case "$cmd" in
worker-url|restart-worker)
  case "${3:-}" in 1|2) ;; *) echo "citus.sh: $cmd needs a worker number, 1 or 2" >&2; exit 2 ;; esac ;;
esac

case "$cmd" in
start)
  [ ! -e "$dir" ] || { echo "citus.sh: $dir already exists" >&2; exit 1; }
  ensure_citus
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
  ok=0
  trap '[ "$ok" = 1 ] || "$0" stop "$dir" >/dev/null 2>&1 || true' EXIT
  start_node() {
    local d
    d=$(node_dir "$dir" "$1")
    # Every test database keeps connections between the nodes and a maintenance
    # daemon per node, and the suites make a hundred or more of them.
    PG_MAX_CONNECTIONS=1000 "$pg" start "$d" >/dev/null
    # Node-to-node connections stay on loopback without TLS (throwaway cluster);
    # Citus raises max_prepared_transactions itself for its two-phase commits.
    cat >>"$d/data/postgresql.conf" <<EOF

# scripts/citus.sh
shared_preload_libraries = 'citus'
citus.node_conninfo = 'sslmode=disable'
# Citus runs a maintenance background worker per database that has the extension, and
# tests make a database each (createdb).
max_worker_processes = 256
# A transaction left prepared on a worker that restarted mid-commit holds its row locks until
# the coordinator's recovery settles it: every 2 s here rather than every minute, so that the
# fault tests do not wait.
citus.recover_2pc_interval = '2s'
EOF
    "$pg" restart "$d"
    psql_at "$("$pg" url "$d")" "CREATE EXTENSION citus"
  }
  # The three nodes start side by side.
  pids=()
  for n in 0 1 2; do start_node $n & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || { echo "citus.sh: a node did not start" >&2; exit 1; }; done
  coord=$("$pg" url "$dir/coordinator")
  register "$coord"
  # The template of createdb: on every node a database with the citus extension, closed to
  # connections (CREATE DATABASE refuses a template someone is connected to, and Citus's
  # maintenance daemon connects to every database that has the extension).
  pids=()
  for n in 0 1 2; do
    u=$("$pg" url "$(node_dir "$dir" $n)")
    ( psql_at "$u" "CREATE DATABASE $template" 2>/dev/null
      psql_at "${u%/postgres}/$template" "CREATE EXTENSION citus"
      psql_at "$u" "ALTER DATABASE $template WITH ALLOW_CONNECTIONS false"
      psql_at "$u" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$template'" >/dev/null
    ) & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "citus.sh: the template database was not made" >&2; exit 1; }; done
  ok=1
  echo "$coord"
  ;;
createdb)
  name=${3:-}
  [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "citus.sh: createdb needs a lower-case database name" >&2; exit 2; }
  # One at a time: node registrations in two databases at once collide on the workers'
  # shared catalogs ("tuple concurrently updated").
  exec 8>"$dir/createdb.lock"
  flock 8
  pids=()
  for n in 0 1 2; do
    u=$("$pg" url "$(node_dir "$dir" $n)")
    PGOPTIONS="-c client_min_messages=warning" psql_at "$u" "CREATE DATABASE $name TEMPLATE $template" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "citus.sh: CREATE DATABASE $name failed" >&2; exit 1; }; done
  coord=$("$pg" url "$dir/coordinator")
  register "${coord%/postgres}/$name"
  echo "${coord%/postgres}/$name"
  ;;
url)
  "$pg" url "$dir/coordinator" ;;
worker-url)
  "$pg" url "$(node_dir "$dir" "${3:-}")" ;;
restart-worker)
  "$pg" restart "$(node_dir "$dir" "${3:-}")" ;;
restart)
  "$pg" restart "$dir/coordinator" ;;
stop)
  for n in 1 2 0; do
    d=$(node_dir "$dir" $n)
    [ ! -d "$d" ] || "$pg" stop "$d"
  done
  rm -rf "$dir" ;;
*)
  usage >&2; exit 2 ;;
esac
