"""No Connect plugin directory carries a jar the worker's own classpath provides.

Connect loads a plugin's classes from the plugin's directory first. A second copy of a
class the worker also has splits it in two: with its own jackson-databind, Debezium
looked for JsonConverter.convertToConnect(Schema, JsonNode) with a JsonNode the worker's
JsonConverter does not know, and connect.log had "Failed to discover Converter in
plugins/debezium-connector-postgres ... NoSuchMethodException" on every start.
stack/fetch.sh leaves those artifacts out; this checks what it assembled.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stack.services.connect import CASSANDRA_SINK_PLUGIN_DIR
from stack.settings import StackSettings

PLUGINS = ("debezium-connector-postgres", CASSANDRA_SINK_PLUGIN_DIR)
KAFKA_OWN = (
    "kafka-clients",
    "connect-api",
    "connect-json",
    "connect-runtime",
    "connect-transforms",
)


def artifact_name(jar: str) -> str:
    """The artifact id in a Maven jar's file name: everything before "-<digit>"."""
    match = re.match(r"(.+?)-\d", jar)
    return match[1] if match else jar.removesuffix(".jar")


@pytest.mark.parametrize(
    ("jar", "artifact"),
    [
        ("kafka-clients-3.9.1.jar", "kafka-clients"),
        ("kafka_2.13-3.9.1.jar", "kafka_2.13"),
        ("jffi-1.3.9-native.jar", "jffi"),
        ("java-driver-shaded-guava-25.1-jre.jar", "java-driver-shaded-guava"),
        ("netty-transport-4.1.77.Final.jar", "netty-transport"),
        ("zstd-jni-1.5.6-4.jar", "zstd-jni"),
        ("cap-stock-cassandra-sink-1.jar", "cap-stock-cassandra-sink"),
    ],
)
def test_artifact_name(jar: str, artifact: str) -> None:
    assert artifact_name(jar) == artifact


@pytest.fixture
def worker_artifacts(kafka_classpath: str) -> set[str]:
    names = {artifact_name(Path(jar).name) for jar in kafka_classpath.split(":")}
    assert set(KAFKA_OWN) <= names, "the worker's classpath lacks Kafka's own jars"
    return names


def test_every_plugin_is_fetched(kafka_classpath: str) -> None:  # fails before `make fetch`
    plugin_dir = StackSettings().plugin_dir
    for plugin in PLUGINS:
        assert any((plugin_dir / plugin).glob("*.jar")), f"plugins/{plugin}: run `make fetch`"


def test_no_plugin_directory_has_a_jar_of_the_workers_classpath(
    worker_artifacts: set[str],
) -> None:
    plugin_dir = StackSettings().plugin_dir
    clashes = {
        str(jar.relative_to(plugin_dir))
        for jar in plugin_dir.glob("*/**/*.jar")
        if artifact_name(jar.name) in worker_artifacts
    }
    assert not clashes, f"the Connect worker provides these already: {sorted(clashes)}"
