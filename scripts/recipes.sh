#!/usr/bin/env bash
# Runs the recipes of README.md and docs/deployments.md as written.
#
#   scripts/recipes.sh            run every recipe; exit non-zero on the first failure
#   scripts/recipes.sh --list     print the recipes, as they would run, and run nothing
#
# A recipe is every ```sh block marked with <!-- recipe: NAME --> on the line before
# it; the blocks of one NAME run in document order as one bash script (set -euo
# pipefail), from the root of a copy of the source tree, as a user who cloned it
# would.  A block marked <!-- not-run: why --> is skipped; any other sh block is an
# error, so that the documents cannot hold a command nothing runs.
#
# Each recipe gets a database of its own, which this script starts and removes:
#   install   (no database) builds and installs with cmake --install; then, from
#             another folder, the installed bin/patternd migrates a database with
#             nothing but --db, and the unit file is checked with systemd-analyze
#   demo      scripts/demo.sh
#   readme    a PostgreSQL cluster (scripts/pg.sh)
#   direct    a PostgreSQL cluster; tls then runs on the same one, behind nginx
#   pgbouncer scripts/pgbouncer.sh (transaction pooling)
#   citus     scripts/citus.sh (a coordinator and 2 workers; CITUS_SRC as test.sh)
#   managed   a PostgreSQL cluster where the recipe's role is no superuser: it has
#             CREATEROLE and owns the database, as a managed service's main user does
# The recipes read libpq's PG* variables, which are set here for each database; the
# roles the recipes create log in with passwords (scram-sha-256), so PGPASSWORD is
# checked.  Everything runs in a private network namespace when possible (as root),
# so the fixed ports of the recipes (8080, 8443) are free; otherwise they must be.
# Installs what is missing (scripts/setup.sh in the copy, and nginx for the tls recipe).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
list=false
case "${1:-}" in
  --list) list=true ;;
  -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "recipes.sh: unknown option $1" >&2; exit 2 ;;
esac
docs=("$root/README.md" "$root/docs/deployments.md")

# --- extraction ----------------------------------------------------------------------------
# Writes DIR/NAME.sh for each recipe NAME and DIR/order (names, first appearance first).
extract() {
  local out=$1 f
  : >"$out/order"
  for f in "${docs[@]}"; do
    awk -v out="$out" -v file="${f#"$root"/}" '
      function fail(msg) { printf "%s:%d: %s\n", file, NR, msg > "/dev/stderr"; bad = 1 }
      inblock && /^```[[:space:]]*$/ { inblock = 0; next }
      inblock { if (name != "-") print >> (out "/" name ".sh"); next }
      /^<!-- recipe: [a-z0-9-]+ -->[[:space:]]*$/ { marker = $3; next }
      /^<!-- not-run: .+ -->[[:space:]]*$/ { marker = "-"; next }
      /^```(sh|bash|shell|console)[[:space:]]*$/ {
        if (marker == "") fail("a sh block with neither <!-- recipe: NAME --> nor <!-- not-run: why --> before it")
        name = marker; marker = ""; inblock = 1
        if (name != "-") {
          if (!(name in seen)) { seen[name] = 1; print name >> (out "/order") }
          printf "\n# --- %s:%d\n", file, NR >> (out "/" name ".sh")
        }
        next
      }
      /^```/ { marker = ""; inblock = 2; name = "-"; next }  # another language: not run
      /[^[:space:]]/ { if (marker != "") fail("a marker must be followed by its sh block"); marker = "" }
      END { if (inblock) fail("unterminated block"); exit bad }
    ' "$f" || return 1
  done
}

if $list; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  extract "$tmp"
  while read -r name; do printf '=== %s\n' "$name"; cat "$tmp/$name.sh"; echo; done <"$tmp/order"
  exit 0
fi

# --- a copy of the source tree, set up as on a fresh machine ------------------------------
# Made before entering the network namespace, where there is no network: scripts/setup.sh
# installs what is missing (with apt-get and npm), nginx is the tls recipe's proxy.
if [ -z "${PD_RECIPES_TMP:-}" ]; then
  tmp=$(mktemp -d /tmp/patternd-recipes.XXXXXX)
  chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  mkdir "$tmp/src" "$tmp/home" "$tmp/elsewhere"
  # As a clone has it: tracked and new files, no build folders.
  (cd "$root" && git ls-files -z -co --exclude-standard | grep -zv '^build' | tar -c --null -T - -f -) \
    | tar -x -C "$tmp/src"
  "$tmp/src/scripts/setup.sh"
  if ! command -v nginx >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
  fi
  # A private network namespace, so that the recipes' fixed ports are free.
  if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
    trap - EXIT
    exec env PD_RECIPES_TMP="$tmp" PD_RECIPES_NETNS=1 unshare -n "$0" "$@"
  fi
else
  tmp=$PD_RECIPES_TMP
fi
if [ -n "${PD_RECIPES_NETNS:-}" ]; then
  ip link set lo up
else
  for port in 8080 8443; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "recipes.sh: port $port is taken, and a private network namespace needs root" >&2
      exit 1
    fi
  done
fi

clusters=()
cleanup() {
  local c
  for c in "${clusters[@]}"; do
    case "$c" in
      pg:*) "$root/scripts/pg.sh" stop "${c#pg:}" >/dev/null 2>&1 || true ;;
      bouncer:*) "$root/scripts/pgbouncer.sh" stop "${c#bouncer:}" >/dev/null 2>&1 || true ;;
      citus:*) "$root/scripts/citus.sh" stop "${c#citus:}" >/dev/null 2>&1 || true ;;
    esac
  done
  [ ! -f "$tmp/src/nginx.pid" ] || kill "$(cat "$tmp/src/nginx.pid")" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir "$tmp/recipes"
extract "$tmp/recipes"

step() { printf '\n=== %s\n' "$*"; }

# Runs recipe NAME in the source copy with the environment given as NAME=VALUE arguments.
run_recipe() {
  local name=$1; shift
  [ -f "$tmp/recipes/$name.sh" ] || { echo "recipes.sh: no recipe named $name in the documents" >&2; exit 1; }
  step "recipe $name"
  if ! (cd "$tmp/src" && env -u DATABASE_URL -u PGSERVICE HOME="$tmp/home" \
          PATH="$tmp/home/.local/bin:$PATH" "$@" timeout 900 bash -euo pipefail "$tmp/recipes/$name.sh") \
       | tee "$tmp/out-$name.log"; then
    echo "recipes.sh: recipe $name failed" >&2
    exit 1
  fi
  echo "$name" >>"$tmp/ran"
}

# Fails unless recipe NAME's standard output has at least N lines matching the regex RE.
expect() {
  local name=$1 n=$2 re=$3 got
  got=$(grep -cE -- "$re" "$tmp/out-$name.log" || true)
  [ "$got" -ge "$n" ] || { echo "recipes.sh: recipe $name: expected $n lines matching /$re/, got $got" >&2; exit 1; }
}

# libpq's variables for a URL postgresql://USER@HOST:PORT/DB.
pg_env() {
  local rest=${1#postgresql://}
  local user=${rest%%@*} hostport=${rest#*@}
  hostport=${hostport%%/*}
  echo "PGHOST=${hostport%%:*} PGPORT=${hostport##*:} PGDATABASE=${rest##*/} PGUSER=$user"
}

# Starts a PostgreSQL cluster in DIR whose roles made by the recipes need their password.
start_pg() {
  local dir=$1 url
  url=$("$root/scripts/pg.sh" start "$dir")
  clusters+=("pg:$dir")
  sed -i '1i host all patternd_owner,patternd_app,alice 127.0.0.1/32 scram-sha-256' "$dir/data/pg_hba.conf"
  psql -X -q -d "$url" -c 'SELECT pg_reload_conf()' >/dev/null
  echo "$url"
}

: >"$tmp/ran"

# --- install, and migrate from another folder --------------------------------------------
run_recipe install
prefix="$tmp/home/.local"
[ -x "$prefix/bin/patternd" ] || { echo "recipes.sh: the install recipe gave no bin/patternd" >&2; exit 1; }
url=$(start_pg "$tmp/pg-install")
(cd "$tmp/elsewhere" && "$prefix/bin/patternd" migrate --db "$url")
(cd "$tmp/elsewhere" && "$prefix/bin/patternd" migrate --status --db "$url" >/dev/null)
"$root/scripts/pg.sh" stop "$tmp/pg-install"
unit="$prefix/share/doc/patternd/examples/patternd.service"
[ -f "$unit" ] || { echo "recipes.sh: cmake --install did not install $unit" >&2; exit 1; }
if command -v systemd-analyze >/dev/null; then
  # The unit names /usr/local/bin/patternd: check it against the installed binary.
  sed "s|/usr/local/bin/patternd|$prefix/bin/patternd|" "$unit" >"$tmp/patternd.service"
  out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$tmp/patternd.service" 2>&1 \
        | grep -v -e 'User=.* not found' -e 'Failed to .* manager' -e 'bus' || true)
  [ -z "$out" ] || { echo "$out" >&2; echo "recipes.sh: systemd-analyze found faults in the unit" >&2; exit 1; }
fi
echo "installed: $prefix/bin/patternd; migrate --db from $tmp/elsewhere: ok"

# --- the demo ---------------------------------------------------------------------------
run_recipe demo
expect demo 10 '^ +[0-9]+ +tenant-0[0-3] '

# --- README: serve on a direct PostgreSQL -------------------------------------------------
url=$(start_pg "$tmp/pg-readme")
# shellcheck disable=SC2046
run_recipe readme $(pg_env "$url") PGPASSWORD=unused
expect readme 1 '"workflow_id": "wf-7", "status": "processed"'
expect readme 1 '"workflow_id": "wf-7", "status": "revised"'
expect readme 1 '"occurrence_count": 1, "avg_tokens_with_llm": 52000'
expect readme 10 '^ +[0-9]+ +tenant-0[0-3] .* candidate '
"$root/scripts/pg.sh" stop "$tmp/pg-readme"

# --- directly, then TLS termination at nginx ----------------------------------------------
url=$(start_pg "$tmp/pg-direct")
# shellcheck disable=SC2046
run_recipe direct $(pg_env "$url") PGPASSWORD=unused
expect direct 1 '"processed": 2, '
expect direct 1 '"tenant_id": "acme", "patterns": \[\{'
expect direct 5 '^ +[0-9]+ +tenant-0[0-3] '
# shellcheck disable=SC2046
run_recipe tls $(pg_env "$url") PGPASSWORD=unused
expect tls 1 '"tenant_id": "acme", "patterns": \[\{'
"$root/scripts/pg.sh" stop "$tmp/pg-direct"

# --- a managed PostgreSQL: no superuser -------------------------------------------------
url=$(start_pg "$tmp/pg-managed")
psql -X -q -v ON_ERROR_STOP=1 -d "$url" \
  -c "CREATE ROLE patternd_owner LOGIN PASSWORD 'owner-secret' CREATEROLE" \
  -c "CREATE DATABASE patternd OWNER patternd_owner"
eval "$(pg_env "$url")"
run_recipe managed PGHOST="$PGHOST" PGPORT="$PGPORT" PGDATABASE=patternd PGUSER=patternd_owner \
  PGPASSWORD=owner-secret
# Every tenant, for a role without superuser: the owner's report and keys, then alice's review list.
expect managed 10 '^ +[0-9]+ +tenant-0[0-3] .* candidate '
expect managed 1 '^tenant-00 +[0-9a-f]{16} +read '
unset PGHOST PGPORT PGDATABASE PGUSER
"$root/scripts/pg.sh" stop "$tmp/pg-managed"

# --- PgBouncer --------------------------------------------------------------------------
url=$("$root/scripts/pgbouncer.sh" start "$tmp/bouncer")
clusters+=("bouncer:$tmp/bouncer")
# shellcheck disable=SC2046
run_recipe pgbouncer $(pg_env "$url") PGPASSWORD=unused
expect pgbouncer 1 '"processed": 3000, '
expect pgbouncer 5 '^ +[0-9]+ +tenant-0[0-3] '
"$root/scripts/pgbouncer.sh" stop "$tmp/bouncer"

# --- Citus ------------------------------------------------------------------------------
export CITUS_SRC=${CITUS_SRC:-$root/../shared/citus/citus-13.2.2-pg15.20.tar.gz}
url=$("$root/scripts/citus.sh" start "$tmp/citus")
clusters+=("citus:$tmp/citus")
# shellcheck disable=SC2046
run_recipe citus $(pg_env "$url") PGPASSWORD=unused
expect citus 3 '^(workflows|operation_patterns|api_keys)$'
expect citus 1 '"processed": 3000, '
expect citus 5 '^ +[0-9]+ +tenant-0[0-3] '
"$root/scripts/citus.sh" stop "$tmp/citus"

# Every recipe of the documents ran.
missing=$(grep -vxF -f "$tmp/ran" "$tmp/recipes/order" || true)
[ -z "$missing" ] || { echo "recipes.sh: recipes that nothing here runs: $missing" >&2; exit 1; }
echo
echo "all recipes ran: $(tr '\n' ' ' <"$tmp/ran")"
