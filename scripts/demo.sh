#!/usr/bin/env bash
# The main job, end to end on the local machine: install what is missing, build,
# start a throwaway PostgreSQL, migrate, show what `patternd detect` finds in
# the bundled sample, ingest it (twice, to show that a re-run counts nothing
# again) and print the automation candidates.
#
#   scripts/demo.sh          run it and remove the database afterwards
#   scripts/demo.sh --keep   leave the database running and print its URL
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
case "${1:-}" in
  --keep) keep=true ;;
  -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
esac

scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
sample=examples/workflows-3000.ndjson

pgdir=$(mktemp -d /tmp/patternd-demo.XXXXXX)
chmod 755 "$pgdir"
$keep || trap 'scripts/pg.sh stop "$pgdir/pg" >/dev/null 2>&1; rm -rf "$pgdir"' EXIT
url=$(scripts/pg.sh start "$pgdir/pg")
export DATABASE_URL=$url

echo "== patternd migrate"
build/patternd migrate

echo
echo "== patternd detect $sample (first 3 of $(wc -l <"$sample") records)"
head -n 3 < <(build/patternd detect "$sample")

echo
echo "== patternd ingest $sample"
build/patternd ingest --quiet "$sample"
echo "== again: every record is now a duplicate and nothing changes"
build/patternd ingest --quiet "$sample"

echo
echo "== patternd report --top 10"
build/patternd report --top 10

if $keep; then
  echo
  echo "PostgreSQL is still running: DATABASE_URL=$url"
  echo "stop it with: scripts/pg.sh stop $pgdir/pg"
fi
