#!/usr/bin/env bash
# Resolve every JVM component from Maven Central into the local Maven repository
# (~/.m2) and write the classpaths the native runner uses. A second run downloads
# nothing: Maven only reads its cache.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../versions.env
set -a; . "$root/versions.env"; set +a

out="$root/.stack/classpath"
mkdir -p "$out"
mvn_props=(
  -Dkafka.version="$KAFKA_VERSION"
  -Dscala.binary.version="$SCALA_BINARY_VERSION"
  -Ddebezium.version="$DEBEZIUM_VERSION"
  -Dcassandra.version="$CASSANDRA_VERSION"
)
mvn_run() { mvn -B -q "${mvn_props[@]}" "$@"; }
dep=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

echo "fetch: Kafka $KAFKA_VERSION (broker + Connect runtime)"
mvn_run -f "$root/stack/maven/kafka.pom.xml" "$dep:build-classpath" -Dmdep.outputFile="$out/kafka.txt"
echo "fetch: Cassandra $CASSANDRA_VERSION"
mvn_run -f "$root/stack/maven/cassandra.pom.xml" "$dep:build-classpath" -Dmdep.outputFile="$out/cassandra.txt"
echo "fetch: Debezium PostgreSQL connector $DEBEZIUM_VERSION into plugins/"
mvn_run -f "$root/plugins/pom.xml" package
echo "fetch: done"
