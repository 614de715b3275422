#!/usr/bin/env bash
# Resolve every JVM component from Maven Central into the local Maven repository
# (~/.m2), write the classpaths the native runner uses and assemble the Connect plugin
# directories. A second run downloads nothing: Maven only reads its cache.
#
# The console gets a few lines per component (what is downloading, how far along, a
# summary; stack/install_progress.py); Maven's whole output goes to .stack/logs/fetch.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"  # python -m stack.install_progress
# shellcheck source=../versions.env
set -a; . "$root/versions.env"; set +a

out="$root/.stack/classpath"
build="$root/.stack/build"
log=.stack/logs/fetch.log  # relative: the failure message names it
mkdir -p "$out" "$build" "$(dirname "$log")"
: > "$log"
python=${PYTHON:-python3}
mvn_props=(
  -Dkafka.version="$KAFKA_VERSION"
  -Dscala.binary.version="$SCALA_BINARY_VERSION"
  -Ddebezium.version="$DEBEZIUM_VERSION"
  -Dcassandra.version="$CASSANDRA_VERSION"
  -Dcassandra.sink.engine.version="$CASSANDRA_SINK_ENGINE_VERSION"
)
# Batch mode, no colour. Maven 3.8's console library still writes two colour resets
# (\e[0m\e[0m) first, unless jansi.noreset; stack/install_progress.py strips any other.
export MAVEN_OPTS="${MAVEN_OPTS:-} -Djansi.noreset=true"
dep=org.apache.maven.plugins:maven-dependency-plugin:3.6.1
step=0
steps=4
began=$SECONDS

# say <text>: a console line of the current step.
say() { echo "fetch $step/$steps: $*"; }

# mvn_run <maven args>: Maven, its downloads and phases reported as the current step.
mvn_run() {
  "$python" -m stack.install_progress --label "fetch $step/$steps" --log "$log" maven -- \
    mvn -B -Dstyle.color=never "${mvn_props[@]}" "$@"
}

# read_jars <classpath file>: its entries into the array `jars` (the file has no newline).
read_jars() { jars=(); IFS=: read -r -a jars < "$1" || true; }

# The directory of a jar's artifact in the local repository: <repo>/<group path>/<artifact>.
artifact_of() { dirname "$(dirname "$1")"; }

# The services run as an unprivileged user that cannot read root's ~/.m2: copy (or
# hard-link) each classpath's jars to .stack/lib/<name>/ and point the classpath there.
localize() {
  local name=$1 lib="$root/.stack/lib/$1" jar target classpath=()
  rm -rf "$lib"; mkdir -p "$lib"
  read_jars "$out/$name.txt"
  for jar in "${jars[@]}"; do
    target="$lib/$(basename "$jar")"
    if [ -e "$target" ]; then echo "fetch: two $name jars named $(basename "$jar")" >&2; exit 1; fi
    cp --link "$jar" "$target" 2>/dev/null || cp "$jar" "$target"
    classpath+=("$target")
  done
  (IFS=:; echo "${classpath[*]}") > "$out/$name.txt"
  chmod -R a+rX "$root/.stack/lib"
  say "${#classpath[@]} jars in .stack/lib/$name"
}

# Every artifact on the worker's classpath (Kafka's own jars and what they depend on).
# A plugin directory must not carry a second copy of any of them: Connect loads a
# plugin's classes from its own directory first, so Debezium's own jackson-databind made
# JsonNode a different class from the worker JsonConverter's, and Connect logged
# "Failed to discover Converter ... NoSuchMethodException: JsonConverter.convertToConnect"
# on every start. Without its copy, a plugin uses the worker's.
declare -A worker_artifacts=()

# plugin_dir <name> <maven classpath file> [jar ...]: plugins/<name>/ made afresh (no jar of
# an older version stays), with the classpath's jars less the worker's artifacts, and the jars given.
plugin_dir() {
  local name=$1 dir="$root/plugins/$1" jar target left=() kept=0 provided
  read_jars "$2"; shift 2
  rm -rf "$dir"; mkdir -p "$dir"
  for jar in "${jars[@]}" "$@"; do
    if [ -n "${worker_artifacts[$(artifact_of "$jar")]:-}" ]; then
      left+=("$(basename "$(artifact_of "$jar")")")
      continue
    fi
    target="$dir/$(basename "$jar")"
    if [ -e "$target" ]; then echo "fetch: two $name jars named $(basename "$jar")" >&2; exit 1; fi
    cp --link "$jar" "$target" 2>/dev/null || cp "$jar" "$target"
    kept=$((kept + 1))
  done
  chmod -R a+rX "$dir"
  if [ ${#left[@]} -eq 0 ]; then say "$kept jars in plugins/$name"; return; fi
  provided=$(printf '%s\n' "${left[@]}" | sort -u | paste -sd, | sed 's/,/, /g')
  say "$kept jars in plugins/$name (the worker's classpath provides $provided)"
}

step=1
say "Kafka $KAFKA_VERSION (broker + Connect runtime)"
mvn_run -f "$root/stack/maven/kafka.pom.xml" "$dep:build-classpath" -Dmdep.outputFile="$out/kafka.txt"
read_jars "$out/kafka.txt"
for jar in "${jars[@]}"; do worker_artifacts[$(artifact_of "$jar")]=1; done
localize kafka

step=2
say "Cassandra $CASSANDRA_VERSION"
mvn_run -f "$root/stack/maven/cassandra.pom.xml" "$dep:build-classpath" -Dmdep.outputFile="$out/cassandra.txt"
localize cassandra

step=3
say "Debezium PostgreSQL connector $DEBEZIUM_VERSION into plugins/"
mvn_run -f "$root/plugins/pom.xml" "$dep:build-classpath" -DincludeScope=runtime \
  -Dmdep.outputFile="$build/debezium-connector-postgres.classpath"
plugin_dir debezium-connector-postgres "$build/debezium-connector-postgres.classpath"

step=4
say "Cassandra sink (DataStax sink engine $CASSANDRA_SINK_ENGINE_VERSION): build and test plugins/cassandra-sink"
mvn_run -f "$root/plugins/cassandra-sink/pom.xml" package "$dep:build-classpath" -DincludeScope=runtime \
  -Dmdep.outputFile="$build/cap-stock-cassandra-sink.classpath"
plugin_dir cap-stock-cassandra-sink "$build/cap-stock-cassandra-sink.classpath" \
  "$build/cassandra-sink/cap-stock-cassandra-sink-1.jar"

echo "fetch: done in $((SECONDS - began)) s (Maven's output: .stack/logs/fetch.log)"
