"""The Cassandra sink connector config, generated from the table declarations.

`register_cassandra.json` is committed so users and docker compose can register
it as it is; `cap-stock connectors --check` (run by the tests) fails when it no
longer matches `capstock.tables`, and `cap-stock connectors --write` regenerates it.

The Debezium source (`register-postgres.json`) is written by hand; its topic
prefix is read from it here so the two files cannot disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

from capstock.tables import TABLES, Table

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_CONFIG = REPO_ROOT / "register-postgres.json"
SINK_CONFIG = REPO_ROOT / "register_cassandra.json"
SINK_NAME = "cap-stock-cassandra-sink"
SINK_CLASS = "com.datastax.oss.kafka.sink.CassandraSinkConnector"
KEYSPACE = "cap_stock"


def topic_prefix(source_config: Path = SOURCE_CONFIG) -> str:
    return json.loads(source_config.read_text())["config"]["topic.prefix"]


def topic_for(table: Table, prefix: str) -> str:
    return f"{prefix}.public.{table.name}"


def _table_settings(table: Table, topic: str, keyspace: str) -> dict[str, str]:
    base = f"topic.{topic}.{keyspace}.{table.name}"
    settings = {
        f"{base}.mapping": ", ".join(f"{c}=value.{c}" for c in table.column_names),
        # Postgres is the short-lived staging store: its retention deletes must
        # never remove history from Cassandra.
        f"{base}.deletesEnabled": "false",
    }
    if table.ttl_seconds:
        settings[f"{base}.ttl"] = str(table.ttl_seconds)
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
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "drop",
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
