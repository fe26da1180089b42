#!/usr/bin/env bash
# Installs everything patternd needs to build, test and benchmark, with
# apt-get: PgBouncer for the pooled runs, and what building Citus from source
# needs (scripts/citus.sh: PostgreSQL's server headers, and the Kerberos, lz4
# and zstd headers they and Citus include).  Idempotent: when every package
# is already there it only checks and returns within a second.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format clang libclang-rt-14-dev
  libpq-dev libjansson-dev libuv1-dev libcriterion-dev
  libutf8proc-dev libsodium-dev libyajl-dev node-llhttp zlib1g-dev
  postgresql postgresql-client
  pgbouncer
  postgresql-server-dev-15 libkrb5-dev liblz4-dev libzstd-dev
  gnuplot-nox time procps curl
  nodejs
  chromium
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian ships npm apart from nodejs; other builds of nodejs include it.
if ! command -v npm >/dev/null; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

# The OpenAPI check's validator (tests/openapi/package-lock.json), in .tmp/openapi.
cd "$(dirname "$0")/.."
if ! cmp -s tests/openapi/package-lock.json .tmp/openapi/package-lock.json ||
   [ ! -d .tmp/openapi/node_modules ]; then
  echo "setup: installing the npm packages of tests/openapi" >&2
  mkdir -p .tmp/openapi
  cp tests/openapi/package.json tests/openapi/package-lock.json .tmp/openapi/
  (cd .tmp/openapi && npm ci --no-audit --no-fund --silent)
fi

# The dashboard's browser test (tests/browser): playwright-core exactly as its
# package-lock.json pins it, in tests/browser/node_modules.  No browser is
# downloaded; the test drives Debian's chromium.  A stamp of the lock file
# skips this when nothing changed.
stamp=$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/browser/node_modules/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "setup: installing the npm packages of tests/browser" >&2
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 \
    npm ci --no-audit --no-fund --ignore-scripts --silent)
  echo "$stamp" > tests/browser/node_modules/.setup-stamp
fi
