#!/usr/bin/env bash
# Installs what the tests need beyond npm packages: Debian's Chromium (viewer test) and
# docker-compose (compose.yml check), PostgreSQL 15 client tools (backup drill), PostgreSQL 15 with
# TimescaleDB 2.22.1 built from ../shared/timescaledb (the TimescaleDB dialect), Kafka with Debezium
# from Maven Central, and k6 (built with Go).
# Runs before `npm test` (pretest); does nothing when everything is already there.
set -euo pipefail

updated=no
apt_install() { # command package why
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-tools: installing Debian's $2 ($3)"
    if [ "$updated" = no ]; then
      apt-get update -qq
      updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    echo "ensure-test-tools: $2 is missing and cannot be installed here (needs root and apt-get);" \
      "its test will be skipped outside CI" >&2
  fi
}

apt_install chromium chromium 'for the viewer test'
apt_install docker-compose docker-compose 'to validate compose.yml'
apt_install pg_dump postgresql-client-15 'pg_dump and pg_restore for backup and recovery'

# TimescaleDB 2.22.1 on Debian's PostgreSQL 15 (built once per machine). Without root it cannot be
# installed: the TimescaleDB half of the suite is then skipped, except in CI, where that fails.
if ! bash "$(dirname "$0")/ensure-timescaledb.sh" >/dev/null; then
  [ -n "${CI:-}" ] && exit 1
fi

# Apache Kafka, Kafka Connect and Debezium from Maven Central (cached; the tests start them).
bash "$(dirname "$0")/ensure-kafka.sh" >/dev/null

# k6 for the load-script smoke test, built with Go from the module proxy (cached).
bash "$(dirname "$0")/ensure-k6.sh" >/dev/null
