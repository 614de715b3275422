"""Stream mode next to REST polling on the same simulated market: latency to Postgres and to
Cassandra, and capture.

Starts the exchange simulator in this process (``--symbols`` USDT pairs trading
``--trade-rate`` times a second each), then runs the producer in each mode against it, with
the default ``JOB_*`` and ``INGEST_*`` settings otherwise:

- ``stream``: ``INGEST_MODE=stream`` (:mod:`capstock.ingest.streaming`): websocket streams,
  the writer thread flushing every 100 ms, holes filled from REST;
- ``rest``: the polling jobs on their intervals (``cap-stock run``'s scheduler).

Each mode writes into its own isolated copy of the CDC chain (tests/support/cdc_harness.py:
its own database, slot, topics, keyspace and DataStax sink inside Kafka Connect, from the
committed connector settings), warmed up with one row that must reach Cassandra before the
producer starts, and removed afterwards (also after an error or Ctrl-C). The producer runs
``--warmup`` seconds, then the measured window of ``--seconds``, then 2 s more so the
trades made in the window can arrive; only trades made in the window count.

Per mode it prints the trades the market made in the window (offered) and those stored
(ingested, each id once), the latency from each trade's exchange time (its ``T``/``time``)
to the moment the write that stored it returned (committed in Postgres) and to the moment
it was readable in Cassandra, p50 and p99, then the request weight used per minute, the
trade-id gaps found and the rows captured per minute in every table (window only).

Readable in Cassandra: per write, the newest trade of each symbol is looked for by primary
key every 10 ms (the first in write order, the others once it is there); every trade of
that symbol in that write counts as readable when it was (written before it, in the same
transaction). The simulator publishes its streams every 50 ms, so up to 50 ms
of a streamed trade's latency (25 ms on average) is the simulated exchange's own delay.

    PYTHONPATH=. .venv/bin/python bench/bench_streaming.py [--symbols 20] [--trade-rate 50]
        [--seconds 60] [--warmup 15] [--modes stream,rest] [--memory] 2>/dev/null

Needs the native stack (`make stack-up`; databases, connectors and keyspaces are created
as the admin users the stack manages), or ``--memory`` to write to an in-memory table
instead (no services; the latency then stops where Postgres would begin, and there is no
Cassandra figure).
Sample (2 shared cores, 2026-11-22, ``--symbols 20 --trade-rate 50 --seconds 60``, 168 s
in all)::

    stream trades offered 1,045/s, ingested 1,045/s (100.0% of the window's ids); latency
           trade time → Postgres p50 115 ms, p99 176 ms; → Cassandra p50 141 ms, p99 210 ms
           weight 80/min; trade-id gaps found 0, filled 0; rows captured per minute:
           kline_data=620 recent_trades=62,663 order_book=1,600 top_24hr=20 latest_prices=120
    rest   trades offered 1,038/s, ingested 333/s (32.0% of the window's ids); latency trade
           time → Postgres p50 5,008 ms, p99 16,726 ms; → Cassandra p50 5,308 ms, p99 17,125 ms
           weight 1,380/min; trade-id gaps found 40, filled -; rows captured per minute:
           kline_data=60 recent_trades=20,000 order_book=1,600 top_24hr=20 latest_prices=100

(each result is one line). With ``--modes stream`` the same day, every id of the window
stored each time: ``--trade-rate 100``, 2,079 trades/s, Postgres p50 122 / p99 218 ms,
Cassandra p50 154 / p99 285 ms; ``200``, 4,170 trades/s, 137 / 317 and 179 / 401 ms;
``400``, 8,294 trades/s, 249 / 848 and 370 / 1,058 ms. The simulator runs in this process
(one interpreter, one GIL), so the rates are lower bounds. A stream row waits for the next
flush (``INGEST_FLUSH_MS``, 100 ms) after the simulator's 50 ms publication tick. Polling
keeps the newest ``JOB_TRADES_LIMIT`` (500) trades per symbol and poll, so at 50 trades/s
it stores the last 10 s of every 30 s, written in one batch once every symbol was fetched
(paced to the weight budget); its weight is every job's requests, stream mode's the
universe ranking (80 a minute) once the books are synced.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

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
from capstock.transform.rows import trade_row

from bench.figures import Figure, at_least, at_most, table

log = logging.getLogger("bench_streaming")

MINUTE = 60.0
GRACE_SECONDS = 2.0
"""The producer runs on after the window closes, so the trades made in it can arrive."""
POLL_SECONDS = 0.01
"""How often Cassandra is asked whether the sampled trades are readable."""
READABLE_WAIT_SECONDS = 30.0
"""A sampled trade not readable this long after the producer stopped is counted as never."""
WARMUP_WAIT_SECONDS = 120.0
"""How long a new chain may take to carry its first row to Cassandra (topics, sink task)."""
WARMUP_SYMBOL = "WARMUPUSDT"
"""The warm-up row's symbol: not in the simulated universe, so it counts nowhere."""
CASSANDRA_P99_GOAL_MS = 1000
"""Real time end to end: the CDC chain's own goal (commit → readable p99 ≤ 1 s, see
bench_cdc_latency.py), here from the exchange's trade time."""

CHAIN = "Postgres → CDC → Cassandra (a fresh chain per mode)"
Key = tuple[str, int]
"""(symbol, trade id)"""


@dataclass
class Measured:
    """What one mode's writes stored, timed as each write returned (epoch seconds)."""

    rows: Counter = field(default_factory=Counter)
    traded_at: dict[Key, float] = field(default_factory=dict)
    """Each stored trade's exchange time."""
    stored_at: dict[Key, float] = field(default_factory=dict)
    """When the write that first stored it returned."""
    sample_of: dict[Key, Key] = field(default_factory=dict)
    """The trade whose arrival in Cassandra stands for this one's: its symbol's newest in
    the same write."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class ReadableProbe:
    """A thread noting when sampled trades become readable in a keyspace's recent_trades.

    Each write hands over its samples (one per symbol, in write order). Every
    :data:`POLL_SECONDS` the first unseen sample of every pending write is looked up by
    primary key (all at once); once one is readable, the rest of that write's are looked up
    at once. So a poll costs about one query per write in flight, not one per symbol.
    """

    def __init__(self, session, keyspace: str) -> None:  # type: ignore[no-untyped-def]
        self.session = session
        self.query = session.prepare(
            f"SELECT trade_id FROM {keyspace}.recent_trades "
            "WHERE symbol = ? AND day = ? AND trade_id = ?"
        )
        self.readable_at: dict[Key, float] = {}
        self._pending: list[list[tuple[str, date, int]]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._wait_seconds = READABLE_WAIT_SECONDS
        self._thread = threading.Thread(target=self._run, name="readable-probe", daemon=True)

    def start(self) -> ReadableProbe:
        self._thread.start()
        return self

    def expect(self, samples: list[tuple[str, date, int]]) -> None:
        if samples:
            with self._lock:
                self._pending.append(list(samples))

    def finish(self, timeout: float = READABLE_WAIT_SECONDS) -> None:
        """Wait until every sample is readable or ``timeout`` passed, then stop."""
        self._wait_seconds = timeout
        self._closing.set()
        self._thread.join(timeout + 5)

    @property
    def waiting(self) -> int:
        with self._lock:
            return sum(len(write) for write in self._pending)

    def _readable(self, samples: list[tuple[str, date, int]]) -> list[bool]:
        futures = [self.session.execute_async(self.query, s) for s in samples]
        return [bool(f.result().one()) for f in futures]

    def _run(self) -> None:
        give_up_at: float | None = None
        failed = False
        while True:
            try:
                self._poll()
            except Exception as e:  # a timeout must not end the measurement: next round
                if not failed:
                    log.warning("looking up trades in Cassandra failed (%s): going on", e)
                failed = True
            if self._closing.is_set():
                give_up_at = give_up_at or time.monotonic() + self._wait_seconds
                if not self.waiting or time.monotonic() > give_up_at:
                    return
            time.sleep(POLL_SECONDS)

    def _poll(self) -> None:
        with self._lock:
            writes = list(self._pending)
        leads = self._readable([write[0] for write in writes])
        for write, lead in zip(writes, leads, strict=True):
            if not lead:
                continue
            found = [True, *self._readable(write[1:])]
            now = time.time()
            with self._lock:
                for sample, seen in zip(list(write), found, strict=True):
                    if seen:
                        self.readable_at[(sample[0], sample[2])] = now
                        write.remove(sample)
                if not write:
                    self._pending = [w for w in self._pending if w is not write]


class TimingWriter:
    """The producer's writer interface around a real one, recording what was stored."""

    def __init__(self, inner, measured: Measured, probe: ReadableProbe | None) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.measured = measured
        self.probe = probe

    def write(self, table, rows) -> WriteResult:  # type: ignore[no-untyped-def]
        rows = list(rows)
        result = self.inner.write(table, rows)
        done = time.time()
        with self.measured.lock:
            self.measured.rows[table.name] += result.changed
            if table is RECENT_TRADES:
                self._trades(rows, done)
        return result

    def _trades(self, rows: list[dict], done: float) -> None:
        m = self.measured
        fresh: dict[str, list[Key]] = {}
        newest: dict[str, dict] = {}
        for row in rows:
            key = (row["symbol"], row["trade_id"])
            if key in m.stored_at:
                continue
            m.stored_at[key] = done
            m.traded_at[key] = row["trade_time"].timestamp()
            fresh.setdefault(key[0], []).append(key)
            if key[0] not in newest or row["trade_id"] > newest[key[0]]["trade_id"]:
                newest[key[0]] = row
        for symbol, keys in fresh.items():
            for key in keys:
                m.sample_of[key] = (symbol, newest[symbol]["trade_id"])
        if self.probe is not None:
            order = {id(row): i for i, row in enumerate(rows)}
            samples = sorted(newest.values(), key=lambda row: order[id(row)])
            self.probe.expect([(r["symbol"], r["day"], r["trade_id"]) for r in samples])

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
def sigint_deferred() -> Iterator[None]:
    """Ctrl-C waits until the block is done (a clean-up cut short leaves a database, a
    slot, connectors, topics or a keyspace behind), then interrupts as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pressed:
            raise KeyboardInterrupt


def warm_up(writer: PostgresWriter, session, keyspace: str) -> None:  # type: ignore[no-untyped-def]
    """One trade through the new chain, waited for in Cassandra: the topic exists and the
    sink reads it before anything is timed."""
    now = datetime.now(UTC)
    raw = {
        "id": 1,
        "price": "1",
        "qty": "1",
        "quoteQty": "1",
        "time": int(now.timestamp() * 1000),
        "isBuyerMaker": True,
        "isBestMatch": True,
    }
    row = trade_row(WARMUP_SYMBOL, raw, ingested_at=now)
    writer.write(RECENT_TRADES, [row])
    query = (
        f"SELECT trade_id FROM {keyspace}.recent_trades "
        "WHERE symbol = %s AND day = %s AND trade_id = 1"
    )
    deadline = time.monotonic() + WARMUP_WAIT_SECONDS
    while not session.execute(query, (WARMUP_SYMBOL, row["day"])).one():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm-up row did not reach Cassandra ({keyspace}) in time")
        time.sleep(0.2)


@contextlib.contextmanager
def stores(memory: bool, session) -> Iterator[tuple[object, ReadableProbe | None]]:  # type: ignore[no-untyped-def]
    """A writer into a fresh copy of the CDC chain and a probe on its keyspace (both gone
    afterwards), or an in-memory writer and no probe."""
    if memory:
        from tests.support.producer_fakes import MemoryWriter

        yield MemoryWriter(), None
        return
    from stack.settings import StackSettings
    from tests.support.cdc_harness import CdcHarness

    with tempfile.TemporaryDirectory(prefix="bench-stream-") as work_dir:
        chain = CdcHarness(StackSettings(), work_dir=Path(work_dir))
        writer: PostgresWriter | None = None
        probe: ReadableProbe | None = None
        try:
            chain.create_stores(session)
            chain.register_source()
            chain.start_sink()
            writer = PostgresWriter(chain.conninfo)
            warm_up(writer, session, chain.name)
            probe = ReadableProbe(session, chain.name).start()
            yield writer, probe
        finally:
            with sigint_deferred():
                if probe is not None:
                    probe.finish(timeout=0)
                if writer is not None:
                    writer.close()
                chain.teardown(session)


def last_ids(sim: Simulator) -> dict[str, int]:
    with sim.market_lock:
        sim.market.advance(sim.now_ms())
        return {s: state.next_trade_id - 1 for s, state in sim.market.symbols.items()}


@dataclass
class Window:
    """What the market made and the producer did between the window's two marks."""

    first_ids: dict[str, int] = field(default_factory=dict)
    last_ids: dict[str, int] = field(default_factory=dict)
    rows: Counter = field(default_factory=Counter)
    weight: int = 0
    seconds: float = 0.0


def run_scheduled(
    jobs: dict[str, Callable[[], object]],
    intervals: dict[str, float],
    marks: list[tuple[float, Callable[[], None]]],
) -> None:
    """The jobs on their intervals (first all at once), calling each mark's action once
    its offset (seconds from the start) has passed; returns after the last mark."""
    scheduler = schedule.Scheduler()
    for name, job in jobs.items():
        scheduler.every(intervals[name]).seconds.do(job)
    start = time.monotonic()
    scheduler.run_all()
    for offset, action in marks:
        while (left := start + offset - time.monotonic()) > 0:
            scheduler.run_pending()
            time.sleep(min(0.2, left))
        action()


def run_mode(producer: Producer, mode: str, marks: list[tuple[float, Callable[[], None]]]) -> None:
    if mode == "rest":
        run_scheduled(producer.jobs(), producer.intervals(), marks)
        return
    ingest = build_stream_ingest(producer)
    ingest.writer.start()
    try:
        ingest.start()
        jobs = {k: v for k, v in ingest.jobs().items() if k != "stream_status"}
        run_scheduled(jobs, ingest.intervals(), marks)
    finally:
        ingest.stop()
        ingest.writer.stop()


@dataclass
class Result:
    mode: str
    offered: int
    ingested: int
    window: Window
    to_postgres: list[float]
    """Seconds from each trade's exchange time to its write returning (in memory with
    --memory)."""
    to_cassandra: list[float] | None
    """None without Cassandra (--memory)."""
    never_readable: int
    gaps_found: int
    gaps_filled: int | None

    def per_second(self, n: int) -> float:
        return n / self.window.seconds

    def per_minute(self, n: float) -> float:
        return n / (self.window.seconds / MINUTE)

    @property
    def store(self) -> str:
        return "stored" if self.to_cassandra is None else "Postgres"

    @property
    def captured(self) -> float:
        return 100 * self.ingested / max(1, self.offered)

    def p(self, q: float, cassandra: bool = False) -> float:
        values = self.to_cassandra if cassandra else self.to_postgres
        return 1000 * percentile(values or [], q)

    def lines(self) -> list[str]:
        cassandra = ""
        if self.to_cassandra is not None:
            cassandra = (
                f"; → Cassandra p50 {self.p(0.5, True):,.0f} ms, p99 {self.p(0.99, True):,.0f} ms"
            )
            if self.never_readable:
                cassandra += f" ({self.never_readable:,} trades never readable)"
        rows = " ".join(
            f"{name}={self.per_minute(self.window.rows[name]):,.0f}"
            for name in TABLES
            if name != "heartbeat"
        )
        filled = "-" if self.gaps_filled is None else f"{self.gaps_filled}"
        return [
            f"{self.mode:<6} trades offered {self.per_second(self.offered):,.0f}/s, ingested "
            f"{self.per_second(self.ingested):,.0f}/s ({self.captured:.1f}% of the window's "
            f"ids); latency trade time → {self.store} p50 {self.p(0.5):,.0f} ms, "
            f"p99 {self.p(0.99):,.0f} ms{cassandra}",
            f"       weight {self.per_minute(self.window.weight):,.0f}/min; trade-id gaps "
            f"found {self.gaps_found}, filled {filled}; rows captured per minute: {rows}",
        ]


def measure(sim: Simulator, mode: str, args: argparse.Namespace, session) -> Result:  # type: ignore[no-untyped-def]
    measured = Measured()
    window = Window()
    with stores(args.memory, session) as (inner, probe):
        settings = settings_for(sim, args.symbols, mode)
        sleeper = Sleeper()
        exchange = ExchangeClient(settings.binance, sleeper=sleeper)
        writer = TimingWriter(inner, measured, probe)
        producer = Producer(settings, exchange, writer, sleeper=sleeper)
        opened: list[float] = []

        def open_window() -> None:
            opened.append(time.monotonic())
            window.first_ids = last_ids(sim)
            with measured.lock:
                window.rows = Counter(measured.rows)
            window.weight = exchange.stats.weight_requested

        def close_window() -> None:
            window.seconds = time.monotonic() - opened[0]
            window.last_ids = last_ids(sim)
            with measured.lock:
                window.rows = Counter(measured.rows) - window.rows
            window.weight = exchange.stats.weight_requested - window.weight

        end = args.warmup + args.seconds
        marks = [
            (args.warmup, open_window),
            (end, close_window),
            (end + GRACE_SECONDS, lambda: None),
        ]
        run_mode(producer, mode, marks)
        if probe is not None:
            probe.finish()
            readable = dict(probe.readable_at)
    universe = {r.symbol for r in producer.universe}
    first, last = window.first_ids, window.last_ids
    offered = sum(last[s] - first[s] for s in universe)
    in_window = [
        key
        for key in measured.stored_at
        if key[0] in universe and first[key[0]] < key[1] <= last[key[0]]
    ]
    to_postgres = [measured.stored_at[k] - measured.traded_at[k] for k in in_window]
    to_cassandra: list[float] | None = None
    never = 0
    if probe is not None:
        to_cassandra = []
        for key in in_window:
            seen = readable.get(measured.sample_of[key])
            if seen is None:
                never += 1
            else:
                to_cassandra.append(seen - measured.traded_at[key])
    return Result(
        mode=mode,
        offered=offered,
        ingested=len(in_window),
        window=window,
        to_postgres=to_postgres,
        to_cassandra=to_cassandra,
        never_readable=never,
        gaps_found=producer.trade_gaps_total,
        gaps_filled=producer.trade_gaps_filled_unsaved if mode == "stream" else None,
    )


def figures(results: dict[str, Result]) -> list[Figure]:
    """The stream mode's figures, each next to REST polling's in the same run (or the only
    mode's, without a baseline)."""
    mode = "stream" if "stream" in results else next(iter(results))
    ours = results[mode]
    other = next((r for m, r in results.items() if m != mode), None)

    def baseline(value: Callable[[Result], float], unit: str) -> str:
        if other is None:
            return ""
        return f"{other.mode} {value(other):,.{1 if unit == '%' else 0}f} {unit}"

    def figure(name: str, value: Callable[[Result], float], unit: str, goal=None) -> Figure:  # type: ignore[no-untyped-def]
        return Figure(f"{mode}: {name}", value(ours), unit, baseline(value, unit), goal)

    out = [
        figure(f"trade time → {ours.store} p50", lambda r: r.p(0.5), "ms"),
        figure(f"trade time → {ours.store} p99", lambda r: r.p(0.99), "ms"),
    ]
    if ours.to_cassandra is not None:
        out += [
            figure("trade time → Cassandra p50", lambda r: r.p(0.5, True), "ms"),
            figure(
                "trade time → Cassandra p99",
                lambda r: r.p(0.99, True),
                "ms",
                at_most(CASSANDRA_P99_GOAL_MS) if mode == "stream" else None,
            ),
        ]
    out += [
        figure("trades ingested", lambda r: r.per_second(r.ingested), "trades/s"),
        figure(
            "trade ids of the window stored",
            lambda r: r.captured,
            "%",
            at_least(100) if mode == "stream" else None,
        ),
        figure("request weight", lambda r: r.per_minute(r.window.weight), "weight/min"),
    ]
    return out


def run(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=20, help="USDT pairs in the universe")
    parser.add_argument("--trade-rate", type=float, default=50.0, help="trades/s per symbol")
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before the window")
    parser.add_argument("--modes", default="stream,rest", help="comma-separated, in order")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory", action="store_true", help="no services: an in-memory table")
    args = parser.parse_args(argv)
    # The producer's warnings (gaps found, connections lost) on stderr, the results on stdout.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or not set(modes) <= {"stream", "rest"}:
        parser.error("--modes takes stream and/or rest")
    with contextlib.ExitStack() as stack:
        session = None
        if not args.memory:
            from stack.services import Cassandra
            from stack.settings import StackSettings

            cluster, session = Cassandra(StackSettings()).admin_session()
            stack.callback(cluster.shutdown)
        sim = start_simulator(
            symbols=args.symbols, seed=args.seed, trade_rate=args.trade_rate, history_minutes=5
        )
        stack.callback(sim.close)
        print(
            f"market: {args.symbols} USDT pairs x {args.trade_rate:g} trades/s (simulator, "
            f"seed {args.seed}); per mode {args.warmup:g} s warm-up, {args.seconds:g} s "
            f"measured; writer: {'in memory' if args.memory else CHAIN}",
            flush=True,
        )
        results: dict[str, Result] = {}
        for mode in modes:
            results[mode] = measure(sim, mode, args, session)
            for line in results[mode].lines():
                print(line, flush=True)
    return figures(results)


def main(argv: list[str] | None = None) -> int:
    try:
        print(table(run(argv)))
    except KeyboardInterrupt:
        print("interrupted; what the run created was removed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
