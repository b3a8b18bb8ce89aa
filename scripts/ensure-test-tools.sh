#!/usr/bin/env bash
# Installs what the tests need beyond npm packages: Debian's Chromium for the viewer test, and
# Kafka with Debezium from Maven Central.
# Runs before `npm test` (pretest); does nothing when everything is already there.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-tools: installing Debian's chromium (for the viewer test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "ensure-test-tools: chromium is missing and cannot be installed here (needs root and apt-get);" \
      "the viewer test will be skipped outside CI" >&2
  fi
fi

# Apache Kafka, Kafka Connect and Debezium from Maven Central (cached; the tests start them).
bash "$(dirname "$0")/ensure-kafka.sh" >/dev/null
