#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests, benchmarks and the demo.
#
#   scripts/pg.sh start DIR   create a cluster in DIR (must not exist), start it
#                             on a free loopback port, print its URL on stdout
#   scripts/pg.sh url DIR     print the URL of the cluster in DIR
#   scripts/pg.sh stop DIR    stop the cluster and remove DIR
#
# Nothing here depends on a system service or a fixed port.  When run as root
# the server runs as the postgres OS user, since PostgreSQL refuses root.
# Durability settings are PostgreSQL's defaults (fsync and synchronous_commit
# on), so what is measured against it is what production would see.
# PG_MAX_CONNECTIONS sets max_connections (default 200).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "pg.sh: PostgreSQL server binaries not found; run scripts/setup.sh" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}; dir=${2:-}
case "$cmd" in
  -h|--help|"") usage; [ -n "$cmd" ]; exit ;;
esac
[ -n "$dir" ] || { echo "pg.sh: $cmd needs a folder" >&2; exit 2; }

url_of() { echo "postgresql://postgres@127.0.0.1:$(cat "$1/port")/postgres"; }

case "$cmd" in
start)
  [ ! -e "$dir" ] || { echo "pg.sh: $dir already exists" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    runuser -u postgres -- test -w "$dir" \
      || { echo "pg.sh: the postgres user cannot reach $dir (a parent folder is private); use a folder it can enter" >&2; rm -rf "$dir"; exit 1; }
  fi
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue  # taken
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
         -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=${PG_MAX_CONNECTIONS:-200}" start >/dev/null; then
      echo "$port" >"$dir/port"
      url_of "$dir"
      exit 0
    fi
  done
  echo "pg.sh: could not start PostgreSQL; see $dir/server.log" >&2
  tail -n 20 "$dir/server.log" >&2 || true
  exit 1
  ;;
url)
  url_of "$dir" ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir" ;;
restart)
  # Used by the fault tests: a real server restart under load.
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast restart >/dev/null ;;
*)
  usage >&2; exit 2 ;;
esac
