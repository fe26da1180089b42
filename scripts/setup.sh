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
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
