"""Stream mode next to REST polling on the same simulated market: latency and capture.

Starts the exchange simulator in this process (``--symbols`` USDT pairs trading
``--trade-rate`` times a second each), then runs the producer for ``--seconds`` in each
mode against it, each into its own fresh Postgres database (dropped afterwards), with the
default ``JOB_*`` and ``INGEST_*`` settings otherwise:

- ``stream``: ``INGEST_MODE=stream`` (:mod:`capstock.ingest.streaming`): websocket streams,
  the writer thread flushing every 100 ms, holes filled from REST;
- ``rest``: the polling jobs on their intervals (``cap-stock run``'s scheduler).

Per mode it prints the trades the market made in the window (offered) and those stored
(ingested, each id once), the rows captured per minute in every table, the request weight
used per minute, the trade-id gaps found, and the latency from each trade's exchange time
(its ``T``/``time``) to the moment the write that stored it returned (committed in
Postgres), p50 and p99. The simulator publishes its streams every 50 ms, so up to 50 ms of
a streamed trade's latency (25 ms on average) is the simulated exchange's own delay.

    PYTHONPATH=. .venv/bin/python bench/bench_streaming.py [--symbols 20] [--trade-rate 50]
        [--seconds 60] [--modes stream,rest] [--memory] 2>/dev/null

Needs Postgres from the native stack (`make stack-up`; the database is created as the
superuser the stack manages), or ``--memory`` to write to an in-memory table instead (no
services; the latency then stops where Postgres would begin).
Sample (2 shared cores, ``--memory --symbols 10 --trade-rate 20 --seconds 65``)::

    stream trades offered 212/s, ingested 211/s (99.8% of the window's ids); latency trade
           time → stored p50 102 ms, p99 152 ms (mean 102 ms)
           weight 608/min; trade-id gaps found 0, filled 0; rows captured per minute:
           kline_data=313 recent_trades=12,677 order_book=737 top_24hr=9 latest_prices=55
    rest   trades offered 211/s, ingested 147/s (69.8% of the window's ids); latency trade
           time → stored p50 11,332 ms, p99 28,778 ms (mean 11,894 ms)
           weight 1,059/min; trade-id gaps found 16, filled -; rows captured per minute:
           kline_data=83 recent_trades=13,453 order_book=1,107 top_24hr=18 latest_prices=65

(each result is one line). With ``--symbols 20 --trade-rate 100 --modes stream`` the same
machine ingested 2,052 of 2,062 trades/s (p50 105 ms, p99 158 ms): the simulator runs in
this process (one interpreter, one GIL), so the rate is a lower bound. A stream row waits
for the next flush (``INGEST_FLUSH_MS``, 100 ms) after the simulator's 50 ms publication
tick; polling's latency is half its interval on average and it keeps ``JOB_TRADES_LIMIT``
trades per symbol and poll.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import schedule
from capstock.backoff import Sleeper
from capstock.config import (
    BinanceSettings,
    IngestSettings,
    JobSettings,
    LogSettings,
    PostgresSettings,
    Settings,
    SpoolSettings,
    UniverseSettings,
    load,
)
from capstock.exchange.client import ExchangeClient
from capstock.ingest.jobs import Producer
from capstock.ingest.streaming import build_stream_ingest
from capstock.model.tables import RECENT_TRADES, TABLES
from capstock.simulator import Simulator, start_simulator
from capstock.staging.writer import PostgresWriter, WriteResult

MINUTE = 60.0


@dataclass
class Measured:
    """What one mode's writes stored, timed as each write returned."""

    rows: Counter = field(default_factory=Counter)
    latency: dict[tuple[str, int], float] = field(default_factory=dict)
    """(symbol, trade id) → seconds from its trade time to its write returning (first)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class TimingWriter:
    """The producer's writer interface around a real one, recording what was stored."""

    def __init__(self, inner, measured: Measured) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.measured = measured

    def write(self, table, rows) -> WriteResult:  # type: ignore[no-untyped-def]
        rows = list(rows)
        result = self.inner.write(table, rows)
        done = datetime.now(UTC)
        with self.measured.lock:
            self.measured.rows[table.name] += result.changed
            if table is RECENT_TRADES:
                for row in rows:
                    key = (row["symbol"], row["trade_id"])
                    if key not in self.measured.latency:
                        self.measured.latency[key] = (done - row["trade_time"]).total_seconds()
        return result

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def settings_for(sim: Simulator, symbols: int, mode: str) -> Settings:
    return Settings(
        postgres=PostgresSettings.model_construct(),
        binance=load(BinanceSettings, api_url=sim.url, _env_file=None),
        universe=load(UniverseSettings, size=symbols, min_quote_volume=Decimal(0), _env_file=None),
        jobs=load(JobSettings, _env_file=None),
        log=load(LogSettings, _env_file=None),
        spool=load(SpoolSettings, _env_file=None),
        ingest=load(IngestSettings, mode=mode, stream_url=sim.ws_url, _env_file=None),
    )


@contextlib.contextmanager
def fresh_writer(memory: bool) -> Iterator[object]:
    """A writer into a new empty database (dropped afterwards), or an in-memory one."""
    if memory:
        from tests.support.producer_fakes import MemoryWriter

        yield MemoryWriter()
        return
    from psycopg import sql

    from stack.services import Postgres
    from stack.settings import StackSettings

    stack = StackSettings()
    name = f"bench_stream_{uuid.uuid4().hex[:8]}"
    owner = sql.Identifier(stack.postgres_user)
    with Postgres(stack).superuser_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), owner))
    writer = PostgresWriter(stack.postgres_conninfo(dbname=name))
    try:
        writer.init_schema()
        yield writer
    finally:
        writer.close()
        with Postgres(stack).superuser_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def last_ids(sim: Simulator) -> dict[str, int]:
    with sim.market_lock:
        sim.market.advance(sim.now_ms())
        return {s: state.next_trade_id - 1 for s, state in sim.market.symbols.items()}


def run_stream(producer: Producer, seconds: float) -> None:
    ingest = build_stream_ingest(producer)
    ingest.writer.start()
    try:
        ingest.start()
        jobs, intervals = ingest.jobs(), ingest.intervals()
        run_scheduled({k: v for k, v in jobs.items() if k != "stream_status"}, intervals, seconds)
    finally:
        ingest.stop()
        ingest.writer.stop()


def run_rest(producer: Producer, seconds: float) -> None:
    run_scheduled(producer.jobs(), producer.intervals(), seconds)


def run_scheduled(jobs, intervals, seconds: float) -> None:  # type: ignore[no-untyped-def]
    scheduler = schedule.Scheduler()
    for name, job in jobs.items():
        scheduler.every(intervals[name]).seconds.do(job)
    scheduler.run_all()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        scheduler.run_pending()
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def measure(sim: Simulator, mode: str, args: argparse.Namespace) -> list[str]:
    measured = Measured()
    with fresh_writer(args.memory) as inner:
        settings = settings_for(sim, args.symbols, mode)
        sleeper = Sleeper()
        exchange = ExchangeClient(settings.binance, sleeper=sleeper)
        producer = Producer(settings, exchange, TimingWriter(inner, measured), sleeper=sleeper)
        before = last_ids(sim)
        started = time.monotonic()
        (run_stream if mode == "stream" else run_rest)(producer, args.seconds)
        elapsed = time.monotonic() - started
        after = last_ids(sim)
    minutes = elapsed / MINUTE
    universe = {r.symbol for r in producer.universe}
    offered = sum(after[s] - before[s] for s in universe)
    in_window = [
        seconds
        for (symbol, trade_id), seconds in measured.latency.items()
        if symbol in universe and before[symbol] < trade_id <= after[symbol]
    ]
    ingested = len(in_window)
    per_minute = " ".join(
        f"{name}={measured.rows[name] / minutes:,.0f}" for name in TABLES if name != "heartbeat"
    )
    mean = statistics.fmean(in_window) if in_window else float("nan")
    p50, p99 = (1000 * percentile(in_window, q) for q in (0.5, 0.99))
    return [
        f"{mode:<6} trades offered {offered / elapsed:,.0f}/s, "
        f"ingested {ingested / elapsed:,.0f}/s ({100 * ingested / max(1, offered):.1f}% of "
        f"the window's ids); latency trade time → stored p50 {p50:,.0f} ms, "
        f"p99 {p99:,.0f} ms (mean {1000 * mean:,.0f} ms)",
        f"       weight {exchange.stats.weight_requested / minutes:,.0f}/min; "
        f"trade-id gaps found {producer.trade_gaps_total}, filled "
        f"{producer.trade_gaps_filled_unsaved if mode == 'stream' else '-'}; "
        f"rows captured per minute: {per_minute}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=20, help="USDT pairs in the universe")
    parser.add_argument("--trade-rate", type=float, default=50.0, help="trades/s per symbol")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run")
    parser.add_argument("--modes", default="stream,rest", help="comma-separated, in order")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="no Postgres: an in-memory table")
    args = parser.parse_args(argv)
    # The producer's warnings (gaps found, connections lost) on stderr, the results on stdout.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"stream", "rest"}:
        parser.error("--modes takes stream and/or rest")
    sim = start_simulator(
        symbols=args.symbols, seed=args.seed, trade_rate=args.trade_rate, history_minutes=5
    )
    try:
        print(
            f"market: {args.symbols} USDT pairs x {args.trade_rate:g} trades/s (simulator, "
            f"seed {args.seed}); {args.seconds:g} s per mode; writer: "
            f"{'in memory' if args.memory else 'Postgres (a fresh database per mode)'}",
            flush=True,
        )
        for mode in modes:
            for line in measure(sim, mode, args):
                print(line, flush=True)
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
