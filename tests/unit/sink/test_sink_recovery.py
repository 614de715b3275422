"""The sink retries while Cassandra or Kafka is away, resumes promptly, and moves past a
record Cassandra refuses. Fake Kafka consumer and Cassandra session; real sink logic."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable
from cassandra_sink import cli, runner
from cassandra_sink.config import ErrorPolicy, SinkConfig, SinkConfigError
from cassandra_sink.deadletter import DeadLetterError, DeadLetterQueue
from cassandra_sink.runner import (
    RETRY_BASE_S,
    RETRY_CAP_S,
    STOP_ATTEMPTS,
    CassandraSink,
    KafkaFailed,
    WriteAbandoned,
    plan_batch,
    retry_backoff,
)
from confluent_kafka import KafkaError, KafkaException

from tests.support.sink_fakes import POISON, TOPIC, FakeMessage, FakeSession, latest_prices_table

TS = '"2026-11-21T10:15:30Z"'


class FakeTime:
    """runner's clock: sleeping advances it instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(runner, "time", fake)
    return fake


TABLES = {TOPIC: [latest_prices_table("INSERT %s %s %s")]}


def _msg(offset: int, symbol: str, price: str = "1") -> FakeMessage:
    value = f'{{"symbol":"{symbol}","ts":{TS},"price":"{price}"}}'
    return FakeMessage(value.encode(), offset)


class FakeDeadLetters:
    topic = "cap_stock.cassandra_sink.dead_letter"

    def __init__(self, events: list[str] | None = None) -> None:
        self.sent: list[tuple[int, str, str]] = []
        self.events = events if events is not None else []

    def send(self, msg: FakeMessage, reason: str, error_class: str) -> None:
        self.sent.append((msg.offset(), reason, error_class))

    def flush(self, keep_waiting: Callable[[], bool] = lambda: True) -> None:
        self.events.append("flush")


def _sink(policy: ErrorPolicy | None = None) -> CassandraSink:
    policy = policy or ErrorPolicy(tolerance_all=True, dead_letter_topic=FakeDeadLetters.topic)
    config = SinkConfig(name="sink", topics=[TOPIC], mappings={}, errors=policy)
    sink = CassandraSink(config, "127.0.0.1:1")
    sink._dead_letters = FakeDeadLetters()  # type: ignore[assignment]
    return sink


def _up() -> bool:
    return True


# --- Cassandra ------------------------------------------------------------------------------


def test_the_backoff_starts_short_and_is_capped_near_five_seconds() -> None:
    assert RETRY_CAP_S <= 5
    assert all(retry_backoff().next_delay() <= RETRY_BASE_S for _ in range(100))
    for _ in range(10):
        backoff = retry_backoff()
        delays = [backoff.next_delay() for _ in range(60)]
        assert max(delays) <= RETRY_CAP_S and min(delays[30:]) >= RETRY_CAP_S / 2
        assert not backoff.exhausted  # a batch is never given up


def test_writes_are_retried_until_cassandra_takes_them_with_one_line_each_way(
    clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    sink = _sink()
    session = FakeSession(transient_failures=6)
    plan = plan_batch([_msg(1, "BTC"), _msg(2, "ETH")], TABLES)
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        sink.write(session, plan.rows, _up)  # type: ignore[arg-type]
    assert sorted(session.stored)[0].startswith("INSERT 'BTC'")
    assert sink.stats.written["latest_prices"] == 2
    assert sink.stats.dead_lettered == 0  # retried, never parked
    # Two requests per attempt: three failed attempts, each waited out, capped.
    assert sum(1 for _ in clock.slept) >= 3
    assert max(clock.slept) <= RETRY_CAP_S
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("sink: Cassandra write failed (OperationTimedOut")
    assert messages[1].startswith("sink: Cassandra writes succeed again after 3 retries")


def test_a_long_outage_logs_a_reminder_a_minute_not_a_line_per_retry(
    clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    session = FakeSession(transient_failures=200)
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        _sink().write(session, plan_batch([_msg(1, "BTC")], TABLES).rows, _up)  # type: ignore[arg-type]
    assert clock.now > 300
    assert len(caplog.records) <= 2 + clock.now // 60


def test_writes_resume_as_soon_as_the_driver_reconnects(clock: FakeTime) -> None:
    answers = iter([False, False, False, True])  # all nodes down, then one back

    def cassandra_up() -> bool:
        return next(answers, True)

    _sink().wait(RETRY_CAP_S, cassandra_up)
    assert clock.now < 1.0


def test_a_slow_but_connected_cassandra_gets_the_whole_pause(clock: FakeTime) -> None:
    _sink().wait(4.0, _up)
    assert clock.now == pytest.approx(4.0)


def test_a_stopping_sink_gives_the_batch_a_few_tries_then_leaves_it_uncommitted(
    clock: FakeTime,
) -> None:
    sink = _sink()
    sink.stop()
    session = FakeSession(transient_failures=10_000)
    with pytest.raises(WriteAbandoned, match="not committed"):
        sink.write(session, plan_batch([_msg(1, "BTC")], TABLES).rows, _up)  # type: ignore[arg-type]
    assert len(session.requests) == STOP_ATTEMPTS + 1
    assert clock.now <= STOP_ATTEMPTS * RETRY_BASE_S


def test_a_record_cassandra_refuses_is_dead_lettered_alone_and_the_rest_is_written(
    clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    sink = _sink()
    # A transient failure first: the refusal must still be parked exactly once.
    session = FakeSession(transient_failures=1)
    plan = plan_batch([_msg(1, "BTC", "1"), _msg(2, "BTC", "2"), _msg(3, POISON)], TABLES)
    # Same key for BTC: one row from two records; POISON alone in its partition.
    with caplog.at_level(logging.ERROR, logger="cassandra_sink"):
        sink.write(session, plan.rows, _up)  # type: ignore[arg-type]
    dead_letters = sink._dead_letters
    assert isinstance(dead_letters, FakeDeadLetters)
    assert [(offset, cls) for offset, _reason, cls in dead_letters.sent] == [
        (3, "cassandra.InvalidRequest")
    ]
    assert "Cassandra refused the write: InvalidRequest" in dead_letters.sent[0][1]
    assert sink.stats.dead_lettered == 1
    assert sink.stats.bad_records["cap_stock.latest_prices"] == 1
    assert sink.stats.written["latest_prices"] == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"sink: Rejected record {TOPIC}[3]@3 for cap_stock.latest_prices: Cassandra refused "
        "the write: InvalidRequest: Key length of 70000 is longer than maximum of 65535 "
        "(sent to cap_stock.cassandra_sink.dead_letter)"
    ]


def test_a_refused_record_stops_the_sink_only_without_error_tolerance(clock: FakeTime) -> None:
    rows = plan_batch([_msg(1, POISON)], TABLES).rows
    with pytest.raises(runner.RecordFailed):
        _sink(ErrorPolicy()).write(FakeSession(), rows, _up)  # type: ignore[arg-type]
    skipping = _sink(ErrorPolicy(ignore_errors="driver"))
    skipping.write(FakeSession(), rows, _up)  # type: ignore[arg-type]
    assert skipping.stats.bad_records["cap_stock.latest_prices"] == 1


def test_a_sink_started_while_cassandra_is_away_waits_for_it(
    clock: FakeTime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = iter([NoHostAvailable("down", {"h": OSError()})] * 5)

    def connect(config: SinkConfig) -> tuple[str, str]:
        error = next(attempts, None)
        if error is not None:
            raise error
        return "cluster", "session"

    monkeypatch.setattr(runner, "connect", connect)
    with caplog.at_level(logging.INFO, logger="cassandra_sink"):
        assert _sink()._connect() == ("cluster", "session")
    assert len(caplog.records) == 1
    assert max(clock.slept) <= RETRY_CAP_S


def test_a_refused_login_is_a_config_error_not_a_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(config: SinkConfig) -> None:
        raise NoHostAvailable("no", {"h": AuthenticationFailed("bad credentials")})

    monkeypatch.setattr(runner, "connect", connect)
    with pytest.raises(SinkConfigError, match="bad credentials"):
        _sink()._connect()


# --- Kafka ----------------------------------------------------------------------------------


class FakeConsumer:
    def __init__(self, batches: list[list[FakeMessage]], sink: CassandraSink | None = None):
        self.batches = batches
        self.sink = sink
        self.events: list[str] = []
        self.commit_error: KafkaError | None = None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if not self.batches and self.sink:
            self.sink.stop()
        return self.batches.pop(0) if self.batches else []

    def commit(self, asynchronous: bool = True) -> None:
        self.events.append("commit")
        if self.commit_error is not None:
            raise KafkaException(self.commit_error)


def test_poll_hands_records_on_and_error_events_to_the_kafka_state() -> None:
    sink = _sink()
    refused = FakeMessage(None, -1, error_value=KafkaError(KafkaError._ALL_BROKERS_DOWN))
    record = _msg(5, "BTC")
    consumer = FakeConsumer([[refused], [record]])
    assert sink.poll(consumer) == []  # type: ignore[arg-type]
    assert not sink.kafka.reachable
    assert sink.poll(consumer) == [record]  # type: ignore[arg-type]
    assert sink.kafka.reachable


def test_a_fatal_kafka_error_stops_the_sink() -> None:
    sink = _sink()
    sink.kafka.on_error(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced", fatal=True))
    with pytest.raises(KafkaFailed, match="fenced"):
        sink.poll(FakeConsumer([]))  # type: ignore[arg-type]


def test_a_commit_kafka_does_not_take_is_logged_not_fatal() -> None:
    sink = _sink()
    consumer = FakeConsumer([])
    consumer.commit_error = KafkaError(KafkaError._TRANSPORT, "Connection refused")
    sink.commit(consumer)  # type: ignore[arg-type]
    assert not sink.kafka.reachable


def test_the_loop_parks_dead_letters_before_committing_and_moves_on(clock: FakeTime) -> None:
    sink = _sink()
    events: list[str] = []
    sink._dead_letters = FakeDeadLetters(events)  # type: ignore[assignment]
    consumer = FakeConsumer([[_msg(1, "BTC"), _msg(2, POISON)], [_msg(3, "ETH")]], sink)
    consumer.events = events
    session = FakeSession()
    sink._loop(consumer, session, TABLES, _up)  # type: ignore[arg-type]
    assert events == ["flush", "commit", "flush", "commit"]
    assert [s.split()[1] for s in session.stored] == ["'BTC'", "'ETH'"]
    assert sink.stats.dead_lettered == 1


class FakeProducer:
    def __init__(self, remaining: list[int]) -> None:
        self.remaining = remaining

    def flush(self, timeout: float) -> int:
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


def _queue(remaining: list[int]) -> DeadLetterQueue:
    queue = DeadLetterQueue("127.0.0.1:1", "dlq", "sink", runner.KafkaState())
    queue._producer = FakeProducer(remaining)  # type: ignore[assignment]
    return queue


def test_dead_letters_wait_for_kafka_to_return() -> None:
    _queue([2, 2, 2, 0]).flush(lambda: True)


def test_dead_letters_not_delivered_by_the_stop_fail_the_batch() -> None:
    with pytest.raises(DeadLetterError, match="stopped while Kafka was unreachable"):
        _queue([2]).flush(lambda: False)


# --- exit status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [WriteAbandoned("Cassandra did not take it"), KafkaFailed("fenced")]
)
def test_an_unfinished_batch_or_a_fatal_kafka_error_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception
) -> None:
    monkeypatch.setattr(cli, "load_config_file", lambda path: SinkConfig("s", [TOPIC], {}))

    def run(self: CassandraSink) -> Any:
        raise error

    monkeypatch.setattr(CassandraSink, "run", run)
    assert cli.main(["--config", str(Path("unused.json"))]) == 1
    assert str(error) in capsys.readouterr().err
