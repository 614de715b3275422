"""Small batches with bounded latency: the one thread that writes in stream mode.

Stream mode has rows arriving from every connection thread and from the REST worker (trade
ids filled, book snapshots), but the writer (:class:`~capstock.staging.spool.SpoolingWriter`
over one Postgres connection) is not thread-safe and a transaction per row would be slow.
So every row goes into one :class:`Batch` and one :class:`WriterThread` writes it.

Latency bound: the batch is written when its oldest row has waited ``flush_seconds``
(``INGEST_FLUSH_MS``, 100 ms) or when ``flush_rows`` rows wait (``INGEST_FLUSH_ROWS``),
whichever comes first. A row handed over at time t is therefore being written by
t + ``flush_seconds``, one transaction per table touched (the writer's guarantee: all of
it or none). :class:`Batch` makes those decisions on a clock it is given, so they are
tested without waiting.

Guarantee: a callback given with rows (``on_written``) runs in the writer thread after the
write that carried them returned: the rows are committed in Postgres or safe in the spool
(``ok=True``), or the write raised (``ok=False``, logged; the rows are not stored). The
filling of a trade-id hole is marked done only then.

While the writer says Postgres is down (the spool's ``down``), batches are written every
:data:`DOWN_FLUSH_SECONDS` instead, so an outage fills the spool with a few larger files
rather than ten small ones a second.

Backpressure: at most :data:`MAX_PENDING_ROWS` wait; :meth:`WriterThread.submit` blocks
beyond that (the connection threads stop reading, the exchange eventually drops the
connection and the ids it carried are filled from REST after the reconnect).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from capstock.model.tables import Table
from capstock.staging.writer import WriteAbandoned, WriteResult

log = logging.getLogger(__name__)

MAX_PENDING_ROWS = 200_000
"""Rows waiting for the writer before :meth:`WriterThread.submit` blocks."""
DOWN_FLUSH_SECONDS = 2.0
"""The flush interval while Postgres is unreachable (every batch then goes to the spool)."""
STOP_TIMEOUT_SECONDS = 60.0
"""How long :meth:`WriterThread.stop` waits for the last batch."""

OnWritten = Callable[[bool], None]
T = TypeVar("T")


@dataclass(frozen=True)
class FlushPolicy:
    seconds: float
    """A row waits at most this long (``INGEST_FLUSH_MS`` / 1000)."""
    rows: int
    """Or until this many rows wait (``INGEST_FLUSH_ROWS``)."""


@dataclass
class Batch:
    """Rows waiting to be written, per table, and when they must be (pure; the caller
    locks). ``opened_at`` is the clock reading when its oldest row arrived."""

    policy: FlushPolicy
    tables: dict[str, tuple[Table, list[dict]]] = field(default_factory=dict)
    callbacks: list[OnWritten] = field(default_factory=list)
    count: int = 0
    opened_at: float | None = None

    def add(
        self, table: Table, rows: list[dict], now: float, on_written: OnWritten | None = None
    ) -> None:
        if rows:
            if self.opened_at is None:
                self.opened_at = now
            self.tables.setdefault(table.name, (table, []))[1].extend(rows)
            self.count += len(rows)
        if on_written is not None:
            if self.opened_at is None:
                self.opened_at = now
            self.callbacks.append(on_written)

    @property
    def empty(self) -> bool:
        return self.opened_at is None

    def due(self, now: float, seconds: float | None = None) -> bool:
        """Time to write: the oldest row has waited ``policy.seconds`` (or ``seconds``), or
        enough rows wait."""
        if self.opened_at is None:
            return False
        interval = self.policy.seconds if seconds is None else seconds
        return self.count >= self.policy.rows or now - self.opened_at >= interval

    def wait(self, now: float, seconds: float | None = None) -> float | None:
        """Seconds until :meth:`due` (0 if it is); None while empty (nothing to wait for)."""
        if self.opened_at is None:
            return None
        if self.count >= self.policy.rows:
            return 0.0
        interval = self.policy.seconds if seconds is None else seconds
        return max(0.0, self.opened_at + interval - now)

    def take(self) -> tuple[list[tuple[Table, list[dict]]], list[OnWritten]]:
        """Everything waiting, emptied out: (table, rows) in first-arrival order, callbacks."""
        taken = list(self.tables.values()), self.callbacks
        self.tables, self.callbacks, self.count, self.opened_at = {}, [], 0, None
        return taken


@dataclass
class FlushStats:
    """Counters for the status line and the benchmark."""

    flushes: int = 0
    rows: int = 0
    changed: int = 0
    spooled: int = 0
    failed_rows: int = 0
    """Rows whose write raised (bugs, rejected batches): logged, not stored."""


class Writer(Protocol):
    """What the writer thread writes through (:class:`~capstock.staging.spool.SpoolingWriter`)."""

    def write(self, table: Table, rows: list[dict]) -> WriteResult: ...


class WriterThread:
    """The one thread that writes in stream mode (see the module docstring).

    ``on_flush(table, rows, written_at)`` (optional) sees every write after it returned,
    with the wall-clock time: what the benchmark measures latency with.
    """

    def __init__(
        self,
        writer: Writer,
        policy: FlushPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_flush: Callable[[Table, list[dict], datetime], None] | None = None,
        max_pending: int = MAX_PENDING_ROWS,
    ) -> None:
        self.writer = writer
        self.policy = policy
        self.clock = clock
        self.on_flush = on_flush
        self.max_pending = max_pending
        self.stats = FlushStats()
        self._batch = Batch(policy)
        self._calls: list[tuple[Callable[[], object], Future]] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        """What ended the thread early (a write abandoned at shutdown), if anything."""

    # -- from any thread -------------------------------------------------------------------

    def submit(self, table: Table, rows: list[dict], on_written: OnWritten | None = None) -> None:
        """Queue rows for the next write (blocks while :data:`MAX_PENDING_ROWS` wait)."""
        with self._cond:
            while self._batch.count >= self.max_pending and not self._stopping:
                self._cond.wait(0.5)
            if self._stopping and self._thread is None:
                if on_written is not None:
                    on_written(False)
                return
            was_empty = self._batch.empty
            self._batch.add(table, rows, self.clock(), on_written)
            if was_empty or self._batch.count >= self.policy.rows:
                # Otherwise the thread already sleeps until the batch is due.
                self._cond.notify_all()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the writer thread, after the rows queued before it are written,
        and return its result (or raise its exception). Runs inline when the thread is
        not running (before :meth:`start`, after :meth:`stop`)."""
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()
        with self._cond:
            self._calls.append((fn, future))
            self._cond.notify_all()
        return future.result()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._batch.count

    def raise_error(self) -> None:
        """The error that stopped the writer thread, raised in the caller's thread."""
        if self.error is not None:
            raise self.error

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stream-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what waits, then end the thread (at most :data:`STOP_TIMEOUT_SECONDS`)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                log.error("the stream writer did not finish within %.0fs", STOP_TIMEOUT_SECONDS)
            self._thread = None
        with self._cond:  # what arrived after the thread ended
            work, callbacks = self._batch.take()
            calls, self._calls = self._calls, []
        if work or callbacks:
            try:
                self._write(work, callbacks)
            except WriteAbandoned as e:
                log.error("stream writer stopped with an unwritten batch: %s", e)
                self.error = self.error or e
        for fn, future in calls:
            _settle(fn, future)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while True:
                        now = self.clock()
                        interval = (
                            DOWN_FLUSH_SECONDS if getattr(self.writer, "down", False) else None
                        )
                        if self._stopping or self._calls or self._batch.due(now, interval):
                            break
                        self._cond.wait(self._batch.wait(now, interval))
                    work, callbacks = self._batch.take()
                    calls, self._calls = self._calls, []
                    stopping = self._stopping
                    self._cond.notify_all()
                if work or callbacks:
                    self._write(work, callbacks)
                for fn, future in calls:
                    _settle(fn, future)
                if stopping:
                    with self._cond:
                        if self._batch.empty and not self._calls:
                            return
        except WriteAbandoned as e:
            self.error = e
            log.error("stream writer stopped with an unwritten batch: %s", e)

    def _write(self, work: list[tuple[Table, list[dict]]], callbacks: list[OnWritten]) -> None:
        ok = True
        for table, rows in work:
            try:
                result = self.writer.write(table, rows)
            except WriteAbandoned:
                for callback in callbacks:
                    callback(False)
                raise
            except Exception:
                log.exception("stream write of %d %s rows failed", len(rows), table.name)
                self.stats.failed_rows += len(rows)
                ok = False
                continue
            self.stats.rows += result.rows
            self.stats.changed += result.changed
            self.stats.spooled += result.spooled
            if self.on_flush is not None:
                self.on_flush(table, rows, datetime.now(UTC))
        self.stats.flushes += 1
        for callback in callbacks:
            try:
                callback(ok)
            except Exception:
                log.exception("a callback after a stream write failed")


def _settle(fn: Callable[[], object], future: Future) -> None:
    try:
        future.set_result(fn())
    except BaseException as e:  # handed to the caller, which re-raises it
        future.set_exception(e)


class SerializedWriter:
    """The jobs' writer interface (:class:`capstock.ingest.jobs.Writer`) run in the writer
    thread, so the heartbeat, retention and universe jobs share its one connection with the
    streamed rows. Each call waits for the rows queued before it."""

    def __init__(self, thread: WriterThread, writer) -> None:  # type: ignore[no-untyped-def]
        self.thread = thread
        self.inner = writer

    def write(self, table: Table, rows: list[dict]) -> WriteResult:
        return self.thread.call(lambda: self.inner.write(table, rows))

    def delete_older_than(self, table: Table, cutoff: datetime, batch: int) -> int:
        return self.thread.call(lambda: self.inner.delete_older_than(table, cutoff, batch))

    def last_trade_id(self, symbol: str) -> int | None:
        return self.thread.call(lambda: self.inner.last_trade_id(symbol))

    def last_closed_kline(self, symbol: str, interval: str) -> datetime | None:
        return self.thread.call(lambda: self.inner.last_closed_kline(symbol, interval))

    def stored_trade_id_runs(
        self, symbol: str, first_id: int, last_id: int
    ) -> list[tuple[int, int]] | None:
        return self.thread.call(lambda: self.inner.stored_trade_id_runs(symbol, first_id, last_id))

    def trade_gaps_total(self, source: str) -> int | None:
        return self.thread.call(lambda: self.inner.trade_gaps_total(source))

    def trade_gaps_filled(self, source: str) -> int | None:
        return self.thread.call(lambda: self.inner.trade_gaps_filled(source))

    def close(self) -> None:
        """The owner of the inner writer closes it (the runner, after the thread stopped)."""
