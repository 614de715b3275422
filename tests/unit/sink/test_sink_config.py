"""The sink reads the DataStax connector JSON: topics, mappings, codecs, error handling."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from cassandra_sink.config import (
    ErrorPolicy,
    SinkConfigError,
    load_config,
    load_config_file,
    parse_mapping,
    resolve_refs,
)

TOPIC = "cap_stock.public.recent_trades"
BASE = f"topic.{TOPIC}.cap_stock.recent_trades"
REPO_ROOT = Path(__file__).resolve().parents[3]


def _document(**extra: str) -> dict:
    return {
        "name": "cassandra-sink",
        "config": {
            "connector.class": "CassandraSinkConnector",
            "topics": TOPIC,
            "contactPoints": "${env:CASSANDRA_HOST}",
            "auth.username": "${env:CASSANDRA_USER}",
            "auth.password": "${env:CASSANDRA_PASSWORD}",
            f"{BASE}.mapping": "symbol=value.symbol, trade_id=value.trade_id, price=value.price",
            f"{BASE}.ttl": "2592000",
            f"{BASE}.deletesEnabled": "false",
            **extra,
        },
    }


@pytest.fixture(autouse=True)
def cassandra_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CASSANDRA_HOST": "10.1.2.3",
        "CASSANDRA_PORT": "9042",
        "CASSANDRA_DATACENTER": "datacenter1",
        "CASSANDRA_USER": "pipeline",
        "CASSANDRA_PASSWORD": "s3cret",
    }.items():
        monkeypatch.setenv(name, value)


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
    assert mapping.null_to_unset is True


def test_the_committed_connector_file_is_accepted_as_it_is() -> None:
    config = load_config_file(REPO_ROOT / "register_cassandra.json")
    assert set(config.topics) == set(config.mappings)
    document = json.loads((REPO_ROOT / "register_cassandra.json").read_text())["config"]
    for topic in config.topics:
        expected = document.get(f"topic.{topic}.codec.date", "ISO_LOCAL_DATE")
        assert config.codecs[topic].date == expected
    assert config.errors.tolerance_all == (document.get("errors.tolerance") == "all")
    assert config.errors.dead_letter_topic == document.get("errors.deadletterqueue.topic.name")


def test_env_references_resolve_like_connect_config_providers() -> None:
    config = load_config(_document())
    assert config.contact_points == ["10.1.2.3"]
    assert (config.username, config.password) == ("pipeline", "s3cret")


def test_missing_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASSANDRA_PASSWORD")
    with pytest.raises(SinkConfigError, match="CASSANDRA_PASSWORD"):
        load_config(_document())


def test_file_reference_reads_a_properties_key(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.properties"
    secrets.write_text("# comment\ncassandra.password=from-file\n")
    assert resolve_refs(f"${{file:{secrets}:cassandra.password}}") == "from-file"


def test_codec_settings_apply_per_topic() -> None:
    config = load_config(
        _document(
            **{
                f"topic.{TOPIC}.codec.date": "ISO_DATE",
                f"topic.{TOPIC}.codec.timeZone": "+02:00",
                f"topic.{TOPIC}.codec.timestamp": "UNITS_SINCE_EPOCH",
                f"topic.{TOPIC}.codec.unit": "SECONDS",
                f"topic.{TOPIC}.codec.locale": "en_US",
                f"topic.{TOPIC}.codec.time": "ISO_LOCAL_TIME",
            }
        )
    )
    codecs = config.codecs[TOPIC]
    assert (codecs.date, codecs.timestamp, codecs.unit) == (
        "ISO_DATE",
        "UNITS_SINCE_EPOCH",
        "SECONDS",
    )
    assert codecs.time_zone.utcoffset(None) == timedelta(hours=2)


def test_codec_defaults_are_the_engines() -> None:
    codecs = load_config(_document()).codecs[TOPIC]
    assert (codecs.date, codecs.timestamp, codecs.unit) == (
        "ISO_LOCAL_DATE",
        "CQL_TIMESTAMP",
        "MILLISECONDS",
    )
    assert codecs.time_zone is UTC


def test_error_settings() -> None:
    config = load_config(
        _document(
            **{
                "ignoreErrors": "None",
                "errors.tolerance": "all",
                "errors.deadletterqueue.topic.name": "dlq",
                "errors.deadletterqueue.topic.replication.factor": "1",
                "errors.deadletterqueue.context.headers.enable": "true",
            }
        )
    )
    assert config.errors == ErrorPolicy(
        tolerance_all=True,
        dead_letter_topic="dlq",
        dead_letter_replication_factor=1,
        ignore_errors="none",
    )
    assert load_config(_document()).errors == ErrorPolicy()


def test_ttl_time_unit_and_table_booleans() -> None:
    config = load_config(
        _document(
            **{
                f"{BASE}.ttl": "3",
                f"{BASE}.ttlTimeUnit": "HOURS",
                f"{BASE}.nullToUnset": "FALSE",
                f"{BASE}.consistencyLevel": "local_quorum",
            }
        )
    )
    [mapping] = config.mappings[TOPIC]
    assert mapping.ttl_seconds == 10800
    assert mapping.null_to_unset is False
    assert mapping.consistency_level == "LOCAL_QUORUM"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"topics": f"{TOPIC},cap_stock.public.order_book"}, "order_book.*has no mapping"),
        ({f"topic.{TOPIC}.cap_stock.recent_trades.mappings": "x=value.x"}, "matches neither"),
        ({f"topic.{TOPIC}.codec.dateFormat": "ISO_DATE"}, "matches neither"),
        ({"topic.recent_trades.mapping": "x=value.x"}, "matches neither"),
        ({"topic.other.codec.date": "ISO_DATE"}, "codec settings but no table mapping"),
        ({"topic.other.ks.t.ttl": "5"}, r"topic\.other\.ks\.t\.mapping is missing"),
        ({f"{BASE}.query": "INSERT ..."}, "custom queries are not supported"),
        ({f"{BASE}.ttl": "-2"}, "at least -1"),
        ({f"{BASE}.deletesEnabled": "no"}, "expected true or false"),
        ({f"{BASE}.ttlTimeUnit": "seconds"}, "expected one of"),
        ({f"{BASE}.consistencyLevel": "SOME"}, "valid values include"),
        ({f"topic.{TOPIC}.codec.locale": "de_DE"}, "en_US only"),
        ({f"topic.{TOPIC}.codec.timeZone": "Mars/Olympus"}, "codec.timeZone"),
        ({f"topic.{TOPIC}.codec.timestamp": "ISO_ZONED_DATE_TIME"}, "CQL_TIMESTAMP"),
        ({f"topic.{TOPIC}.codec.date": "BASIC_ISO_DATE"}, "ISO_LOCAL_DATE and ISO_DATE"),
        ({f"topic.{TOPIC}.codec.unit": "WEEKS"}, "codec.unit"),
        ({"ignoreErrors": "Some"}, "None, Driver or All"),
        ({"errors.tolerance": "most"}, "none or all"),
        ({"errors.deadletterqueue.topic.replication.factor": "0"}, "at least 1"),
    ],
)
def test_configs_the_engine_would_reject_are_rejected(extra: dict, message: str) -> None:
    with pytest.raises(SinkConfigError, match=message):
        load_config(_document(**extra))


def test_keys_the_sink_does_not_use_are_ignored() -> None:
    load_config(
        _document(
            **{
                "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                "value.converter": "org.apache.kafka.connect.storage.StringConverter",
                "auth.provider": "PLAIN",
                "tasks.max": "1",
                "errors.deadletterqueue.context.headers.enable": "true",
            }
        )
    )


@pytest.mark.parametrize("bad", ["price", "price=after.price", "=value.price", "price=value."])
def test_malformed_mapping_entries_are_rejected(bad: str) -> None:
    with pytest.raises(SinkConfigError, match=r"expected column=value\.field"):
        parse_mapping(bad, "topic.x.ks.t.mapping")


def test_a_column_mapped_twice_is_rejected() -> None:
    with pytest.raises(SinkConfigError, match="mapped twice"):
        parse_mapping("price=value.a, price=value.b", "topic.x.ks.t.mapping")
