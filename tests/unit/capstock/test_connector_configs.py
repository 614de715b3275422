"""register_cassandra.json and register-postgres.json agree with the table declarations."""

from __future__ import annotations

import json
import re

from capstock.cdc.connectors import SINK_CLASS, SINK_CONFIG, SOURCE_CONFIG, render_sink_document
from capstock.model.tables import HEARTBEAT, NOW_MS, TABLES, debezium_heartbeat_query

from stack.services import Connect
from stack.services.connect import CASSANDRA_SINK_CLASS
from stack.settings import StackSettings

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


def test_the_source_unwraps_envelopes_and_drops_deletes() -> None:
    # The sink engine cannot unwrap schemaless envelopes (ExtractNewRecordState needs an
    # Envelope schema), so topics carry flat rows; retention deletes never reach Cassandra.
    unwraps = [
        name
        for name in SOURCE["transforms"].split(",")
        if SOURCE[f"transforms.{name}.type"] == "io.debezium.transforms.ExtractNewRecordState"
    ]
    assert len(unwraps) == 1
    assert SOURCE[f"transforms.{unwraps[0]}.delete.tombstone.handling.mode"] == "drop"
    assert not any(key.startswith("transforms") for key in SINK)


def test_tables_with_a_date_column_read_iso_offset_dates() -> None:
    codec_keys = {k: v for k, v in SINK.items() if ".codec." in k}
    expected = {
        f"topic.cap_stock.public.{name}.codec.date": "ISO_DATE"
        for name, table in TABLES.items()
        if any(c.cql_type == "date" for c in table.columns)
    }
    assert codec_keys == expected
    assert len(expected) == 3  # recent_trades, order_book, latest_prices


def test_the_sink_hands_the_engine_json_text_and_parks_bad_records() -> None:
    assert SINK["value.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert SINK["ignoreErrors"] == "None"
    assert SINK["errors.tolerance"] == "all"
    assert SINK["errors.deadletterqueue.topic.name"].startswith(SOURCE["topic.prefix"] + ".")


def test_the_connector_class_is_an_alias_for_both_modes() -> None:
    # Compose runs DataStax's release, native mode our adapter: the same simple name.
    assert SINK["connector.class"] == SINK_CLASS == "CassandraSinkConnector"
    assert CASSANDRA_SINK_CLASS.rsplit(".", 1)[1] == SINK_CLASS
    assert ["com.datastax.oss.kafka.sink", "CassandraSinkConnector"][1] == SINK_CLASS


def test_the_native_worker_resolves_every_reference() -> None:
    worker_env = Connect(StackSettings()).worker_env()
    for config in (SOURCE, SINK):
        for key, value in config.items():
            for name in re.findall(r"\$\{env:([^}]+)\}", value):
                assert worker_env.get(name), f"{key}: ${{env:{name}}} is not in the worker env"


def test_deletes_are_ignored_and_ttls_follow_the_declarations() -> None:
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


def test_the_debezium_heartbeat_is_written_at_millisecond_precision() -> None:
    # A bare now() keeps microseconds in Postgres, which Cassandra's timestamp drops: the
    # row would differ between the stores.
    query = SOURCE["heartbeat.action.query"]
    assert query == debezium_heartbeat_query(), (
        "register-postgres.json's heartbeat.action.query is not the one capstock.model.tables "
        "derives: copy debezium_heartbeat_query() into it"
    )
    assert NOW_MS == "date_trunc('milliseconds', now())"
    assert query.count("now()") == query.count(NOW_MS) == 2, "every now() is truncated"
    written = query.split("(", 1)[1].split(")", 1)[0].split(", ")
    times = [c.name for c in HEARTBEAT.columns if c.pg_type == "timestamptz" and not c.nullable]
    assert times == ["beat_time", "ingested_at"]
    assert written == ["source", *times], "every required time column is set by the query"
    assert query.startswith(f"INSERT INTO {HEARTBEAT.name} ")
    assert all(f"{name} = EXCLUDED.{name}" in query for name in times)
