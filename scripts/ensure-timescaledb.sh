#!/usr/bin/env bash
# TimescaleDB 2.22.1 for Debian's PostgreSQL 15: the server the TimescaleDB dialect of the tests and
# the benchmark runs on. Built from ../shared/timescaledb/ (the unmodified release source, checked
# against its .sha256) in a cache keyed by that checksum, then installed into PostgreSQL 15's
# directories; does nothing when that version is already installed. Installs Debian's
# postgresql-15, postgresql-server-dev-15, cmake and gcc when run as root.
# Prints the directory of PostgreSQL 15's programs (initdb, postgres) on success; exit code 3 when
# it cannot be installed here (not root and missing), so callers can skip with a clear message.
set -euo pipefail
TSDB_VERSION=2.22.1
PG_MAJOR=15
here=$(cd "$(dirname "$0")" && pwd)
source_dir=${MSR_TIMESCALEDB_SOURCE:-$here/../../shared/timescaledb}
archive="$source_dir/timescaledb-$TSDB_VERSION.tar.gz"
pg_bin="/usr/lib/postgresql/$PG_MAJOR/bin"
ext_dir="/usr/share/postgresql/$PG_MAJOR/extension"
lib_dir="/usr/lib/postgresql/$PG_MAJOR/lib"

installed() {
  [ -x "$pg_bin/postgres" ] && [ -f "$ext_dir/timescaledb--$TSDB_VERSION.sql" ] &&
    [ -f "$lib_dir/timescaledb-$TSDB_VERSION.so" ]
}
if installed; then
  echo "$pg_bin"
  exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-timescaledb: TimescaleDB $TSDB_VERSION for PostgreSQL $PG_MAJOR is not installed and" \
    "cannot be installed here (needs root and apt-get); run 'sudo bash scripts/ensure-timescaledb.sh'" >&2
  exit 3
fi
[ -f "$archive" ] || { echo "ensure-timescaledb: $archive is missing (the shared/ folder beside the project)" >&2; exit 1; }
(cd "$source_dir" && sha256sum --check --status "timescaledb-$TSDB_VERSION.tar.gz.sha256") ||
  { echo "ensure-timescaledb: $archive does not match its .sha256" >&2; exit 1; }

need=()
for pkg in "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" cmake gcc make; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "ensure-timescaledb: installing Debian's ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian's postgresql-15 package creates and starts a default cluster; the tests start their own.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q "^$PG_MAJOR main .* online"; then
  pg_ctlcluster "$PG_MAJOR" main stop || true
fi

cache=${MSR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msr}
key=$(cut -c1-12 "$archive.sha256")
build="$cache/timescaledb-$TSDB_VERSION-pg$PG_MAJOR-$key"
if [ ! -f "$build/.complete" ]; then
  echo "ensure-timescaledb: building TimescaleDB $TSDB_VERSION (about 3 minutes on 2 cores)" >&2
  rm -rf "$build"
  mkdir -p "$build"
  tar xzf "$archive" -C "$build" --strip-components=1
  (
    cd "$build"
    PATH="$pg_bin:$PATH" ./bootstrap -DPG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" \
      -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF -DUSE_OPENSSL=OFF >&2
    make -C build -j"$(nproc)" >&2
  )
  touch "$build/.complete"
fi
make -C "$build/build" install >/dev/null
installed || { echo "ensure-timescaledb: the install did not produce timescaledb-$TSDB_VERSION" >&2; exit 1; }
echo "$pg_bin"
