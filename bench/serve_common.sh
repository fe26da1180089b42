# Shared by bench/serve.sh and bench/abuse.sh (sourced, not run): a
# throwaway PostgreSQL, the Release build of patternd, pd_gen and pd_load,
# and a `patternd serve` running as a member of patternd_service.
#
#   bench_start              sets tmp, bin, url, base, load_before; stops
#                            everything it started when the script exits
#   bench_service_db NAME    creates and migrates database NAME; sets service_url
#   bench_serve ARGS...      starts serve on a free port with ARGS; sets serve_pid, port
#   json_num KEY JSON        a number of a one-line JSON summary

bench_start() {
  cd "$(dirname "$0")/.."
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  serve_pid=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  scripts/setup.sh
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPD_BUILD_TESTS=OFF >&2
  cmake --build build-bench -j"$(nproc)" --target patternd pd_gen pd_load >&2
  bin=build-bench
  url=$(scripts/pg.sh start "$tmp/pg")
  base=${url%/postgres}
  psql -q -v ON_ERROR_STOP=1 "$url" -c "CREATE ROLE bench_service LOGIN" >&2
}

bench_cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  if [ -e "$tmp/pg" ]; then scripts/pg.sh stop "$tmp/pg" || true; fi
  rm -rf "$tmp"
}

bench_service_db() {
  psql -q -v ON_ERROR_STOP=1 "$url" -c "CREATE DATABASE $1" >&2
  $bin/patternd migrate --db "$base/$1" >&2
  psql -q -v ON_ERROR_STOP=1 "$url" -c "GRANT patternd_service TO bench_service" >&2
  service_url=${base/postgres@/bench_service@}/$1
}

bench_serve() {
  $bin/patternd serve --db "$service_url" --listen 127.0.0.1:0 "$@" \
    --log-level warn >"$tmp/serve.out" 2>"$tmp/serve.err" &
  serve_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/serve.out" ] && break; sleep 0.1; done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/serve.out")
  [ -n "$port" ] || { cat "$tmp/serve.err" >&2; exit 1; }
}

json_num() { sed -n "s/.*\"$1\": *\(-\{0,1\}[0-9.][0-9.]*\).*/\1/p" <<<"$2"; }
