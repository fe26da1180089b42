#!/usr/bin/env bash
# A throwaway PgBouncer in transaction pooling mode in front of a throwaway PostgreSQL.
#
#   scripts/pgbouncer.sh start DIR       create a cluster in DIR/pg (scripts/pg.sh) and a
#                                        PgBouncer in front of it on a free loopback port,
#                                        print the PgBouncer URL on stdout
#   scripts/pgbouncer.sh url DIR         print the PgBouncer URL
#   scripts/pgbouncer.sh direct-url DIR  print the URL of the cluster itself (for migrate,
#                                        or to look behind the pooler)
#   scripts/pgbouncer.sh restart DIR     restart the cluster behind PgBouncer (fault tests)
#   scripts/pgbouncer.sh stop DIR        stop both and remove DIR
#
# PgBouncer (Debian's pgbouncer) runs with pool_mode = transaction, so consecutive
# transactions of one client may run on different server connections; 40 server
# connections per user and database, 500 clients; an idle server connection closes after
# 5 s, for the tests leave a database behind each.  Every database and every role of the
# cluster passes through, including roles created later: auth_type = trust (the cluster
# trusts loopback too) and unknown users are looked up with auth_query as postgres.
# When run as root PgBouncer runs as the postgres OS user, like the server.
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

here=$(cd "$(dirname "$0")" && pwd)
pg="$here/pg.sh"
bouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$bouncer" ] || { echo "pgbouncer.sh: pgbouncer not found; run scripts/setup.sh" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}; dir=${2:-}
case "$cmd" in
  -h|--help|"") usage; [ -n "$cmd" ]; exit ;;
esac
[ -n "$dir" ] || { echo "pgbouncer.sh: $cmd needs a folder" >&2; exit 2; }

url_of() { echo "postgresql://postgres@127.0.0.1:$(cat "$1/port")/postgres"; }

stop_bouncer() {
  local pid
  pid=$(cat "$1/pgbouncer.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || return 0  # SIGTERM: immediate shutdown
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

case "$cmd" in
start)
  [ ! -e "$dir" ] || { echo "pgbouncer.sh: $dir already exists" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
  "$pg" start "$dir/pg" >/dev/null || { rm -rf "$dir"; exit 1; }
  pgport=$(cat "$dir/pg/port")
  # The one user PgBouncer knows beforehand: the one that runs auth_query.  The cluster
  # trusts loopback, so no password is needed on either side.
  echo '"postgres" ""' >"$dir/userlist.txt"
  for _ in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue  # taken
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pgport

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
auth_type = trust
auth_file = $dir/userlist.txt
auth_user = postgres
auth_query = SELECT rolname, NULL::text FROM pg_catalog.pg_roles WHERE rolname = \$1 AND rolcanlogin
admin_users = postgres
stats_users = postgres
pool_mode = transaction
default_pool_size = 40
min_pool_size = 0
reserve_pool_size = 10
reserve_pool_timeout = 2
max_client_conn = 500
max_db_connections = 0
server_lifetime = 3600
; each test makes a database and leaves it: close its idle server connections within
; seconds, or the pools of finished tests hold max_connections and the next test's pool
; gets no server connection at all
server_idle_timeout = 5
query_wait_timeout = 120
; after a failed server login (the server restarting), try again within a second, not 15
server_login_retry = 1
log_connections = 0
log_disconnections = 0
EOF
    touch "$dir/pgbouncer.log"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir/pgbouncer.ini" "$dir/userlist.txt" "$dir/pgbouncer.log"
    rm -f "$dir/pgbouncer.pid"
    # A pool of 40 per user and database needs more than the usual 1024 descriptors.
    if (ulimit -n 4096 2>/dev/null || true; as_owner "$bouncer" -d -q "$dir/pgbouncer.ini") 2>>"$dir/pgbouncer.err"; then
      for _ in $(seq 50); do
        if [ -s "$dir/pgbouncer.pid" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
          echo "$port" >"$dir/port"
          url_of "$dir"
          exit 0
        fi
        [ -s "$dir/pgbouncer.pid" ] && ! kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null && break
        sleep 0.1
      done
      stop_bouncer "$dir"
    fi
  done
  echo "pgbouncer.sh: could not start PgBouncer; see $dir/pgbouncer.log" >&2
  tail -n 20 "$dir/pgbouncer.err" "$dir/pgbouncer.log" >&2 || true
  "$pg" stop "$dir/pg" || true
  exit 1
  ;;
url)
  url_of "$dir" ;;
direct-url)
  "$pg" url "$dir/pg" ;;
restart)
  "$pg" restart "$dir/pg" ;;
stop)
  stop_bouncer "$dir"
  [ ! -d "$dir/pg" ] || "$pg" stop "$dir/pg"
  rm -rf "$dir" ;;
*)
  usage >&2; exit 2 ;;
esac
