"""The writer's retry loop when Postgres is unreachable (no server needed: port 1 refuses)."""

from datetime import UTC, datetime

import pytest
from capstock.model.tables import HEARTBEAT
from capstock.staging.writer import (
    SHUTDOWN_GRACE_SECONDS,
    DatabaseUnavailable,
    PostgresWriter,
    WriteAbandoned,
)

from tests.support.clock import FakeClock, RecordingSleeper

UNREACHABLE = "host=127.0.0.1 port=1 dbname=x user=x password=x connect_timeout=1"
NOW = datetime(2026, 11, 21, tzinfo=UTC)
ROW = {
    "source": "producer",
    "beat_time": NOW,
    "weight_used_1m": 1,
    "trade_gaps_total": 0,
    "ingested_at": NOW,
    "exchange_error": None,
    "exchange_error_since": None,
    "trade_gaps_filled": None,
    "trade_gaps_open": None,
    "ingest_mode": None,
}


class StopAfter(RecordingSleeper):
    """Records waits; after ``n`` of them the process is asked to stop (a SIGTERM)."""

    def __init__(self, n, clock):
        super().__init__(clock)
        self.n = n

    def sleep(self, seconds):
        super().sleep(seconds)
        if len(self.waits) == self.n:
            self.stop()


def test_keeps_retrying_with_backoff_until_stopped_then_gives_up_after_the_grace():
    clock = FakeClock(0.0)
    sleeper = StopAfter(4, clock)
    writer = PostgresWriter(UNREACHABLE, sleeper=sleeper, clock=clock)
    with pytest.raises(WriteAbandoned):
        writer.write(HEARTBEAT, [ROW])
    assert writer.reconnects > 4
    before_stop, grace = sleeper.waits[:4], sleeper.waits[4:]
    assert all(0 < w <= 15 for w in before_stop)
    assert before_stop[3] > before_stop[0]  # backoff grows
    assert sum(grace) == pytest.approx(SHUTDOWN_GRACE_SECONDS, abs=15)


def test_an_interrupted_wait_starts_the_grace_period():
    clock = FakeClock(0.0)
    sleeper = RecordingSleeper(clock)
    sleeper.stop()
    writer = PostgresWriter(UNREACHABLE, sleeper=sleeper, clock=clock)
    with pytest.raises(WriteAbandoned):
        writer.write(HEARTBEAT, [ROW])
    assert sum(sleeper.waits) <= SHUTDOWN_GRACE_SECONDS


def test_empty_batch_needs_no_database():
    writer = PostgresWriter(UNREACHABLE, sleeper=RecordingSleeper())
    assert writer.write(HEARTBEAT, []).rows == 0


def test_patience_zero_is_one_attempt_and_no_wait():
    sleeper = RecordingSleeper(FakeClock(0.0))
    writer = PostgresWriter(UNREACHABLE, sleeper=sleeper, clock=sleeper.clock, patience=0)
    with pytest.raises(DatabaseUnavailable, match="write heartbeat"):
        writer.write(HEARTBEAT, [ROW])
    assert writer.reconnects == 1 and sleeper.waits == []


def test_patience_bounds_the_retries_and_is_restored_after_a_with_block():
    clock = FakeClock(0.0)
    sleeper = RecordingSleeper(clock)
    writer = PostgresWriter(UNREACHABLE, sleeper=sleeper, clock=clock)
    with writer.patience_of(5.0), pytest.raises(DatabaseUnavailable):
        writer.write(HEARTBEAT, [ROW])
    assert sum(sleeper.waits) == pytest.approx(5.0)
    assert writer.patience is None
