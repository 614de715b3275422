#!/usr/bin/env bash
# Install the system packages the native stack needs, from Debian's archive:
# PostgreSQL (server + client), a Java 17 runtime and Maven, and Python's venv.
# Installs only what is missing; without root it says what to install instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../versions.env
. "$root/versions.env"

need=()
[ -x "/usr/lib/postgresql/$POSTGRES_MAJOR/bin/postgres" ] || need+=("postgresql-$POSTGRES_MAJOR")
command -v psql >/dev/null || need+=("postgresql-client-$POSTGRES_MAJOR")
# tmux: the tests drive the terminal view (`make watch`) in it.
for tool in curl jq tmux; do command -v "$tool" >/dev/null || need+=("$tool"); done
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
# The system interpreter (the Makefile's venv uses it: services cannot reach /root).
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-venv)

if [ ${#need[@]} -eq 0 ]; then
  echo "deps: system packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a system cluster on 5432; the stack runs its own.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters -h | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop || true; done
fi
echo "deps: done"
