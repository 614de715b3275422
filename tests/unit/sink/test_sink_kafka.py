"""Kafka outages read as one line each way; a restarted sink is the same group member."""

from __future__ import annotations

import json
import logging

import pytest
from cassandra_sink.kafka import (
    LIBRDKAFKA_LOG_LEVEL,
    REPEAT_LOG_S,
    KafkaState,
    client_config,
    consumer_config,
    instance_id,
)
from confluent_kafka import Consumer, KafkaError

REFUSED = KafkaError(
    KafkaError._TRANSPORT, "127.0.0.1:29092/bootstrap: Connect to ipv4#127.0.0.1:29092 failed"
)
ALL_DOWN = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stats(*states: str) -> str:
    brokers = {f"b{i}": {"state": state, "nodeid": i} for i, state in enumerate(states)}
    return json.dumps({"brokers": brokers})


def sink_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cassandra_sink"]


def test_an_outage_is_one_line_down_and_one_line_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    state = KafkaState(clock)
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        for _ in range(1311):  # what the fault matrix counted in 70 s
            state.on_error(REFUSED)
            state.on_error(ALL_DOWN)
            state.on_stats(stats("DOWN", "CONNECT"))
        assert not state.reachable
        clock.now += 46
        state.on_stats(stats("UP", "INIT"))
        state.on_stats(stats("UP", "INIT"))
    lines = sink_lines(caplog)
    assert len(lines) == 2
    assert lines[0].startswith("sink: kafka unreachable (")
    assert lines[1] == "sink: kafka reachable again after 46s"
    assert state.reachable


def test_every_outage_gets_its_own_pair_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    state = KafkaState(Clock())
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        for _ in range(2):
            state.on_error(ALL_DOWN)
            state.mark_reachable()  # a record arrived
    assert len(sink_lines(caplog)) == 4


def test_other_errors_are_logged_once_a_minute_with_the_repeats_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    state = KafkaState(clock)
    error = KafkaError(KafkaError.REBALANCE_IN_PROGRESS, "rebalancing")
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        for _ in range(3):
            state.on_error(error, "commit")
        clock.now += REPEAT_LOG_S
        state.on_error(error, "commit")
    lines = sink_lines(caplog)
    assert len(lines) == 2
    assert lines[0] == "sink: kafka error (commit): rebalancing"
    assert lines[1] == "sink: kafka error (commit): rebalancing (2 more since the last report)"


def test_while_kafka_is_unreachable_its_other_errors_are_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = KafkaState(Clock())
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        state.on_error(ALL_DOWN)
        state.on_error(KafkaError(KafkaError._TIMED_OUT, "commit timed out"), "commit")
    assert len(sink_lines(caplog)) == 1


def test_quiet_errors_are_ignored_and_a_fatal_one_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = KafkaState(Clock())
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        state.on_error(KafkaError(KafkaError._PARTITION_EOF))
        state.on_error(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        assert sink_lines(caplog) == []
        fenced = KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced by a newer member", fatal=True)
        state.on_error(fenced)
    assert state.fatal is fenced
    assert "fatal" in sink_lines(caplog)[0]


def test_the_consumer_is_a_static_member_with_a_short_session() -> None:
    state = KafkaState()
    config = consumer_config("127.0.0.1:1", "cap-stock-python-sink-x", state)
    # The same id on every start: a restarted sink replaces its dead self at once.
    assert config["group.instance.id"] == "cap-stock-python-sink-x-0"
    assert config["group.instance.id"] == instance_id("cap-stock-python-sink-x")
    assert config["session.timeout.ms"] <= 10000
    assert config["heartbeat.interval.ms"] * 3 <= config["session.timeout.ms"]
    assert config["enable.auto.commit"] is False
    assert config["error_cb"] == state.on_error
    assert config["stats_cb"] == state.on_stats
    # librdkafka accepts the settings (no broker is contacted before subscribe).
    Consumer(config).close()


def test_every_client_reports_errors_to_the_state_and_logs_quietly() -> None:
    state = KafkaState()
    config = client_config("127.0.0.1:1", state)
    assert config["error_cb"] == state.on_error
    assert config["log_level"] == LIBRDKAFKA_LOG_LEVEL <= 3
    assert isinstance(config["logger"], logging.Logger)
    assert config["reconnect.backoff.max.ms"] <= 1000
