"""Wiring and the ways to run the producer: one cycle, or until a signal either polling on the
job intervals (``INGEST_MODE=rest``) or streaming (``INGEST_MODE=stream``,
:mod:`capstock.ingest.streaming`).

All start by writing what an earlier run left in the spool (:mod:`capstock.staging.spool`), and
all end with one line saying how they stopped. Their exit status (``commands.EXIT_*``):
``EXIT_OK``; ``EXIT_SPOOLED`` when rows are still in the spool (safe on disk, written on
the next start); ``EXIT_FAILED`` when rows were lost or, for ``once``, a job failed.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

import schedule

from capstock.backoff import Interrupted, Sleeper
from capstock.commands import EXIT_FAILED, EXIT_OK, EXIT_SPOOLED
from capstock.config import Settings
from capstock.exchange.client import ExchangeClient
from capstock.ingest.jobs import Producer
from capstock.ingest.streaming import build_stream_ingest
from capstock.staging.spool import Spool, SpoolingWriter
from capstock.staging.writer import DatabaseUnavailable, PostgresWriter, WriteAbandoned

log = logging.getLogger(__name__)

MAX_IDLE_SECONDS = 1.0
"""The scheduler loop wakes at least this often."""


def build_producer(settings: Settings, *, sleeper: Sleeper | None = None) -> Producer:
    sleeper = sleeper or Sleeper()
    exchange = ExchangeClient(settings.binance, sleeper=sleeper)
    writer = SpoolingWriter(
        PostgresWriter(settings.conninfo(), sleeper=sleeper),
        Spool(settings.spool.dir),
        spool_after=settings.spool.after_seconds,
    )
    return Producer(settings, exchange, writer, sleeper=sleeper)


def install_signal_handlers(sleeper: Sleeper) -> None:
    """SIGTERM/SIGINT ask for a clean stop; a second signal uses the default action."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info(
            "signal=%s received: finishing the batch in hand, then exiting",
            signal.Signals(signum).name,
        )
        sleeper.stop()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


class _Guard:
    """Runs one job for the scheduler; errors are logged, never kill the loop."""

    def __init__(self, name: str, job: Callable[[], object]) -> None:
        self.name = name
        self.job = job

    def __call__(self) -> None:
        try:
            self.job()
        except (Interrupted, WriteAbandoned):
            raise
        except Exception:
            log.exception("job=%s failed (will run again on schedule)", self.name)


def _writer(producer: Producer) -> SpoolingWriter:
    writer = producer.writer
    if not isinstance(writer, SpoolingWriter):
        raise TypeError("run_once and run_forever need a SpoolingWriter (see build_producer)")
    return writer


def _stopped(writer: SpoolingWriter, status: int) -> int:
    """The last attempt to empty the spool, then the final log line and the exit status."""
    try:
        writer.replay()
    except DatabaseUnavailable:
        pass
    except Exception:
        log.exception("replaying the spool at shutdown failed")
    finally:
        writer.close()
    files, rows = writer.pending()
    if writer.lost_rows:
        log.error(
            "producer stopped: %d rows lost (postgres unreachable, spool unusable)%s (exit %d)",
            writer.lost_rows,
            f"; {rows} rows in the spool {writer.spool.directory} will be written on the next start"
            if rows
            else "",
            EXIT_FAILED,
        )
        return EXIT_FAILED
    if files:
        log.warning(
            "producer stopped with %d rows not yet in postgres: they are safe in %d files in "
            "the spool %s and will be written on the next start (exit %d)",
            rows,
            files,
            writer.spool.directory,
            EXIT_SPOOLED,
        )
        return status if status != EXIT_OK else EXIT_SPOOLED
    log.info("producer stopped%s", "" if status == EXIT_OK else f" (exit {status})")
    return status


def run_once(producer: Producer) -> int:
    """One full cycle (the spool first). Exit status: see the module docstring; a job that
    raised, or that the exchange's ban skipped, makes it EXIT_FAILED."""
    writer = _writer(producer)
    writer.open()
    status = EXIT_OK
    try:
        if any(result.crashed or result.banned for result in producer.once()):
            status = EXIT_FAILED
    finally:
        status = _stopped(writer, status)
    return status


def _scheduler(
    jobs: dict[str, Callable[[], object]], intervals: dict[str, float]
) -> schedule.Scheduler:
    """Each job, guarded, on its own interval."""
    scheduler = schedule.Scheduler()
    for name, job in jobs.items():
        scheduler.every(intervals[name]).seconds.do(_Guard(name, job)).tag(name)
    return scheduler


def _run_until_stopped(
    scheduler: schedule.Scheduler, sleeper: Sleeper, check: Callable[[], None] = lambda: None
) -> None:
    """Every job once, then each when it is due, until the sleeper is stopped; `check`
    runs before each round (stream mode: raise the writer thread's error)."""
    scheduler.run_all()
    while not sleeper.stopped:
        check()
        scheduler.run_pending()
        idle = scheduler.idle_seconds
        sleeper.wait(min(MAX_IDLE_SECONDS, max(0.0, idle if idle is not None else 0.0)))


def run_forever(producer: Producer) -> int:
    """The spool first, then every job on its own interval until SIGTERM/SIGINT. Exit status:
    see the module docstring."""
    writer = _writer(producer)
    intervals = producer.intervals()
    scheduler = _scheduler(producer.jobs(), intervals)
    status = EXIT_OK
    writer.open()
    try:
        log.info(
            "producer running: %s spool=%s",
            " ".join(f"{name}_every={seconds:g}s" for name, seconds in intervals.items()),
            writer.spool.directory,
        )
        _run_until_stopped(scheduler, producer.sleeper)
    except Interrupted:
        pass
    except WriteAbandoned as e:
        log.error("stopping with an unwritten batch: %s", e)
        status = EXIT_FAILED
    finally:
        status = _stopped(writer, status)
    return status


def run(producer: Producer) -> int:
    """``cap-stock run``: :func:`run_stream` with ``INGEST_MODE=stream``, else
    :func:`run_forever`."""
    if producer.settings.ingest.mode == "stream":
        return run_stream(producer)
    return run_forever(producer)


def run_stream(producer: Producer) -> int:
    """The spool first, then stream mode until SIGTERM/SIGINT: the streams, the writer
    and REST worker threads, and the timed jobs of :meth:`StreamIngest.jobs` here. At a
    stop the connections close, the rows in hand are written, then the spool is tried
    once more. Exit status: see the module docstring."""
    writer = _writer(producer)
    status = EXIT_OK
    writer.open()
    ingest = build_stream_ingest(producer)
    intervals = ingest.intervals()
    scheduler = _scheduler(ingest.jobs(), intervals)
    ingest.writer.start()
    try:
        s = producer.settings.ingest
        log.info(
            "producer streaming from %s: flush_ms=%d flush_rows=%d stall=%gs rollover=%gs "
            "streams_per_connection=%d %s spool=%s",
            s.stream_url,
            s.flush_ms,
            s.flush_rows,
            s.stall_seconds,
            s.rollover_seconds,
            s.streams_per_connection,
            " ".join(f"{name}_every={seconds:g}s" for name, seconds in intervals.items()),
            writer.spool.directory,
        )
        ingest.start()
        _run_until_stopped(scheduler, producer.sleeper, ingest.writer.raise_error)
    except Interrupted:
        pass
    except WriteAbandoned as e:
        log.error("stopping with an unwritten batch: %s", e)
        status = EXIT_FAILED
    finally:
        ingest.stop()
        ingest.writer.stop()
        if ingest.writer.error is not None:
            status = EXIT_FAILED
        producer.writer = writer
        status = _stopped(writer, status)
    return status
