"""The producer's jobs: fetch from the exchange, transform, write one batch per job run.

Each job run ends with one log line, for example::

    job=trades symbols=20 rows=1874 changed=1874 bad=0 skipped=0 failed=0 gaps=0
        weight=500 used_1m=812 duration_ms=431

``weight`` is what this run requested, ``used_1m`` the exchange's count for the current
minute (``X-MBX-USED-WEIGHT-1M``), ``changed`` the rows inserted or updated (the rest were
already stored), ``skipped`` symbols the exchange rejected, ``failed`` symbols whose fetch
gave up after retries. ``spooled=N`` is added when Postgres was unreachable and N of the
rows went to the local spool instead (:mod:`capstock.staging.spool`).

A job that is interrupted by a shutdown stops fetching, writes what it already has and
returns: the batch in hand is finished.

While the exchange bans the IP (HTTP 418), the jobs that call it (:data:`EXCHANGE_JOBS`)
return at once without a request and without a job line; the start and the end of the
ban are logged once each. The heartbeat and retention need no exchange and keep running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from capstock.backoff import Interrupted, RetriesExhausted, Sleeper
from capstock.config import Settings
from capstock.exchange.client import (
    Banned,
    ExchangeClient,
    ExchangeTrouble,
    RequestRejected,
    SymbolRejected,
    Unreachable,
)
from capstock.model.tables import (
    HEARTBEAT,
    KLINE_DATA,
    LATEST_PRICES,
    ORDER_BOOK,
    RECENT_TRADES,
    TABLES,
    TOP_24HR,
    Table,
)
from capstock.staging.writer import WriteAbandoned, WriteResult
from capstock.transform.rows import (
    book_rows,
    heartbeat_row,
    kline_row,
    ms_to_utc,
    now_utc,
    parse_each,
    price_row,
    ticker_24hr_row,
    trade_row,
)
from capstock.transform.trade_gaps import Gap, account_trade_ids
from capstock.transform.universe import Ranked, Selection, describe_left_out, select_universe

log = logging.getLogger("capstock.ingest.jobs")

HEARTBEAT_SOURCE = "producer"


@dataclass(frozen=True)
class Job:
    """One job of the producer, declared once in :data:`JOBS`."""

    name: str
    """The name in log lines (``job=klines``)."""
    method: str
    """The :class:`Producer` method that runs it."""
    interval: str
    """The :class:`capstock.config.JobSettings` field with its interval in seconds."""
    writes: Table | None
    """The table it fills (retention only deletes)."""
    calls_exchange: bool = False
    """It calls the exchange, so it is skipped while the exchange bans us."""


JOBS: tuple[Job, ...] = (
    Job("ticker_24hr", "refresh_universe", "ticker_seconds", TOP_24HR, calls_exchange=True),
    Job("klines", "klines", "klines_seconds", KLINE_DATA, calls_exchange=True),
    Job("trades", "trades", "trades_seconds", RECENT_TRADES, calls_exchange=True),
    Job("depth", "depth", "depth_seconds", ORDER_BOOK, calls_exchange=True),
    Job("prices", "prices", "prices_seconds", LATEST_PRICES, calls_exchange=True),
    Job("heartbeat", "heartbeat", "heartbeat_seconds", HEARTBEAT),
    Job("retention", "retention", "retention_seconds", None),
)
"""Every job, in the order one cycle (``cap-stock once``) runs them: the universe first, as
the per-symbol jobs need it. ``cap-stock run`` runs each on its own interval."""

EXCHANGE_JOBS = tuple(job.name for job in JOBS if job.calls_exchange)
"""Jobs that call the exchange, so skip while it bans us."""
WRITTEN_EVERY = {job.writes.name: job.interval for job in JOBS if job.writes is not None}
"""Table name → the JobSettings field of the interval at which its job writes it."""
EXAMPLES = 5
"""Symbols named in a log line about many (the count says how many there are)."""


class Writer(Protocol):
    """What the jobs need from a writer (:class:`capstock.staging.spool.SpoolingWriter`)."""

    def write(self, table: Table, rows: list[dict]) -> WriteResult: ...

    def delete_older_than(self, table: Table, cutoff: datetime, batch: int) -> int: ...

    def last_trade_id(self, symbol: str) -> int | None: ...

    def trade_gaps_total(self, source: str) -> int | None: ...

    def trade_gaps_filled(self, source: str) -> int | None:
        """Only read in stream mode."""
        ...

    def close(self) -> None: ...


class StreamStatus(Protocol):
    """What the heartbeat shows of the streaming ingest (:mod:`capstock.ingest.streaming`)."""

    def open_gaps(self) -> int: ...

    def trouble(self) -> ExchangeTrouble | None: ...


@dataclass
class JobResult:
    job: str
    symbols: int = 0
    rows: int = 0
    changed: int = 0
    bad: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    gaps: int = 0
    weight: int = 0
    used_1m: int = 0
    duration_ms: int = 0
    interrupted: bool = False
    spooled: int = 0
    banned: bool = False
    """The exchange banned us before or during this run (the rest of it was skipped)."""
    crashed: bool = False
    """The job raised instead of returning (logged with the error; not a shutdown)."""

    def line(self) -> str:
        return (
            f"job={self.job} symbols={self.symbols} rows={self.rows} changed={self.changed} "
            f"bad={self.bad} skipped={len(self.skipped)} failed={len(self.failed)} "
            f"gaps={self.gaps} "
            f"weight={self.weight} used_1m={self.used_1m} duration_ms={self.duration_ms}"
            + (f" spooled={self.spooled}" if self.spooled else "")
            + (" interrupted=true" if self.interrupted else "")
            + (" banned=true" if self.banned else "")
        )


class Producer:
    """Holds the universe and per-symbol state (last trade ids, gap counter) between runs.

    The trade-gap total is persistent: the heartbeat stores it in Postgres, and each beat
    writes the stored total plus the gaps this process found since its last stored beat,
    so a restart, or a ``once`` beside a running producer, adds to it. In stream mode
    (:attr:`streams` set) the gaps filled from REST are counted the same way, and the beat
    carries the gaps still open and the streams' trouble. The counters may be added to
    from other threads (:meth:`count_trade_gap`, :meth:`count_gap_filled`).
    """

    def __init__(
        self,
        settings: Settings,
        exchange: ExchangeClient,
        writer: Writer,
        *,
        sleeper: Sleeper,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.exchange = exchange
        self.writer = writer
        self.sleeper = sleeper
        self._clock = clock
        self.universe: list[Ranked] = []
        self.rejected_symbols: set[str] = set()
        self.last_trade_ids: dict[str, int | None] = {}
        self.trade_gaps_stored: int | None = None
        """The total in Postgres when last read or written; None until known."""
        self.trade_gaps_unsaved = 0
        """Gaps this process found that no stored heartbeat includes yet."""
        self.trade_ids_missing_total = 0
        self.trade_gaps_filled_stored: int | None = None
        self.trade_gaps_filled_unsaved = 0
        self.streams: StreamStatus | None = None
        """The streaming ingest, in stream mode (the heartbeat reports on it)."""
        self._counts = threading.Lock()
        self._ban_logged = False
        self._extra_prices_logged = 0
        self._universe_logged = False

    def _now(self):
        return now_utc(self._clock)

    @property
    def trade_gaps_total(self) -> int:
        """Every gap counted so far, by earlier runs (as stored) and by this one."""
        return (self.trade_gaps_stored or 0) + self.trade_gaps_unsaved

    def _read_trade_gaps(self) -> int | None:
        stored = self.writer.trade_gaps_total(HEARTBEAT_SOURCE)
        if stored is not None:
            self.trade_gaps_stored = stored
        return stored

    def exchange_banned(self) -> bool:
        """True while the exchange bans us; logs when a ban starts and when it ends."""
        banned = self.exchange.banned
        if banned and not self._ban_logged:
            until = datetime.fromtimestamp(self.exchange.banned_until, UTC)
            log.warning(
                "exchange ban (HTTP 418) until %s: skipping %s until then; "
                "heartbeat and retention keep running",
                until.isoformat(timespec="seconds"),
                " ".join(EXCHANGE_JOBS),
            )
        elif not banned and self._ban_logged:
            log.info("exchange ban over: %s resume", " ".join(EXCHANGE_JOBS))
        self._ban_logged = banned
        return banned

    # -- helpers ---------------------------------------------------------------------------

    def _finish(self, result: JobResult, started: float, weight0: int) -> JobResult:
        result.weight = self.exchange.stats.weight_requested - weight0
        result.used_1m = self.exchange.pacer.used
        result.duration_ms = int((time.monotonic() - started) * 1000)
        log.info(result.line())
        return result

    def _write(self, result: JobResult, table: Table, rows: list[dict]) -> None:
        written = self.writer.write(table, rows)
        result.rows += written.rows
        result.changed += written.changed
        result.spooled += written.spooled

    def _per_symbol(
        self, job: str, table: Table, fetch: Callable[[Ranked, JobResult], list[dict]]
    ) -> JobResult:
        if self.exchange_banned():
            return JobResult(job, banned=True)
        started, weight0 = time.monotonic(), self.exchange.stats.weight_requested
        result = JobResult(job)
        if not self.universe:
            self.refresh_universe()
        if not self.universe:
            # Nothing to fetch is a failure, not "symbols=0 failed=0": the ranking itself
            # could not be read (its own line says why).
            log.error("job=%s skipped: no universe yet (the ranking could not be read)", job)
            result.failed.append("*")
            return self._finish(result, started, weight0)
        rows: list[dict] = []
        for ranked in self.universe:
            if self.sleeper.stopped:
                result.interrupted = True
                break
            try:
                rows.extend(fetch(ranked, result))
                result.symbols += 1
            except SymbolRejected as e:
                log.warning(
                    "skipping symbol=%s job=%s status=%s code=%s msg=%r",
                    e.symbol,
                    job,
                    e.status,
                    e.code,
                    e.msg,
                )
                result.skipped.append(e.symbol)
            except Unreachable:
                result.failed.append("*")  # logged once by the client, per outage
                break
            except RetriesExhausted as e:
                log.error("fetch failed symbol=%s job=%s error=%s", ranked.symbol, job, e)
                result.failed.append(ranked.symbol)
            except Interrupted:
                result.interrupted = True
                break
            except Banned:
                result.banned = self.exchange_banned()
                break
        self._write(result, table, rows)
        return self._finish(result, started, weight0)

    # -- universe + 24h statistics ----------------------------------------------------------

    def refresh_universe(self, *, store: bool = True) -> JobResult:
        """Rank the universe from ticker/24hr and store the ranked tickers in ``top_24hr``
        (not with ``store=False``: in stream mode the ``@ticker`` streams fill it).

        Top-N mode makes one unparameterised call (weight 80) that serves both the ranking
        and the statistics. Explicit mode asks for the listed symbols only; if the exchange
        rejects the list (-1121 for any unknown symbol), each symbol is asked for alone and
        the rejected ones are skipped from then on.
        """
        if self.exchange_banned():
            return JobResult("ticker_24hr", banned=True)
        started, weight0 = time.monotonic(), self.exchange.stats.weight_requested
        result = JobResult("ticker_24hr")
        u = self.settings.universe
        try:
            tickers = self._explicit_tickers(result) if u.symbols else self.exchange.ticker_24hr()
        except Unreachable:  # the client logs each outage once
            result.failed.append("*")
            return self._finish(result, started, weight0)
        except (RetriesExhausted, RequestRejected) as e:
            log.error("universe refresh failed, keeping %d symbols: %s", len(self.universe), e)
            result.failed.append("*")
            return self._finish(result, started, weight0)
        except Interrupted:
            result.interrupted = True
            return self._finish(result, started, weight0)
        except Banned:
            result.banned = self.exchange_banned()
            return self._finish(result, started, weight0)
        selection = select_universe(
            tickers,
            size=u.size,
            rank_by=u.rank_by,
            quote_asset=u.quote_asset,
            min_quote_volume=u.min_quote_volume,
            symbols=[s for s in u.symbols if s not in self.rejected_symbols],
        )
        ranked = selection.ranked
        if ranked or not self.universe:
            self._log_universe(selection)
            self.universe = ranked
        result.symbols = len(ranked)
        if store:
            ingested_at = self._now()
            rows, result.bad = parse_each(
                ranked,
                lambda r: ticker_24hr_row(r.ticker, rank=r.rank, ingested_at=ingested_at),
                context="ticker_24hr",
            )
            self._write(result, TOP_24HR, rows)
        return self._finish(result, started, weight0)

    def _log_universe(self, selection: Selection) -> None:
        """One line when the universe is first ranked and whenever its members change:
        who is in, who joined or dropped, and which symbols were left out and why, e.g.::

            universe: 19 of UNIVERSE_SIZE=20 symbols by quote_volume: BTCUSDT ETHUSDT ...;
            left out: 1 under UNIVERSE_MIN_QUOTE_VOLUME=1000000 (PEPEUSDT=591710.26457726),
            2 not quoted in USDT (BNBBTC, ETHBTC)

        (one line in the log). A warning when nothing is left in the universe."""
        new = [r.symbol for r in selection.ranked]
        old = [r.symbol for r in self.universe]
        if self._universe_logged and set(new) == set(old):
            return
        left_out = dict(selection.left_out)
        if self.rejected_symbols:
            left_out["rejected by the exchange"] = [
                (s, None) for s in sorted(self.rejected_symbols)
            ]
        u = self.settings.universe
        wanted = (
            f"UNIVERSE_SIZE={u.size}" if not u.symbols else f"{len(u.symbols)} UNIVERSE_SYMBOLS"
        )
        if self._universe_logged:
            joined = [s for s in new if s not in old]
            dropped = [s for s in old if s not in new]
            change = f"joined: {' '.join(joined) or '-'}; dropped: {' '.join(dropped) or '-'}"
        else:
            change = " ".join(new) or "-"
        log.log(
            logging.INFO if new else logging.WARNING,
            "universe: %d of %s symbols by %s: %s; left out: %s",
            len(new),
            wanted,
            u.rank_by,
            change,
            describe_left_out(left_out, EXAMPLES),
        )
        self._universe_logged = True

    def _explicit_tickers(self, result: JobResult) -> list[dict]:
        wanted = [s for s in self.settings.universe.symbols if s not in self.rejected_symbols]
        if not wanted:
            return []
        try:
            return self.exchange.ticker_24hr(wanted)
        except RequestRejected as e:
            log.warning(
                "symbol list rejected (code=%s %s); asking one symbol at a time", e.code, e.msg
            )
        tickers = []
        for symbol in wanted:
            try:
                tickers.append(self.exchange.ticker_24hr_one(symbol))
            except SymbolRejected as e:
                log.warning(
                    "skipping symbol=%s job=ticker_24hr status=%s code=%s msg=%r",
                    symbol,
                    e.status,
                    e.code,
                    e.msg,
                )
                self.rejected_symbols.add(symbol)
                result.skipped.append(symbol)
        return tickers

    # -- per-symbol jobs --------------------------------------------------------------------

    def klines(self) -> JobResult:
        j = self.settings.jobs

        def fetch(r: Ranked, result: JobResult) -> list[dict]:
            raw = self.exchange.klines(r.symbol, j.kline_interval, j.kline_limit)
            now = self._now()
            rows, bad = parse_each(
                raw,
                lambda k: kline_row(
                    r.symbol, j.kline_interval, k, now=now, rank=r.rank, ingested_at=now
                ),
                context=f"klines {r.symbol}",
            )
            result.bad += bad
            return rows

        return self._per_symbol("klines", KLINE_DATA, fetch)

    def trades(self) -> JobResult:
        """Recent trades, keeping only ids above the last one seen; gaps are counted.

        A gap is a missing run of ids between the last id already stored and the first new
        one (the exchange had more trades between two polls than ``JOB_TRADES_LIMIT``), or
        inside one response. Each gap adds 1 to ``trade_gaps_total`` (stored by the
        heartbeat, see the class docstring) and is logged with the number of ids missing.
        """
        pending: dict[str, int] = {}

        def fetch(r: Ranked, result: JobResult) -> list[dict]:
            raw = self.exchange.recent_trades(r.symbol, self.settings.jobs.trades_limit)
            now = self._now()
            rows, bad = parse_each(
                raw,
                lambda t: trade_row(r.symbol, t, ingested_at=now),
                context=f"trades {r.symbol}",
            )
            result.bad += bad
            ids = account_trade_ids(
                self._last_trade_id(r.symbol), (row["trade_id"] for row in rows)
            )
            self._count_gaps(r.symbol, ids.gaps, result)
            if ids.new:
                pending[r.symbol] = ids.new[-1]
            by_id = {row["trade_id"]: row for row in rows}
            return [by_id[trade_id] for trade_id in ids.new]

        result = self._per_symbol("trades", RECENT_TRADES, fetch)
        self.last_trade_ids.update(pending)
        return result

    def _last_trade_id(self, symbol: str) -> int | None:
        """The highest trade id stored for ``symbol``: remembered, else read from Postgres
        once (so gap detection resumes after a restart)."""
        if symbol not in self.last_trade_ids:
            self.last_trade_ids[symbol] = self.writer.last_trade_id(symbol)
        return self.last_trade_ids[symbol]

    def _count_gaps(self, symbol: str, gaps: tuple[Gap, ...], result: JobResult) -> None:
        """Add ``gaps`` to the run's and the persistent counters, one log line each."""
        for gap in gaps:
            result.gaps += 1
            if self.trade_gaps_stored is None:
                self._read_trade_gaps()
            self.count_trade_gap(symbol, gap)

    def count_trade_gap(self, symbol: str, gap: Gap, *, filling: bool = False) -> None:
        """Count one gap in the persistent total (any thread), with its log line."""
        with self._counts:
            self.trade_gaps_unsaved += 1
            self.trade_ids_missing_total += gap.missing
            total = self.trade_gaps_total
        log.warning(
            "trade gap symbol=%s last_seen=%d next=%d missing=%d gaps_total=%d%s",
            symbol,
            gap.last_seen,
            gap.next,
            gap.missing,
            total,
            " (filling from REST)" if filling else "",
        )

    def count_gap_filled(self) -> None:
        """Count one gap filled from REST in the persistent total (any thread)."""
        with self._counts:
            self.trade_gaps_filled_unsaved += 1

    def depth(self) -> JobResult:
        levels = self.settings.jobs.depth_levels

        def fetch(r: Ranked, result: JobResult) -> list[dict]:
            raw = self.exchange.order_book(r.symbol, levels)
            snapshot_time = self._now()
            rows, bad = parse_each(
                [raw],
                lambda b: book_rows(
                    r.symbol,
                    b,
                    snapshot_time=snapshot_time,
                    levels=levels,
                    ingested_at=snapshot_time,
                ),
                context=f"depth {r.symbol}",
            )
            result.bad += bad
            return [row for book in rows for row in book]

        return self._per_symbol("depth", ORDER_BOOK, fetch)

    # -- one-call jobs ----------------------------------------------------------------------

    def prices(self) -> JobResult:
        """Latest prices for the whole universe in one ``symbols`` call (weight 4).

        Only the universe is stored. An exchange that ignores the ``symbols`` filter
        answers for every pair it lists (thousands on Binance); the extra entries are
        dropped, and their number is logged when it changes, not on every run.
        """
        if self.exchange_banned():
            return JobResult("prices", banned=True)
        started, weight0 = time.monotonic(), self.exchange.stats.weight_requested
        result = JobResult("prices")
        if not self.universe:
            self.refresh_universe()
        symbols = [r.symbol for r in self.universe]
        raw: list[dict[str, Any]] = []
        if symbols:
            try:
                raw = self.exchange.ticker_price(symbols)
            except Unreachable:  # the client logs each outage once
                result.failed.append("*")
            except (RetriesExhausted, RequestRejected) as e:
                log.error("prices fetch failed: %s", e)
                result.failed.append("*")
            except Interrupted:
                result.interrupted = True
            except Banned:
                result.banned = self.exchange_banned()
        raw = self._universe_prices(raw, set(symbols))
        ts = self._now()
        rows, result.bad = parse_each(
            raw, lambda p: price_row(p, ts=ts, ingested_at=ts), context="prices"
        )
        result.symbols = len(rows)
        self._write(result, LATEST_PRICES, rows)
        return self._finish(result, started, weight0)

    def _universe_prices(self, raw: list[Any], universe: set[str]) -> list[Any]:
        """``raw`` without the entries of symbols outside ``universe`` (malformed entries
        stay, for :func:`parse_each` to count)."""
        kept, extra = [], []
        for entry in raw:
            symbol = entry.get("symbol") if isinstance(entry, dict) else None
            if isinstance(symbol, str) and symbol not in universe:
                extra.append(symbol)
            else:
                kept.append(entry)
        if len(extra) != self._extra_prices_logged:
            if extra:
                log.warning(
                    "prices: the exchange ignored the symbols filter and returned %d symbols "
                    "outside the universe (e.g. %s); only the %d universe symbols are stored "
                    "(logged again when that number changes)",
                    len(extra),
                    ", ".join(sorted(extra)[:EXAMPLES]),
                    len(universe),
                )
            elif self._extra_prices_logged:
                log.info("prices: the exchange applies the symbols filter again")
            self._extra_prices_logged = len(extra)
        return kept

    def heartbeat(self) -> JobResult:
        """The producer's heartbeat row, with the persistent trade-gap total: the stored
        one read again (another run may have added to it) plus this process's unsaved
        gaps. While Postgres is unreachable the total is unknown and the row carries NULL,
        which keeps the stored value (``keep_when_null``); the unsaved gaps are added by
        the first beat that reaches Postgres. In stream mode the filled gaps are kept the
        same way, the open ones are counted now, and a stream that is down is an
        ``exchange_error`` as a ban or an unreachable REST API is."""
        started, weight0 = time.monotonic(), self.exchange.stats.weight_requested
        result = JobResult("heartbeat")
        streams = self.streams
        with self._counts:
            unsaved, filled_unsaved = self.trade_gaps_unsaved, self.trade_gaps_filled_unsaved
        stored = self._read_trade_gaps()
        total = None if stored is None else stored + unsaved
        filled = None
        if streams is not None:
            filled_stored = self.writer.trade_gaps_filled(HEARTBEAT_SOURCE)
            filled = None if filled_stored is None else filled_stored + filled_unsaved
        now = self._now()
        trouble = self.exchange.trouble() or (streams.trouble() if streams else None)
        row = heartbeat_row(
            HEARTBEAT_SOURCE,
            beat_time=now,
            weight_used_1m=self.exchange.pacer.used,
            trade_gaps_total=total,
            ingested_at=now,
            exchange_error=trouble.text if trouble else None,
            exchange_error_since=ms_to_utc(int(trouble.since * 1000)) if trouble else None,
            trade_gaps_filled=filled,
            trade_gaps_open=streams.open_gaps() if streams else None,
            ingest_mode="stream" if streams else "rest",
        )
        self._write(result, HEARTBEAT, [row])
        if not result.spooled:
            with self._counts:
                if total is not None:
                    self.trade_gaps_stored = total
                    self.trade_gaps_unsaved -= unsaved
                if filled is not None:
                    self.trade_gaps_filled_stored = filled
                    self.trade_gaps_filled_unsaved -= filled_unsaved
        return self._finish(result, started, weight0)

    def retention(self) -> JobResult:
        """Delete Postgres rows older than JOB_RETENTION_HOURS (Postgres is staging only;
        the sink ignores deletes, so Cassandra keeps every row)."""
        started, weight0 = time.monotonic(), self.exchange.stats.weight_requested
        result = JobResult("retention")
        hours = self.settings.jobs.retention_hours
        if hours > 0:
            cutoff = self._now() - timedelta(hours=hours)
            for table in TABLES.values():
                if table.pruned:
                    result.rows += self.writer.delete_older_than(
                        table, cutoff, self.settings.jobs.retention_batch
                    )
        return self._finish(result, started, weight0)

    # -- cycles ----------------------------------------------------------------------------

    def jobs(self) -> dict[str, Callable[[], JobResult]]:
        """Every job by name, in the order one cycle runs them (:data:`JOBS`)."""
        return {job.name: getattr(self, job.method) for job in JOBS}

    def intervals(self) -> dict[str, float]:
        """Every job's interval in seconds, by name, from the settings (:data:`JOBS`)."""
        return {job.name: getattr(self.settings.jobs, job.interval) for job in JOBS}

    def once(self) -> list[JobResult]:
        """One full cycle: every job once, universe first (``cap-stock once``).

        A job that raises is logged with its traceback and counted as ``crashed``; the cycle
        goes on with the next job. A shutdown (:class:`Interrupted`, or a batch abandoned
        at shutdown) ends the cycle after a line saying which job it stopped.
        """
        results = []
        for name, job in self.jobs().items():
            if self.sleeper.stopped:
                break
            try:
                results.append(job())
            except (Interrupted, WriteAbandoned) as e:
                log.warning("job=%s stopped: %s", name, e)
                crashed = not self.sleeper.stopped
                results.append(JobResult(name, interrupted=True, crashed=crashed))
                break
            except Exception:
                log.exception("job=%s failed", name)
                results.append(JobResult(name, crashed=True))
        return results
