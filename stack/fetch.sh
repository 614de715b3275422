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
  -Dcassandra.sink.engine.version="$CASSANDRA_SINK_ENGINE_VERSION"
)
# Maven 3.8 prints colour escapes even with -B -q: strip them so logs stay plain text.
mvn_run() { mvn -B -q "${mvn_props[@]}" "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'; }
dep=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

# The services run as an unprivileged user that cannot read root's ~/.m2: copy (or
# hard-link) each classpath's jars to .stack/lib/<name>/ and point the classpath there.
localize() {
  local name=$1 lib="$root/.stack/lib/$1" jar target classpath=()
  rm -rf "$lib"; mkdir -p "$lib"
  IFS=: read -r -a jars < "$out/$name.txt" || true  # no newline at the end
  for jar in "${jars[@]}"; do
    target="$lib/$(basename "$jar")"
    if [ -e "$target" ]; then echo "fetch: two $name jars named $(basename "$jar")" >&2; exit 1; fi
    cp --link "$jar" "$target" 2>/dev/null || cp "$jar" "$target"
    classpath+=("$target")
  done
  (IFS=:; echo "${classpath[*]}") > "$out/$name.txt"
  chmod -R a+rX "$root/.stack/lib"
}

echo "fetch: Kafka $KAFKA_VERSION (broker + Connect runtime)"
mvn_run -f "$root/stack/maven/kafka.pom.xml" "$dep:build-classpath" -Dmdep.outputFile="$out/kafka.txt"
localize kafka
echo "fetch: Cassandra $CASSANDRA_VERSION"
mvn_run -f "$root/stack/maven/cassandra.pom.xml" "$dep:build-classpath" -Dmdep.outputFile="$out/cassandra.txt"
localize cassandra
echo "fetch: Debezium PostgreSQL connector $DEBEZIUM_VERSION into plugins/"
mvn_run -f "$root/plugins/pom.xml" package
echo "fetch: Cassandra sink (DataStax sink engine $CASSANDRA_SINK_ENGINE_VERSION): build and test plugins/cassandra-sink"
# A clean directory: a jar left from an older engine version must not stay on the plugin path.
rm -rf "$root/plugins/cap-stock-cassandra-sink"
mvn_run -f "$root/plugins/cassandra-sink/pom.xml" package
echo "fetch: done"
