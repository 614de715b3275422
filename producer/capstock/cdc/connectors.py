"""The Cassandra sink connector config, generated from the table declarations.

`register_cassandra.json` is committed so users and docker compose can register
it as it is; `cap-stock connectors --check` (run by the tests) fails when it no
longer matches `capstock.model.tables`, and `cap-stock connectors --write` regenerates it.

The Debezium source (`register-postgres.json`) is written by hand; its topic
prefix is read from it here so the two files cannot disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

from capstock.config import KEYSPACE
from capstock.model.tables import TABLES, Table

REPO_ROOT = Path(__file__).resolve().parents[3]  # producer/capstock/cdc/connectors.py
SOURCE_CONFIG = REPO_ROOT / "register-postgres.json"
SINK_CONFIG = REPO_ROOT / "register_cassandra.json"
SINK_NAME = "cap-stock-cassandra-sink"
# An alias, not a class name: Connect resolves a plugin's simple class name when exactly
# one installed plugin has it. Compose's worker has DataStax's release
# (com.datastax.oss.kafka.sink.CassandraSinkConnector), the native worker our adapter
# around the same engine (io.capstock.sink.CassandraSinkConnector), so one file serves both.
SINK_CLASS = "CassandraSinkConnector"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"


def topic_prefix(source_config: Path = SOURCE_CONFIG) -> str:
    return json.loads(source_config.read_text())["config"]["topic.prefix"]


def topic_for(table: Table, prefix: str) -> str:
    return f"{prefix}.public.{table.name}"


def dead_letter_topic(prefix: str) -> str:
    """Where the sink parks records it cannot write, with Connect's error-context headers
    naming the original topic, partition, offset and error."""
    return f"{prefix}.cassandra_sink.dead_letter"


def _table_settings(table: Table, topic: str, keyspace: str) -> dict[str, str]:
    base = f"topic.{topic}.{keyspace}.{table.name}"
    settings = {
        f"{base}.mapping": ", ".join(f"{c}=value.{c}" for c in table.column_names),
        # Postgres is the short-lived staging store: its retention deletes must
        # never remove history from Cassandra.
        f"{base}.deletesEnabled": "false",
    }
    if table.on_conflict == "update" and any(c.nullable for c in table.columns):
        # Each record is the whole Postgres row: a column an update set back to NULL
        # (heartbeat.exchange_error once the exchange answers) must become null here too,
        # not keep its old value, which the default nullToUnset=true would do.
        settings[f"{base}.nullToUnset"] = "false"
    if table.ttl_seconds:
        settings[f"{base}.ttl"] = str(table.ttl_seconds)
    if any(c.cql_type == "date" for c in table.columns):
        # Debezium's isostring mode writes a Postgres date as "2026-11-21Z" (an ISO offset
        # date); the engine's default ISO_LOCAL_DATE rejects the zone.
        settings[f"topic.{topic}.codec.date"] = "ISO_DATE"
    return settings


def sink_document(keyspace: str = KEYSPACE, prefix: str | None = None) -> dict:
    prefix = prefix or topic_prefix()
    topics = [topic_for(t, prefix) for t in TABLES.values()]
    config: dict[str, str] = {
        "connector.class": SINK_CLASS,
        "tasks.max": "1",
        "topics": ",".join(topics),
        "contactPoints": "${env:CASSANDRA_HOST}",
        "port": "${env:CASSANDRA_PORT}",
        "loadBalancing.localDc": "${env:CASSANDRA_DATACENTER}",
        "auth.provider": "PLAIN",
        "auth.username": "${env:CASSANDRA_USER}",
        "auth.password": "${env:CASSANDRA_PASSWORD}",
        "maxConcurrentRequests": "64",
        # Measured with bench/bench_sink_drain.py: the engine groups each batch Connect hands
        # over by partition, so bigger polls make fuller single-partition batches; 500-record
        # polls (Connect's default) drained about 4x slower.
        "maxNumberOfRecordsInBatch": "64",
        "consumer.override.max.poll.records": "5000",
        "consumer.override.max.partition.fetch.bytes": "8388608",
        # Topics carry flat JSON rows (the source unwraps Debezium's envelope). Handing the
        # engine the JSON text lets its own parser keep big integers and decimals exact,
        # and skips a parse-and-reserialise round trip through Connect's JsonConverter.
        "key.converter": STRING_CONVERTER,
        "value.converter": STRING_CONVERTER,
        # Never skip a write Cassandra could take later: an outage is retried until it ends.
        "ignoreErrors": "None",
        # The driver's reconnection waits grow to 60 s by default: after a long outage
        # the sink would idle up to a minute once Cassandra is back. Cap it at 4 s.
        "datastax-java-driver.advanced.reconnection-policy.max-delay": "4 seconds",
        # A record the engine cannot map is counted, logged once and parked in the
        # dead-letter topic; the rest keeps flowing.
        "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": dead_letter_topic(prefix),
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true",
    }
    for table in TABLES.values():
        config.update(_table_settings(table, topic_for(table, prefix), keyspace))
    return {"name": SINK_NAME, "config": config}


def render_sink_document() -> str:
    return json.dumps(sink_document(), indent=2) + "\n"


def sink_config_is_current(path: Path = SINK_CONFIG) -> bool:
    return path.exists() and path.read_text() == render_sink_document()


def write_sink_config(path: Path = SINK_CONFIG) -> Path:
    path.write_text(render_sink_document())
    return path
