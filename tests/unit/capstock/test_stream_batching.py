"""The stream writer's batching (capstock.ingest.batching): when a batch is due, on a
clock the test sets (never wall time), and what the writer thread guarantees about order
and callbacks."""

import threading

import pytest
from capstock.ingest.batching import Batch, FlushPolicy, SerializedWriter, WriterThread
from capstock.model.tables import HEARTBEAT, RECENT_TRADES
from capstock.staging.writer import WriteAbandoned, WriteResult

POLICY = FlushPolicy(seconds=0.5, rows=5)


def rows(n, start=0):
    return [{"trade_id": start + i} for i in range(n)]


def test_an_empty_batch_is_never_due_and_waits_for_nothing():
    batch = Batch(POLICY)
    assert not batch.due(100.0) and batch.wait(100.0) is None and batch.empty


def test_a_row_is_due_when_the_oldest_has_waited_the_flush_interval():
    batch = Batch(POLICY)
    batch.add(RECENT_TRADES, rows(1), now=10.0)
    batch.add(RECENT_TRADES, rows(1, 1), now=10.25)
    assert not batch.due(10.49)
    assert batch.wait(10.25) == pytest.approx(0.25), "measured from the oldest row"
    assert batch.due(10.5) and batch.wait(11.0) == 0.0


def test_a_longer_interval_while_postgres_is_down():
    batch = Batch(POLICY)
    batch.add(RECENT_TRADES, rows(1), now=0.0)
    assert batch.due(0.5) and not batch.due(0.5, seconds=2.0) and batch.due(2.0, seconds=2.0)
    assert batch.wait(0.5, seconds=2.0) == 1.5


def test_enough_rows_are_due_at_once():
    batch = Batch(POLICY)
    batch.add(RECENT_TRADES, rows(4), now=0.0)
    assert not batch.due(0.0)
    batch.add(HEARTBEAT, rows(1), now=0.0)
    assert batch.due(0.0) and batch.wait(0.0) == 0.0, "rows of every table count"


def test_take_empties_the_batch_per_table_in_arrival_order():
    batch = Batch(POLICY)
    calls = []
    batch.add(RECENT_TRADES, rows(2), now=0.0, on_written=calls.append)
    batch.add(HEARTBEAT, rows(1), now=0.0)
    batch.add(RECENT_TRADES, rows(1, 2), now=0.0)
    work, callbacks = batch.take()
    assert [(t.name, [r["trade_id"] for r in rs]) for t, rs in work] == [
        ("recent_trades", [0, 1, 2]),
        ("heartbeat", [0]),
    ]
    assert len(callbacks) == 1 and batch.empty and batch.count == 0


def test_a_callback_alone_opens_the_batch():
    batch = Batch(POLICY)
    batch.add(RECENT_TRADES, [], now=1.0, on_written=lambda ok: None)
    assert not batch.empty and batch.due(1.5)


class RecordingWriter:
    def __init__(self, fail=None):
        self.writes = []
        self.fail = fail
        self.threads = set()

    def write(self, table, rows):
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise self.fail
        self.writes.append((table.name, list(rows)))
        return WriteResult(table.name, len(rows), len(rows))

    def last_trade_id(self, symbol):
        self.threads.add(threading.current_thread().name)
        return len(self.writes)


def test_the_thread_writes_in_order_then_runs_callbacks_and_calls():
    writer = RecordingWriter()
    thread = WriterThread(writer, FlushPolicy(seconds=10.0, rows=3))
    thread.start()
    try:
        done = threading.Event()
        thread.submit(RECENT_TRADES, rows(2))
        thread.submit(RECENT_TRADES, rows(1, 2), on_written=lambda ok: done.set() if ok else None)
        assert done.wait(5), "3 rows: written without waiting the 10 s"
        thread.submit(RECENT_TRADES, rows(1, 3))
        served = SerializedWriter(thread, writer)
        assert served.last_trade_id("X") == 2, "a call waits for the rows queued before it"
    finally:
        thread.stop()
    assert [r["trade_id"] for _, rs in writer.writes for r in rs] == [0, 1, 2, 3]
    assert writer.threads == {"stream-writer"}
    assert thread.stats.rows == 4 and thread.stats.flushes == 2


def test_stop_writes_what_waits():
    writer = RecordingWriter()
    thread = WriterThread(writer, FlushPolicy(seconds=60.0, rows=1000))
    thread.start()
    thread.submit(RECENT_TRADES, rows(3))
    thread.stop()
    assert [len(rs) for _, rs in writer.writes] == [3]


def test_a_failed_write_is_counted_and_its_callbacks_say_so():
    writer = RecordingWriter(fail=ValueError("bug"))
    thread = WriterThread(writer, POLICY)
    results = []
    thread.start()
    try:
        thread.submit(RECENT_TRADES, rows(5), on_written=results.append)
        thread.call(lambda: None)
    finally:
        thread.stop()
    assert results == [False] and thread.stats.failed_rows == 5


def test_an_abandoned_write_ends_the_thread_with_the_error():
    writer = RecordingWriter(fail=WriteAbandoned("write recent_trades: down at shutdown"))
    thread = WriterThread(writer, POLICY)
    results = []
    thread.start()
    thread.submit(RECENT_TRADES, rows(5), on_written=results.append)
    thread._thread.join(5)
    thread.stop()
    assert results == [False] and isinstance(thread.error, WriteAbandoned)


def test_submit_blocks_while_too_many_rows_wait():
    release, writing = threading.Event(), threading.Event()

    class Slow(RecordingWriter):
        def write(self, table, rows):
            writing.set()
            release.wait(5)
            return super().write(table, rows)

    thread = WriterThread(Slow(), FlushPolicy(0.0, 1), max_pending=2)
    thread.start()
    try:
        thread.submit(RECENT_TRADES, rows(1))
        assert writing.wait(5), "taken by the (stuck) writer"
        thread.submit(RECENT_TRADES, rows(2))  # waits: now 2 pending
        blocked = threading.Thread(target=thread.submit, args=(RECENT_TRADES, rows(1)))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive(), "the third submit waits for the writer"
        release.set()
        blocked.join(5)
        assert not blocked.is_alive()
    finally:
        release.set()
        thread.stop()
