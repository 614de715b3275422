"""Wiring and the two ways to run the producer: one cycle, or scheduled jobs until a signal."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

import schedule

from capstock.backoff import Interrupted, Sleeper
from capstock.config import Settings
from capstock.exchange.client import ExchangeClient
from capstock.jobs import JobResult, Producer
from capstock.postgres import PostgresWriter, WriteAbandoned

log = logging.getLogger(__name__)

MAX_IDLE_SECONDS = 1.0
"""The scheduler loop wakes at least this often."""


def build_producer(settings: Settings, *, sleeper: Sleeper | None = None) -> Producer:
    sleeper = sleeper or Sleeper()
    exchange = ExchangeClient(settings.binance, sleeper=sleeper)
    writer = PostgresWriter(settings.conninfo(), sleeper=sleeper)
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

    def __init__(self, name: str, job: Callable[[], JobResult]) -> None:
        self.name = name
        self.job = job
        self.failures = 0

    def __call__(self) -> None:
        try:
            self.job()
        except (Interrupted, WriteAbandoned):
            raise
        except Exception:
            self.failures += 1
            log.exception("job=%s failed (will run again on schedule)", self.name)


def run_once(producer: Producer) -> int:
    """One full cycle. Exit status 0 when every job ran, 1 when a job failed outright."""
    status = 0
    try:
        for name, job in producer.jobs().items():
            if producer.sleeper.stopped:
                break
            try:
                job()
            except (Interrupted, WriteAbandoned) as e:
                log.warning("job=%s stopped: %s", name, e)
                return 0 if producer.sleeper.stopped else 1
            except Exception:
                log.exception("job=%s failed", name)
                status = 1
    finally:
        producer.writer.close()
    return status


def run_forever(producer: Producer) -> int:
    """Every job on its own interval until SIGTERM/SIGINT, then exit 0."""
    j = producer.settings.jobs
    intervals = {
        "ticker_24hr": j.ticker_seconds,
        "klines": j.klines_seconds,
        "trades": j.trades_seconds,
        "depth": j.depth_seconds,
        "prices": j.prices_seconds,
        "heartbeat": j.heartbeat_seconds,
        "retention": j.retention_seconds,
    }
    scheduler = schedule.Scheduler()
    for name, job in producer.jobs().items():
        scheduler.every(intervals[name]).seconds.do(_Guard(name, job)).tag(name)
    sleeper = producer.sleeper
    log.info(
        "producer running: %s",
        " ".join(f"{name}_every={seconds:g}s" for name, seconds in intervals.items()),
    )
    try:
        scheduler.run_all()
        while not sleeper.stopped:
            scheduler.run_pending()
            idle = scheduler.idle_seconds
            sleeper.wait(min(MAX_IDLE_SECONDS, max(0.0, idle if idle is not None else 0.0)))
    except Interrupted:
        pass
    except WriteAbandoned as e:
        log.error("stopping with an unwritten batch: %s", e)
    finally:
        producer.writer.close()
    log.info("producer stopped")
    return 0
