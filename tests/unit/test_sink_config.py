"""The sink reads DataStax connector JSON: topics, mappings, TTLs, config-provider references."""

from __future__ import annotations

import pytest
from cassandra_sink.config import SinkConfigError, load_config, parse_mapping, resolve_refs

TOPIC = "cap_stock.public.recent_trades"


def _document(**extra: str) -> dict:
    return {
        "name": "cassandra-sink",
        "config": {
            "topics": TOPIC,
            "contactPoints": "${env:CASSANDRA_HOST}",
            "auth.username": "${env:CASSANDRA_USER}",
            "auth.password": "${env:CASSANDRA_PASSWORD}",
            "transforms": "unwrap",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            f"topic.{TOPIC}.cap_stock.recent_trades.mapping": (
                "symbol=value.symbol, trade_id=value.trade_id, price=value.price"
            ),
            f"topic.{TOPIC}.cap_stock.recent_trades.ttl": "2592000",
            f"topic.{TOPIC}.cap_stock.recent_trades.deletesEnabled": "false",
            **extra,
        },
    }


@pytest.fixture(autouse=True)
def cassandra_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASSANDRA_HOST", "10.1.2.3")
    monkeypatch.setenv("CASSANDRA_USER", "pipeline")
    monkeypatch.setenv("CASSANDRA_PASSWORD", "s3cret")


def test_mapping_for_a_dotted_topic_name_is_found() -> None:
    config = load_config(_document())
    [mapping] = config.mappings[TOPIC]
    assert (mapping.keyspace, mapping.table) == ("cap_stock", "recent_trades")
    assert mapping.columns == {
        "symbol": ("value", "symbol"),
        "trade_id": ("value", "trade_id"),
        "price": ("value", "price"),
    }
    assert mapping.ttl_seconds == 2592000
    assert mapping.deletes_enabled is False
    assert config.unwrap is True


def test_env_references_resolve_like_connect_config_providers() -> None:
    config = load_config(_document())
    assert config.contact_points == ["10.1.2.3"]
    assert (config.username, config.password) == ("pipeline", "s3cret")


def test_missing_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASSANDRA_PASSWORD")
    with pytest.raises(SinkConfigError, match="CASSANDRA_PASSWORD"):
        load_config(_document())


def test_file_reference_reads_a_properties_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secrets = tmp_path / "secrets.properties"
    secrets.write_text("# comment\ncassandra.password=from-file\n")
    assert resolve_refs(f"${{file:{secrets}:cassandra.password}}") == "from-file"


def test_topic_without_mapping_is_an_error() -> None:
    doc = _document(topics=f"{TOPIC},cap_stock.public.order_book")
    with pytest.raises(SinkConfigError, match="order_book"):
        load_config(doc)


@pytest.mark.parametrize("bad", ["price", "price=after.price", "=value.price", "price=value."])
def test_malformed_mapping_entries_are_rejected(bad: str) -> None:
    with pytest.raises(SinkConfigError, match=r"expected column=value\.field"):
        parse_mapping(bad, "topic.x.ks.t.mapping")


def test_without_unwrap_transform_records_are_taken_as_they_are() -> None:
    doc = _document()
    del doc["config"]["transforms"]
    assert load_config(doc).unwrap is False


def test_unwrap_with_drop_mode_drops_deletes() -> None:
    doc = _document(**{"transforms.unwrap.delete.tombstone.handling.mode": "drop"})
    assert load_config(doc).drop_deletes is True
    assert load_config(_document()).drop_deletes is False
