"""Stream mode (``INGEST_MODE=stream``): the market over websockets, REST only to fill holes.

For every symbol of the universe four streams, on combined connections of at most
``INGEST_STREAMS_PER_CONNECTION`` streams (:mod:`capstock.exchange.streams`)::

    <symbol>@trade  <symbol>@kline_<JOB_KLINE_INTERVAL>  <symbol>@depth[@100ms]  <symbol>@ticker

=================  =========================================================================
stream             goes to
=================  =========================================================================
``@trade``         ``recent_trades``, each trade as it arrives; trade ids are consecutive per
                   symbol, so a jump is a hole, filled from REST by id (below)
``@kline_<i>``     ``kline_data``, every event: the open candle upserted as it changes (every
                   2 s), the closed one final (``x`` true); an image older than one already
                   written (overlapping connections) is dropped. Candles that closed while
                   a connection was down, or the producer away, come from REST klines
                   (at most :data:`MAX_KLINE_CATCHUP` per symbol)
``@depth``         a local order book per symbol (:mod:`capstock.transform.order_book`);
                   its top ``JOB_DEPTH_LEVELS`` go to ``order_book`` every
                   ``JOB_DEPTH_SECONDS`` when it changed, stamped with its last event time
``@ticker``        the newest one per symbol to ``top_24hr`` every ``JOB_TICKER_SECONDS`` and
                   its last price (stamped with the event time) to ``latest_prices`` every
                   ``JOB_PRICES_SECONDS``: the same rows per minute as polling, without the
                   weight (these tables' sizes and TTLs are planned for that)
=================  =========================================================================

Threads: one per connection (read, parse, hand rows over), one writer
(:class:`~capstock.ingest.batching.WriterThread`: every ``INGEST_FLUSH_MS`` or
``INGEST_FLUSH_ROWS``), one REST worker (the only thread calling the REST API: universe
ranking every ``JOB_TICKER_SECONDS``, book snapshots, trade-id fills, each paced by the
weight budget), and the main thread running the timed jobs (heartbeat, retention, book
snapshots, ticker and price samples, a status line a minute).

**Gap-free trades.** Per symbol a :class:`~capstock.transform.trade_gaps.TradeIdLedger`
knows the highest id accounted for; it starts at the highest id in Postgres, so after a
restart the first streamed trade reveals what was missed while the producer was away. A
streamed id beyond the next one opens a hole (the stream skipped one, the connection was
lost, stalled or rolled over, the producer restarted); the REST worker fills it page by
page from ``GET /api/v3/historicalTrades?fromId=`` (:func:`~capstock.ingest.paging.trade_pages`,
25 weight per 1,000 ids) while streaming goes on. A hole counts as filled once the writer
has stored its rows; ids the exchange no longer has are logged as absent. Ids seen twice
(overlapping connections) are dropped before the writer, and the table ignores a second
copy anyway (``ON CONFLICT DO NOTHING``). So Postgres holds every id from the first one
captured exactly once. A hole larger than ``INGEST_FILL_MAX_IDS`` stays open (logged:
``cap-stock backfill`` can load it). The heartbeat reports gaps found
(``trade_gaps_total``), filled (``trade_gaps_filled``) and still open (``trade_gaps_open``).

That guarantee needs a REST host serving ``historicalTrades``: ``data-api.binance.vision``
does not (404). ``aggTrades``, which it serves, cannot stand in: an aggregate sums the
quantities of the trades one taker order filled at one price, so only the aggregates of a
single trade could be stored as trades. With such a host (:func:`fill_problem`, said once
at the start) or after a fill is answered 404, holes are counted and left open instead of
being retried; a start against a host that serves the endpoint takes them over (below).

**Order books.** Each book follows Binance's procedure: events are buffered until a REST
snapshot (``INGEST_BOOK_SNAPSHOT_LIMIT`` levels) that the buffered events continue is taken;
an event whose ``U`` jumps discards the book and starts again (a resync, logged).

**Universe.** Ranked as in polling mode (REST ticker/24hr, weight 80 a refresh); symbols
that join are subscribed on a connection with room (SUBSCRIBE, paced) or a new one, those
that leave are unsubscribed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from capstock.backoff import Interrupted, RetriesExhausted
from capstock.config import LIVE_API_URL, MARKET_DATA_API_URL
from capstock.exchange.client import Banned, ExchangeTrouble, RequestRejected
from capstock.exchange.streams import StreamConnection
from capstock.ingest.batching import FlushPolicy, SerializedWriter, WriterThread
from capstock.ingest.jobs import Producer
from capstock.ingest.paging import interval_ms, kline_pages, last_open, trade_pages
from capstock.model.tables import KLINE_DATA, LATEST_PRICES, ORDER_BOOK, RECENT_TRADES, TOP_24HR
from capstock.transform.order_book import DepthUpdate, LocalBook
from capstock.transform.rows import (
    BadRecord,
    book_levels,
    kline_row,
    ms_to_utc,
    parse_each,
    snapshot_rows,
    stream_kline_row,
    stream_price_row,
    stream_ticker_row,
    stream_trade_row,
    trade_row,
    utc_to_ms,
)
from capstock.transform.trade_gaps import Hole, TradeIdLedger
from capstock.transform.universe import Ranked

log = logging.getLogger(__name__)

STREAMS_PER_SYMBOL = 4
RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0
"""A fill or a snapshot that failed is tried again after this, doubling up to the max."""
SNAPSHOT_AGAIN_SECONDS = 0.5
"""A snapshot older than the buffered events: the next one is asked for this much later."""
RESUME_LOOKBACK_IDS = 100_000
"""At a start, holes among this many ids below the highest stored one are taken over (a
run that stopped before filling them counted them already)."""
MAX_KLINE_CATCHUP = 1000
"""Closed candles fetched at most per symbol after a start or a reconnection (one page);
older ones are left to `cap-stock backfill`."""
KLINES_KEPT_PER_SYMBOL = 4
"""Candles per symbol whose newest stream image is remembered (to drop older images)."""
STATUS_SECONDS = 60.0
"""How often the main thread logs a ``stream status`` line."""
BAD_LOGGED_EVERY = 1000


NO_HISTORICAL_TRADES_HOSTS = frozenset({urlsplit(MARKET_DATA_API_URL).hostname})
"""REST hosts known to answer ``/api/v3/historicalTrades`` with 404 (the market-data host
serves aggTrades, avgPrice, depth, exchangeInfo, klines, ping, ticker*, time, trades and
uiKlines only)."""


def fill_problem(api_url: str, answered_404: bool = False) -> str | None:
    """Why trade-id holes cannot be filled from ``api_url`` (None when they can, as far as
    is known before asking): a host in :data:`NO_HISTORICAL_TRADES_HOSTS`, or one that
    answered a fill with 404.

    >>> fill_problem("http://127.0.0.1:8900/api") is None
    True
    >>> print(fill_problem("https://data-api.binance.vision/api"))  # doctest: +ELLIPSIS
    BINANCE_API_URL=https://data-api.binance.vision/api does not serve /api/v3/historicalTrades...
    """
    if not answered_404 and urlsplit(api_url).hostname not in NO_HISTORICAL_TRADES_HOSTS:
        return None
    return (
        f"BINANCE_API_URL={api_url} does not serve /api/v3/historicalTrades"
        f"{' (HTTP 404)' if answered_404 else ''}, so trade-id holes (a reconnection, a "
        "rollover, a restart) cannot be filled: they are counted and left open "
        f"(trade_gaps_open). To store every trade id, set BINANCE_API_URL={LIVE_API_URL} "
        "(or another host serving historicalTrades) and restart: the start takes the open "
        f"holes among the last {RESUME_LOOKBACK_IDS:,} ids over"
    )


def symbol_streams(symbol: str, interval: str, depth_speed_ms: int) -> list[str]:
    """The four streams of one symbol.

    >>> symbol_streams("BTCUSDT", "1m", 100)
    ['btcusdt@trade', 'btcusdt@kline_1m', 'btcusdt@depth@100ms', 'btcusdt@ticker']
    """
    s = symbol.lower()
    depth = f"{s}@depth" if depth_speed_ms == 1000 else f"{s}@depth@{depth_speed_ms}ms"
    return [f"{s}@trade", f"{s}@kline_{interval}", depth, f"{s}@ticker"]


def stream_kind(name: str) -> str:
    """``"btcusdt@kline_1m"`` → ``"kline"``; ``"btcusdt@depth@100ms"`` → ``"depth"``."""
    event = name.partition("@")[2]
    return event.partition("_")[0].partition("@")[0]


# -- the REST worker -----------------------------------------------------------------------------


@dataclass(order=True)
class _Task:
    due: float
    priority: int
    seq: int
    key: tuple = field(compare=False)
    run: Callable[[], None] = field(compare=False)


class RestWorker:
    """The one thread that calls the REST API in stream mode: tasks run when due, the
    lowest ``priority`` first among those due (snapshots 0, universe 1, fills 2); a task
    whose ``key`` is already queued is not queued twice."""

    SNAPSHOT, UNIVERSE, FILL = 0, 1, 2

    def __init__(self, sleeper, clock: Callable[[], float] = time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.sleeper = sleeper
        self.clock = clock
        self._heap: list[_Task] = []
        self._keys: set[tuple] = set()
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self.busy = False

    def add(
        self, key: tuple, run: Callable[[], None], *, priority: int, delay: float = 0.0
    ) -> None:
        with self._cond:
            if key in self._keys:
                return
            self._keys.add(key)
            heapq.heappush(
                self._heap, _Task(self.clock() + delay, priority, next(self._seq), key, run)
            )
            self._cond.notify_all()

    def pending(self, kind: str | None = None) -> int:
        with self._cond:
            return sum(1 for k in self._keys if kind is None or k[0] == kind)

    def idle(self) -> bool:
        with self._cond:
            return not self.busy and not any(t.due <= self.clock() for t in self._heap)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stream-rest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _next(self) -> _Task | None:
        with self._cond:
            while not (self._stop or self.sleeper.stopped):
                now = self.clock()
                due = [t for t in self._heap if t.due <= now]
                if due:
                    task = min(due, key=lambda t: (t.priority, t.due, t.seq))
                    self._heap.remove(task)
                    heapq.heapify(self._heap)
                    self._keys.discard(task.key)
                    self.busy = True
                    return task
                wait = min((t.due for t in self._heap), default=now + 0.5) - now
                self._cond.wait(min(0.5, max(0.01, wait)))
            return None

    def _run(self) -> None:
        while (task := self._next()) is not None:
            try:
                task.run()
            except Interrupted:
                return
            except Exception:
                log.exception("stream REST task %s failed", task.key)
            finally:
                with self._cond:
                    self.busy = False


# -- the ingest ------------------------------------------------------------------------------------


@dataclass
class StreamCounters:
    trades: int = 0
    duplicates: int = 0
    filled_rows: int = 0
    absent_ids: int = 0
    klines: int = 0
    depth_events: int = 0
    resyncs: int = 0
    tickers: int = 0
    bad: dict[str, int] = field(default_factory=dict)


@dataclass
class _Retry:
    delay: float = RETRY_FIRST_SECONDS

    def next(self) -> float:
        delay, self.delay = self.delay, min(RETRY_MAX_SECONDS, self.delay * 2)
        return delay


class StreamIngest:
    """Stream mode (see the module docstring). Build it with :func:`build_stream_ingest`;
    :meth:`start`, then run :meth:`jobs` on :meth:`intervals` (the runner's scheduler), then
    :meth:`stop`."""

    def __init__(self, producer: Producer, writer: WriterThread) -> None:
        self.producer = producer
        self.settings = producer.settings
        self.ingest = producer.settings.ingest
        self.exchange = producer.exchange
        self.writer = writer
        self.sleeper = producer.sleeper
        self.worker = RestWorker(self.sleeper)
        self.counters = StreamCounters()
        self.fill_problem = fill_problem(producer.settings.binance.api_url)
        """Set when holes cannot be filled from the REST host: they are left open."""
        self.connections: list[StreamConnection] = []
        self.ranks: dict[str, int] = {}
        self._conn_of: dict[str, StreamConnection] = {}
        self._lock = threading.Lock()
        """Guards the ledgers, books, tickers and counters (the connection threads, the
        worker and the main thread all touch them)."""
        self.ledgers: dict[str, TradeIdLedger] = {}
        self.books: dict[str, LocalBook] = {}
        self._snapshot_wanted: set[str] = set()
        self._book_written: dict[str, datetime] = {}
        self._tickers: dict[str, dict] = {}
        self._kline_seen: dict[tuple[str, int], tuple[bool, float]] = {}
        """(symbol, open time) → (closed, event time) of the newest image written."""
        self._ticker_written: dict[str, int] = {}
        self._price_written: dict[str, int] = {}
        self._retries: dict[tuple, _Retry] = {}
        self._names = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Rank the universe, open its streams and start the REST worker."""
        if self.fill_problem:
            log.warning("%s", self.fill_problem)
        self.worker.start()
        if not self.producer.universe:
            self.producer.refresh_universe(store=False)
        self.apply_universe(self.producer.universe)
        self.worker.add(
            ("universe",),
            self._refresh_universe,
            priority=RestWorker.UNIVERSE,
            delay=self.settings.jobs.ticker_seconds,
        )

    def stop(self) -> None:
        """Close the connections and stop the REST worker (the writer is the caller's)."""
        for conn in self.connections:
            conn.request_stop()
        for conn in self.connections:
            conn.stop()
        self.worker.stop()

    # -- the universe ----------------------------------------------------------------------

    def _refresh_universe(self) -> None:
        try:
            self.producer.refresh_universe(store=False)
            self.apply_universe(self.producer.universe)
        finally:
            self.worker.add(
                ("universe",),
                self._refresh_universe,
                priority=RestWorker.UNIVERSE,
                delay=self.settings.jobs.ticker_seconds,
            )

    def apply_universe(self, ranked: list[Ranked]) -> None:
        """Follow ``ranked``: subscribe the symbols that joined (their trade ids resume
        from Postgres), unsubscribe those that left, keep the ranks for the rows."""
        new = {r.symbol: r.rank for r in ranked}
        joined = [s for s in new if s not in self._conn_of]
        left = [s for s in self._conn_of if s not in new]
        resumed = {s: self._resume(s) for s in joined}
        with self._lock:
            self.ranks = new
            for symbol in joined:
                self.ledgers[symbol] = resumed[symbol]
                self.books[symbol] = LocalBook(symbol)
            for symbol in left:
                for table in (self.ledgers, self.books, self._tickers):
                    table.pop(symbol, None)
                self._snapshot_wanted.discard(symbol)
        for symbol, ledger in resumed.items():
            for hole in ledger.holes if not self.fill_problem else ():
                self._queue_fill(symbol, hole.first)
            last = self.producer.writer.last_closed_kline(symbol, self.settings.jobs.kline_interval)
            if last is not None:
                self._queue_klines(symbol, utc_to_ms(last))
        for symbol in left:
            self._conn_of.pop(symbol).unsubscribe(self._streams(symbol))
        fresh: list[StreamConnection] = []
        for symbol in joined:
            conn = self._connection_with_room(fresh)
            conn.subscribe(self._streams(symbol))
            self._conn_of[symbol] = conn
        for conn in fresh:
            self.connections.append(conn)
            conn.start()
        if joined or left:
            log.info(
                "streams: %d symbols on %d connections (joined %d, left %d): %s",
                len(new),
                len(self.connections),
                len(joined),
                len(left),
                " ".join(f"{c.name}={len(c.streams)}" for c in self.connections if c.streams),
            )

    def _resume(self, symbol: str) -> TradeIdLedger:
        """The ledger of a symbol that joins: from the highest stored id, with the holes
        below it that an earlier run left open (logged)."""
        writer = self.producer.writer
        last = writer.last_trade_id(symbol)
        ledger = TradeIdLedger(last)
        if last is None:
            return ledger
        runs = writer.stored_trade_id_runs(symbol, max(0, last - RESUME_LOOKBACK_IDS), last)
        for (_, end), (start, _) in itertools.pairwise(runs or []):
            hole = Hole(end + 1, start - 1)
            ledger.reopen(hole)
            log.warning(
                "trade gap symbol=%s ids %d..%d (%d) left open by an earlier run: %s",
                symbol,
                hole.first,
                hole.last,
                hole.size,
                "left open (no historicalTrades)" if self.fill_problem else "filling it",
            )
        return ledger

    def _streams(self, symbol: str) -> list[str]:
        return symbol_streams(symbol, self.settings.jobs.kline_interval, self.ingest.depth_speed_ms)

    def _connection_with_room(self, fresh: list[StreamConnection]) -> StreamConnection:
        room = self.ingest.streams_per_connection - STREAMS_PER_SYMBOL
        for conn in [*self.connections, *fresh]:
            if len(conn.streams) <= room:
                return conn
        conn = StreamConnection(
            f"c{next(self._names)}",
            self.ingest.stream_url,
            [],
            self.on_message,
            sleeper=self.sleeper,
            stall_seconds=self.ingest.stall_seconds,
            rollover_seconds=self.ingest.rollover_seconds,
            on_connect=self._reconnected,
        )
        fresh.append(conn)
        return conn

    # -- messages (connection threads) ----------------------------------------------------

    def on_message(self, stream: str, data: Any, received: float) -> None:
        kind = stream_kind(stream)
        try:
            if kind == "trade":
                self._on_trade(data, received)
            elif kind == "kline":
                self._on_kline(data, received)
            elif kind == "depth":
                self._on_depth(data)
            elif kind == "ticker":
                self._on_ticker(data)
        except (BadRecord, KeyError, TypeError) as e:
            self._bad(kind, data, e)

    def _bad(self, kind: str, data: Any, error: Exception) -> None:
        with self._lock:
            count = self.counters.bad[kind] = self.counters.bad.get(kind, 0) + 1
        if count == 1 or count % BAD_LOGGED_EVERY == 0:
            log.warning(
                "bad stream record kind=%s count=%d error=%s record=%.300r",
                kind,
                count,
                error,
                data,
            )

    def _on_trade(self, data: Any, received: float) -> None:
        row = stream_trade_row(data, ingested_at=ms_to_utc(int(received * 1000)))
        symbol = row["symbol"]
        with self._lock:
            ledger = self.ledgers.get(symbol)
            if ledger is None:
                return  # not in the universe (any more)
            new, hole = ledger.accept(row["trade_id"])
            if new:
                self.counters.trades += 1
            else:
                self.counters.duplicates += 1
        if hole is not None:
            self._hole_found(symbol, hole)
        if new:
            self.writer.submit(RECENT_TRADES, [row])

    def _on_kline(self, data: Any, received: float) -> None:
        symbol = data["s"]
        rank = self.ranks.get(symbol)
        if rank is None:
            return
        row = stream_kline_row(data, rank=rank, ingested_at=ms_to_utc(int(received * 1000)))
        image = (row["is_closed"], float(data["E"]))
        key = (symbol, data["k"]["t"])
        with self._lock:
            if not self._newer_kline(key, image):
                return
            self.counters.klines += 1
        self.writer.submit(KLINE_DATA, [row])

    def _newer_kline(self, key: tuple[str, int], image: tuple[bool, float]) -> bool:
        """Remember ``image`` of a candle if it is newer than the last one written: closed
        beats open, then the later event time (with the lock held)."""
        seen = self._kline_seen.get(key)
        if seen is not None and seen >= image:
            return False
        self._kline_seen[key] = image
        if len(self._kline_seen) > KLINES_KEPT_PER_SYMBOL * max(1, len(self.ranks)) * 2:
            for old in sorted(self._kline_seen, key=lambda k: k[1])[: len(self._kline_seen) // 2]:
                del self._kline_seen[old]
        return True

    def _on_depth(self, data: Any) -> None:
        event = DepthUpdate.parse(data)
        symbol = data["s"]
        with self._lock:
            book = self.books.get(symbol)
            if book is None:
                return
            self.counters.depth_events += 1
            before = book.update_id
            outcome = book.on_event(event)
            wanted = outcome in ("buffered", "gap") and symbol not in self._snapshot_wanted
            if wanted:
                self._snapshot_wanted.add(symbol)
            if outcome == "gap":
                self.counters.resyncs += 1
        if outcome == "gap":
            log.warning(
                "order book gap symbol=%s U=%d after update_id=%d: resyncing from a snapshot",
                symbol,
                event.first,
                before,
            )
        if wanted:
            self.worker.add(("snapshot", symbol), lambda: self._snapshot(symbol), priority=0)

    def _on_ticker(self, data: Any) -> None:
        symbol = data["s"]
        with self._lock:
            held = self._tickers.get(symbol)
            if symbol in self.ranks and (held is None or held.get("E", 0) <= data["E"]):
                self._tickers[symbol] = data
                self.counters.tickers += 1

    # -- REST work (the worker thread) ----------------------------------------------------

    def _hole_found(self, symbol: str, hole: Hole) -> None:
        limit = self.ingest.fill_max_ids
        too_big = bool(limit) and hole.size > limit
        fillable = not too_big and not self.fill_problem
        self.producer.count_trade_gap(symbol, hole.gap(), filling=fillable)
        if not fillable and not too_big:
            return  # said once (fill_problem); the hole stays open
        if too_big:
            log.error(
                "trade gap symbol=%s ids %d..%d (%d) is larger than INGEST_FILL_MAX_IDS=%d: "
                "left open; load it with `cap-stock backfill --datasets trades`",
                symbol,
                hole.first,
                hole.last,
                hole.size,
                limit,
            )
            return
        self._queue_fill(symbol, hole.first)

    def _queue_fill(self, symbol: str, first: int, delay: float = 0.0) -> None:
        self.worker.add(
            ("fill", symbol, first),
            lambda: self._fill(symbol, first),
            priority=RestWorker.FILL,
            delay=delay,
        )

    def _fill(self, symbol: str, first: int) -> None:
        """Fetch what is left of the hole that started at ``first``, page by page, into
        the writer; each page marks its ids filled once stored (:meth:`_filled`)."""
        with self._lock:
            ledger = self.ledgers.get(symbol)
            hole = ledger.remaining(first) if ledger else None
        if hole is None:
            return
        cursor = hole.first
        try:
            for page, covered in trade_pages(self.exchange, symbol, hole.first, hole.last):
                now = self.producer._now()
                rows, _ = parse_each(
                    page,
                    lambda t, now=now: trade_row(symbol, t, ingested_at=now),
                    context=f"trade fill {symbol}",
                )
                through = min(covered, hole.last)
                done = partial(self._filled, symbol, first, cursor, through, len(rows))
                self.writer.submit(RECENT_TRADES, rows, on_written=done)
                cursor = covered + 1
        except (RetriesExhausted, Banned, RequestRejected, BadRecord) as e:
            if isinstance(e, RequestRejected) and e.status == 404:
                self._fills_not_served(symbol, cursor)
                return
            delay = self._retry_delay(("fill", symbol, first))
            if isinstance(e, Banned):
                delay = max(delay, e.until - time.time())
            log.warning(
                "trade gap fill symbol=%s from id %d failed (%s): trying again in %.0fs",
                symbol,
                cursor,
                e,
                delay,
            )
            self._queue_fill(symbol, first, delay)

    def _fills_not_served(self, symbol: str, cursor: int) -> None:
        """The host answered a fill with 404: asking again cannot help (the hole stays open,
        and so do later ones), said once."""
        first_time = self.fill_problem is None
        self.fill_problem = fill_problem(self.exchange.settings.api_url, answered_404=True)
        if first_time:
            log.error("trade gap fill symbol=%s from id %d: %s", symbol, cursor, self.fill_problem)

    def _filled(
        self, symbol: str, first: int, start: int, through: int, rows: int, ok: bool
    ) -> None:
        """After the writer stored one page of a fill (in the writer's thread)."""
        if not ok:
            self._queue_fill(symbol, first, self._retry_delay(("fill", symbol, first)))
            return
        absent = max(0, (through - start + 1) - rows)
        with self._lock:
            ledger = self.ledgers.get(symbol)
            if ledger is None:
                return
            closed = ledger.filled(first, start, through)
            self.counters.filled_rows += rows
            self.counters.absent_ids += absent
            if closed:
                self._retries.pop(("fill", symbol, first), None)
        if closed:
            self.producer.count_gap_filled()
            log.info(
                "trade gap filled symbol=%s ids %d..%d%s",
                symbol,
                first,
                through,
                f" ({absent} ids of the last page absent on the exchange)" if absent else "",
            )

    def _reconnected(self, conn: StreamConnection) -> None:
        """After a lost connection came back (its thread): the candles that closed meanwhile
        come from REST (trades and books see their own gaps in the data)."""
        if conn.last_outage is None:
            return
        since_ms = int(conn.last_outage[0] * 1000)
        for symbol in [s for s, c in list(self._conn_of.items()) if c is conn]:
            self._queue_klines(symbol, since_ms)

    def _queue_klines(self, symbol: str, since_ms: int, delay: float = 0.0) -> None:
        self.worker.add(
            ("klines", symbol),
            lambda: self._catch_up_klines(symbol, since_ms),
            priority=RestWorker.FILL,
            delay=delay,
        )

    def _catch_up_klines(self, symbol: str, since_ms: int) -> None:
        """The closed candles from the one open at ``since_ms`` to the last closed now,
        from REST klines (2 weight per 1,000)."""
        interval = self.settings.jobs.kline_interval
        try:
            step = interval_ms(interval)
        except ValueError:
            return  # 3d and 1M candles have no fixed length: the stream's own x=true only
        now_ms = utc_to_ms(self.producer._now())
        last = last_open(interval, now_ms) - step
        first = max(last_open(interval, since_ms), last - (MAX_KLINE_CATCHUP - 1) * step)
        rank = self.ranks.get(symbol)
        if rank is None or last < first:
            return
        try:
            for page, _ in kline_pages(self.exchange, symbol, interval, first, last):
                now = self.producer._now()
                rows, _ = parse_each(
                    page,
                    lambda k, now=now: kline_row(
                        symbol, interval, k, now=now, rank=rank, ingested_at=now
                    ),
                    context=f"kline catch-up {symbol}",
                )
                with self._lock:
                    closed = [
                        r
                        for r in rows
                        if r["is_closed"]
                        and self._newer_kline((symbol, utc_to_ms(r["open_time"])), (True, 1e18))
                    ]
                self.writer.submit(KLINE_DATA, closed)
        except (RetriesExhausted, Banned, RequestRejected, BadRecord) as e:
            delay = self._retry_delay(("klines", symbol))
            log.warning("kline catch-up symbol=%s failed (%s): again in %.0fs", symbol, e, delay)
            self._queue_klines(symbol, since_ms, delay)

    def _retry_delay(self, key: tuple) -> float:
        with self._lock:
            return self._retries.setdefault(key, _Retry()).next()

    def _snapshot(self, symbol: str) -> None:
        """A REST snapshot for a book waiting for one."""
        with self._lock:
            if symbol not in self.books:
                self._snapshot_wanted.discard(symbol)
                return
        limit = self.ingest.book_snapshot_limit
        try:
            raw = self.exchange.order_book(symbol, limit)
            last_update_id = raw["lastUpdateId"]
            bids = book_levels(raw["bids"], "bids")
            asks = book_levels(raw["asks"], "asks")
        except (RetriesExhausted, Banned, RequestRejected, BadRecord, KeyError, TypeError) as e:
            delay = self._retry_delay(("snapshot", symbol))
            log.warning(
                "order book snapshot symbol=%s failed (%s): again in %.0fs", symbol, e, delay
            )
            self.worker.add(
                ("snapshot", symbol), lambda: self._snapshot(symbol), priority=0, delay=delay
            )
            return
        with self._lock:
            book = self.books.get(symbol)
            if book is None:
                self._snapshot_wanted.discard(symbol)
                return
            outcome = book.on_snapshot(last_update_id, bids, asks)
            if outcome == "synced":
                self._snapshot_wanted.discard(symbol)
                self._retries.pop(("snapshot", symbol), None)
                update_id = book.update_id
        if outcome == "synced":
            log.info(
                "order book synced symbol=%s update_id=%d from a %d-level snapshot",
                symbol,
                update_id,
                limit,
            )
        else:
            self.worker.add(
                ("snapshot", symbol),
                lambda: self._snapshot(symbol),
                priority=0,
                delay=SNAPSHOT_AGAIN_SECONDS,
            )

    # -- timed jobs (the main thread) -----------------------------------------------------

    def jobs(self) -> dict[str, Callable[[], object]]:
        """The timed jobs of stream mode by name (the runner schedules them)."""
        return {
            "depth": self.write_books,
            "ticker_24hr": self.write_tickers,
            "prices": self.write_prices,
            "heartbeat": self.producer.heartbeat,
            "retention": self.producer.retention,
            "stream_status": self.log_status,
        }

    def intervals(self) -> dict[str, float]:
        j = self.settings.jobs
        return {
            "depth": j.depth_seconds,
            "ticker_24hr": j.ticker_seconds,
            "prices": j.prices_seconds,
            "heartbeat": j.heartbeat_seconds,
            "retention": j.retention_seconds,
            "stream_status": STATUS_SECONDS,
        }

    def write_books(self) -> int:
        """The top ``JOB_DEPTH_LEVELS`` of every synced book that changed since the last
        snapshot, stamped with its last event time (kept after the previous stamp, so a
        snapshot time never holds two different books). Returns the rows handed over."""
        levels = self.settings.jobs.depth_levels
        now = self.producer._now()
        rows: list[dict] = []
        with self._lock:
            for symbol, book in self.books.items():
                if not book.synced or not book.changed:
                    continue
                update_id, bids, asks = book.top(levels)
                book.changed = False
                stamp = ms_to_utc(book.event_ms) if book.event_ms is not None else now
                previous = self._book_written.get(symbol)
                if previous is not None and stamp <= previous:
                    stamp = previous + timedelta(milliseconds=1)
                self._book_written[symbol] = stamp
                rows += snapshot_rows(
                    symbol, update_id, bids, asks, snapshot_time=stamp, ingested_at=now
                )
        self.writer.submit(ORDER_BOOK, rows)
        return len(rows)

    def write_tickers(self) -> int:
        """The newest ``@ticker`` of every symbol not written yet, with its rank."""
        return self._sample(TOP_24HR, self._ticker_written, self._ticker_row)

    def write_prices(self) -> int:
        """The last price of every symbol's newest ``@ticker``, at its event time."""
        return self._sample(LATEST_PRICES, self._price_written, self._price_row)

    def _ticker_row(self, data: dict, now: datetime) -> dict:
        return stream_ticker_row(data, rank=self.ranks[data["s"]], ingested_at=now)

    def _price_row(self, data: dict, now: datetime) -> dict:
        return stream_price_row(data, ingested_at=now)

    def _sample(self, table, written: dict[str, int], build) -> int:  # type: ignore[no-untyped-def]
        now = self.producer._now()
        with self._lock:
            fresh = [
                data
                for symbol, data in self._tickers.items()
                if written.get(symbol) != data.get("E") and symbol in self.ranks
            ]
            for data in fresh:
                written[data["s"]] = data.get("E")
        rows, bad = parse_each(fresh, lambda d: build(d, now), context=f"stream {table.name}")
        if bad:
            with self._lock:
                self.counters.bad["ticker"] = self.counters.bad.get("ticker", 0) + bad
        self.writer.submit(table, rows)
        return len(rows)

    def log_status(self) -> None:
        """One line: connections, what arrived, gaps, books and the writer."""
        with self._lock:
            c = self.counters
            holes = sum(len(ledger.holes) for ledger in self.ledgers.values())
            missing = sum(ledger.missing for ledger in self.ledgers.values())
            synced = sum(1 for book in self.books.values() if book.synced)
            books = len(self.books)
            text = (
                f"trades={c.trades} duplicates={c.duplicates} filled_rows={c.filled_rows} "
                f"absent={c.absent_ids} gaps_open={holes} ids_open={missing} klines={c.klines} "
                f"depth_events={c.depth_events} books_synced={synced}/{books} "
                f"resyncs={c.resyncs} tickers={c.tickers} bad={sum(c.bad.values())}"
            )
        up = sum(1 for conn in self.connections if conn.connected)
        stats = [conn.stats for conn in self.connections]
        w = self.writer.stats
        log.info(
            "stream status connections=%d/%d reconnects=%d stalls=%d rollovers=%d %s "
            "flushes=%d rows_written=%d pending=%d used_1m=%d",
            up,
            len(self.connections),
            sum(s.reconnects for s in stats),
            sum(s.stalls for s in stats),
            sum(s.rollovers for s in stats),
            text,
            w.flushes,
            w.rows,
            self.writer.pending,
            self.exchange.pacer.used,
        )

    # -- for the heartbeat (producer.streams) ---------------------------------------------

    def open_gaps(self) -> int:
        with self._lock:
            return sum(len(ledger.holes) for ledger in self.ledgers.values())

    def trouble(self) -> ExchangeTrouble | None:
        """The first connection that is down, in the heartbeat's words; None while all are up."""
        troubles = [t for conn in self.connections if (t := conn.trouble()) is not None]
        if not troubles:
            return None
        first = min(troubles, key=lambda t: t.since)
        more = f" (and {len(troubles) - 1} more)" if len(troubles) > 1 else ""
        return ExchangeTrouble(first.text + more, first.since)


def build_stream_ingest(
    producer: Producer,
    *,
    on_flush: Callable[[Any, list[dict], datetime], None] | None = None,
) -> StreamIngest:
    """Stream mode around ``producer``: its writer moves behind a
    :class:`~capstock.ingest.batching.WriterThread` (the jobs reach it through a
    :class:`~capstock.ingest.batching.SerializedWriter`), and the heartbeat reports on the
    streams. Start the returned ingest's writer (``ingest.writer.start()``) and the ingest."""
    inner = producer.writer
    ingest_settings = producer.settings.ingest
    policy = FlushPolicy(ingest_settings.flush_ms / 1000, ingest_settings.flush_rows)
    thread = WriterThread(inner, policy, on_flush=on_flush)
    producer.writer = SerializedWriter(thread, inner)
    ingest = StreamIngest(producer, thread)
    producer.streams = ingest
    return ingest
