#!/usr/bin/env bash
# Apache Kafka (broker and Connect) and the Debezium PostgreSQL connector, resolved from Maven
# Central with the poms in scripts/kafka/ into a cache keyed by those poms. Prints the directory:
#   libs/                         class path of the broker and the Connect worker
#   plugins/debezium-postgres/    the connector, for Connect's plugin.path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${MSR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msr}
key=$(cat "$here"/kafka/*.pom.xml | sha256sum | cut -c1-12)
dest="$cache/kafka-$key"
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
command -v mvn >/dev/null || { echo "ensure-kafka: Maven (mvn) is needed to fetch Kafka and Debezium" >&2; exit 1; }
command -v java >/dev/null || { echo "ensure-kafka: Java 17 is needed to run Kafka" >&2; exit 1; }
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
copy="org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
mvn -q -B -f "$here/kafka/broker.pom.xml" "$copy" -DincludeScope=runtime \
  -DoutputDirectory="$dest.partial/libs" >&2
mvn -q -B -f "$here/kafka/debezium.pom.xml" "$copy" -DincludeScope=runtime \
  -DoutputDirectory="$dest.partial/plugins/debezium-postgres" >&2
touch "$dest.partial/.complete"
mv "$dest.partial" "$dest"
echo "$dest"
