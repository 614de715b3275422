"""register_cassandra.json and register-postgres.json agree with the table declarations."""

from __future__ import annotations

import json

from capstock.connectors import SINK_CONFIG, SOURCE_CONFIG, render_sink_document
from capstock.tables import TABLES

SOURCE = json.loads(SOURCE_CONFIG.read_text())["config"]
SINK = json.loads(SINK_CONFIG.read_text())["config"]


def test_committed_sink_config_is_current() -> None:
    assert SINK_CONFIG.read_text() == render_sink_document(), (
        "register_cassandra.json is stale: run `cap-stock connectors --write`"
    )


def test_every_table_is_published_and_sunk_with_every_column() -> None:
    published = SOURCE["table.include.list"].split(",")
    assert published == [f"public.{name}" for name in TABLES]
    topics = SINK["topics"].split(",")
    assert topics == [f"{SOURCE['topic.prefix']}.public.{name}" for name in TABLES]
    for name, table in TABLES.items():
        mapping = SINK[f"topic.cap_stock.public.{name}.cap_stock.{name}.mapping"]
        mapped = [item.split("=")[0].strip() for item in mapping.split(",")]
        assert mapped == list(table.column_names)


def test_deletes_are_ignored_and_ttls_follow_the_declarations() -> None:
    assert SINK["transforms.unwrap.type"] == "io.debezium.transforms.ExtractNewRecordState"
    assert SINK["transforms.unwrap.delete.tombstone.handling.mode"] == "drop"
    for name, table in TABLES.items():
        base = f"topic.cap_stock.public.{name}.cap_stock.{name}"
        assert SINK[f"{base}.deletesEnabled"] == "false"
        assert SINK.get(f"{base}.ttl") == (str(table.ttl_seconds) if table.ttl_seconds else None)


def test_no_credentials_are_literals() -> None:
    for config in (SOURCE, SINK):
        for key, value in config.items():
            if "password" in key or "user" in key or key in ("database.hostname", "contactPoints"):
                assert value.startswith("${env:"), f"{key} must come from a config provider"


def test_source_carries_exact_values() -> None:
    # Unconstrained numeric as strings keeps every digit; isostring keeps times as ISO text
    # (milliseconds and zone) and dates as YYYY-MM-DD, which both sinks parse exactly.
    assert SOURCE["decimal.handling.mode"] == "string"
    assert SOURCE["time.precision.mode"] == "isostring"
    assert "heartbeat" in SOURCE["heartbeat.action.query"]
