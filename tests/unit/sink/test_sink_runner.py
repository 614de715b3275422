"""Batch planning, bad-record decisions and dead letters, without Kafka or Cassandra."""

from __future__ import annotations

import logging

import pytest
from cassandra.query import UNSET_VALUE
from cassandra_sink.cli import main
from cassandra_sink.config import ErrorPolicy, SinkConfig
from cassandra_sink.deadletter import (
    MAPPING_ERROR,
    Action,
    action_for,
    error_headers,
)
from cassandra_sink.runner import CassandraSink, Failure, RecordFailed, plan_batch

from tests.support.sink_fakes import TOPIC, FakeMessage, latest_prices_table


def _msg(offset: int, value: str | None) -> FakeMessage:
    return FakeMessage(value.encode() if value is not None else None, offset)


def test_later_images_of_a_key_win_column_by_column() -> None:
    table = latest_prices_table()
    ts = '"2026-11-21T10:15:30Z"'
    plan = plan_batch(
        [
            _msg(1, '{"symbol":"BTC","ts":' + ts + ',"price":"1.5"}'),
            _msg(2, '{"symbol":"ETH","ts":' + ts + ',"price":"2"}'),
            # null price: the engine leaves the column unset, so 1.5 stays.
            _msg(3, '{"symbol":"BTC","ts":' + ts + ',"price":null}'),
            _msg(4, None),
        ],
        {TOPIC: [table]},
    )
    rows = sorted(plan.rows, key=lambda r: r.values[0])
    assert [r.values[0] for r in rows] == ["BTC", "ETH"]
    assert str(rows[0].values[2]) == "1.5"
    assert all(r.table is table and r.statement == "INSERT" for r in rows)
    assert plan.tombstones == 1
    assert plan.failures == []
    # Each record's own image is kept, oldest first, to write them alone if need be.
    assert [s.origin.offset() for s in rows[0].sources] == [1, 3]
    assert rows[0].sources[1].values[2] is UNSET_VALUE


def test_a_null_for_a_new_key_stays_unset() -> None:
    plan = plan_batch(
        [_msg(1, '{"symbol":"BTC","ts":"2026-11-21T10:15:30Z","price":null}')],
        {TOPIC: [latest_prices_table()]},
    )
    assert plan.rows[0].values[2] is UNSET_VALUE


def test_bad_records_are_collected_with_their_reason_and_the_rest_is_planned() -> None:
    plan = plan_batch(
        [
            _msg(7, "[1,2]"),
            _msg(8, '{"symbol":"BTC","ts":"yesterday","price":"1"}'),
            _msg(9, '{"symbol":"BTC","ts":"2026-11-21T10:15:30Z","price":"1"}'),
        ],
        {TOPIC: [latest_prices_table()]},
    )
    assert [(f.msg.offset(), f.table) for f in plan.failures] == [
        (7, "cap_stock.latest_prices"),
        (8, "cap_stock.latest_prices"),
    ]
    assert "not a JSON object" in plan.failures[0].reason
    assert "column ts" in plan.failures[1].reason
    assert len(plan.rows) == 1


@pytest.mark.parametrize(
    ("policy", "action"),
    [
        (ErrorPolicy(), Action.STOP),
        (ErrorPolicy(ignore_errors="driver"), Action.STOP),
        (ErrorPolicy(tolerance_all=True, dead_letter_topic="dlq"), Action.DEAD_LETTER),
        (ErrorPolicy(tolerance_all=True), Action.SKIP),
        (ErrorPolicy(ignore_errors="all"), Action.SKIP),
        (ErrorPolicy(ignore_errors="all", tolerance_all=True, dead_letter_topic="d"), Action.SKIP),
    ],
)
def test_the_error_settings_decide_what_happens_to_a_bad_record(
    policy: ErrorPolicy, action: Action
) -> None:
    assert action_for(policy) is action


@pytest.mark.parametrize(
    ("policy", "action"),
    [
        (ErrorPolicy(), Action.STOP),
        (ErrorPolicy(ignore_errors="driver"), Action.SKIP),
        (ErrorPolicy(ignore_errors="all"), Action.SKIP),
        (ErrorPolicy(tolerance_all=True, dead_letter_topic="dlq"), Action.DEAD_LETTER),
    ],
)
def test_a_record_cassandra_refused_is_skipped_under_ignore_errors_driver(
    policy: ErrorPolicy, action: Action
) -> None:
    # As in the Connect adapter: Driver skips write failures, not mapping failures.
    assert action_for(policy, write=True) is action


def test_dead_letters_carry_connects_error_context_headers() -> None:
    headers = dict(error_headers(TOPIC, 3, 42, "sink", "column ts: bad"))
    assert headers["__connect.errors.topic"] == TOPIC.encode()
    assert headers["__connect.errors.partition"] == b"3"
    assert headers["__connect.errors.offset"] == b"42"
    assert headers["__connect.errors.connector.name"] == b"sink"
    assert headers["__connect.errors.exception.message"] == b"column ts: bad"


class FakeDeadLetters:
    topic = "cap_stock.cassandra_sink.dead_letter"

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.classes: list[str] = []

    def send(self, msg: FakeMessage, reason: str, error_class: str = MAPPING_ERROR) -> None:
        self.sent.append((msg.offset(), reason))
        self.classes.append(error_class)


def _sink(policy: ErrorPolicy) -> CassandraSink:
    config = SinkConfig(name="cap-stock-cassandra-sink", topics=[TOPIC], mappings={}, errors=policy)
    return CassandraSink(config, "127.0.0.1:1")


FAILURES = [
    Failure(_msg(7, "[1]"), "cap_stock.latest_prices", "not an object"),  # type: ignore[arg-type]
    Failure(_msg(8, "[2]"), "cap_stock.latest_prices", "column ts: bad"),  # type: ignore[arg-type]
]


def test_with_a_dead_letter_topic_each_bad_record_is_parked_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = _sink(ErrorPolicy(tolerance_all=True, dead_letter_topic=FakeDeadLetters.topic))
    dead_letters = FakeDeadLetters()
    sink._dead_letters = dead_letters  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="cassandra_sink"):
        sink.handle_failures(FAILURES)
    assert dead_letters.sent == [
        (7, "cap_stock.latest_prices: not an object"),
        (8, "cap_stock.latest_prices: column ts: bad"),
    ]
    assert sink.stats.dead_lettered == 2
    assert sink.stats.bad_records["cap_stock.latest_prices"] == 2
    assert len(caplog.records) == 2
    assert f"{TOPIC}[3]@8 for cap_stock.latest_prices: column ts: bad" in caplog.text


def test_skipped_bad_records_are_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    sink = _sink(ErrorPolicy(ignore_errors="all"))
    with caplog.at_level(logging.ERROR, logger="cassandra_sink"):
        sink.handle_failures(FAILURES)
    assert sink.stats.bad_records["cap_stock.latest_prices"] == 2
    assert sink.stats.dead_lettered == 0
    assert caplog.text.count("(skipped)") == 2
    assert caplog.text.count("Rejected record") == 2


def test_without_tolerance_the_first_bad_record_stops_the_sink() -> None:
    with pytest.raises(RecordFailed, match=rf"{TOPIC}\[3\]@7 for cap_stock.latest_prices"):
        _sink(ErrorPolicy()).handle_failures(FAILURES)


def test_the_sink_has_its_own_consumer_group() -> None:
    assert _sink(ErrorPolicy()).group_id == "cap-stock-python-sink-cap-stock-cassandra-sink"
    config = SinkConfig(name="x", topics=[TOPIC], mappings={})
    assert CassandraSink(config, "127.0.0.1:1", group_id="mine").group_id == "mine"


def test_the_cli_help_documents_the_group_and_the_bad_record_handling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "cap-stock-python-sink-<connector name>" in help_text
    assert "errors.deadletterqueue.topic.name" in help_text
    assert "connect-<connector name>" in help_text
    assert "static member id\n<group>-0" in help_text
    assert "Cassandra refuses as invalid" in help_text


def test_the_stats_line_says_it_counts_since_the_start() -> None:
    from collections import Counter

    from cassandra_sink.runner import SinkStats

    line = SinkStats(written=Counter({"heartbeat": 2, "kline_data": 3})).line()
    assert line.startswith("sink since start: written=5 (heartbeat=2 kline_data=3) ")
