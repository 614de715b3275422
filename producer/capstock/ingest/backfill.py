"""History on demand: candles and trades of a past time range, written like the live rows.

``cap-stock backfill`` (:mod:`capstock.ingest.backfill_cli`) builds a :class:`Backfill` and
runs it for some symbols, datasets and a time range. It writes through the same writer as
the jobs (Postgres, then Debezium and the sink into Cassandra), with the same row builders
and conflict policies.

What it guarantees:

* **Idempotent.** Rows are keyed as the tables declare (a candle by symbol, interval and
  open time; a trade by symbol and trade id), so writing one twice stores it once.
* **Resumable.** What to fetch is worked out from what Postgres already holds (the runs of
  stored closed candles and of stored trade ids, one query per symbol), not from a state
  file: whatever wrote the rows (an earlier backfill, interrupted or not, or the live jobs),
  only the holes are asked for, so a second run after an interruption continues where the
  first stopped, and a second run after a complete one sends no page request. Postgres is
  the truth a state file could drift from (a reset database, rows from another process),
  and pages are written one transaction each, so nothing is half-written. The price: the
  producer's retention job deletes rows ingested over ``JOB_RETENTION_HOURS`` ago from
  Postgres (Cassandra keeps them), and a re-run after that fetches them again, which costs
  weight but changes nothing (the same values again).
* **Within the weight budget.** Every request goes through the
  :class:`~capstock.exchange.client.ExchangeClient`: its pacer spreads the budget
  (``BINANCE_WEIGHT_SHARE`` of ``BINANCE_WEIGHT_LIMIT``), a 429 waits ``Retry-After``,
  a 418 stops the run.
* **Stops cleanly.** After SIGINT/SIGTERM the page in hand is written and the run ends;
  waiting for weight is cut short.

Datasets (:data:`DATASETS`):

* ``klines``: ``GET /api/v3/klines`` by ``startTime``/``endTime``, 1,000 candles a page
  (weight 2), for one interval. The candle still open at ``--until`` is stored open and
  fetched again by the next run, like any candle not yet closed.
* ``trades``: every trade of the range into ``recent_trades``. Binance cannot page
  ``/trades`` by time, so the range's first and last trade ids are found with ``aggTrades``
  (its ``f``/``l`` are trade ids; the aggregate trades are not stored) and the ids are
  fetched with ``GET /api/v3/historicalTrades`` by ``fromId``, 1,000 a page (weight 25):
  the rows are exactly those ``/trades`` gives, same ids and columns. That endpoint is
  not on ``data-api.binance.vision`` (it answers 404 there).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TextIO

from capstock.backoff import Interrupted, RetriesExhausted, Sleeper
from capstock.commands import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from capstock.config import UniverseSettings
from capstock.exchange.client import (
    Banned,
    ExchangeClient,
    RequestRejected,
    SymbolRejected,
    Unreachable,
)
from capstock.ingest.paging import (
    first_open,
    interval_ms,
    kline_pages,
    last_open,
    missing_ranges,
    trade_id_range,
    trade_pages,
)
from capstock.model.tables import KLINE_DATA, RECENT_TRADES, Table
from capstock.staging.writer import DatabaseUnavailable, WriteResult
from capstock.transform.rows import (
    BadRecord,
    kline_row,
    ms_to_utc,
    now_utc,
    parse_each,
    trade_row,
    utc_to_ms,
)
from capstock.transform.universe import select_universe

log = logging.getLogger("capstock.ingest.backfill")

DATASETS: dict[str, Table] = {"klines": KLINE_DATA, "trades": RECENT_TRADES}
"""Dataset name (``--datasets``) → the table it fills."""
UNITS = {"klines": "kline", "trades": "trade"}


class Writer(Protocol):
    """What a backfill needs from a writer (:class:`capstock.staging.writer.PostgresWriter`)."""

    def write(self, table: Table, rows: list[dict]) -> WriteResult: ...

    def stored_kline_runs(
        self, symbol: str, interval: str, first: datetime, last: datetime, step: timedelta
    ) -> list[tuple[datetime, datetime]]: ...

    def stored_trade_id_runs(
        self, symbol: str, first_id: int, last_id: int
    ) -> list[tuple[int, int]]: ...

    def close(self) -> None: ...


class Progress(Protocol):
    """A progress bar: tqdm's interface, as far as a backfill uses it."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...

    def close(self) -> Any: ...


ProgressFactory = Callable[[str, int, str], Progress]
"""(description, total, unit) → a bar."""


def tqdm_progress(stream: TextIO | None = None, *, disable: bool = False) -> ProgressFactory:
    """Bars on ``stream`` (stderr): done/total, rate and ETA, e.g.
    ``klines: 45%|████▌     | 13.0k/28.8k [00:08<00:10, 1.52kkline/s, ETHUSDT weight=46]``."""
    from tqdm import tqdm

    def make(desc: str, total: int, unit: str) -> Progress:
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=total >= 10_000,
            file=stream or sys.stderr,
            disable=disable,
            dynamic_ncols=True,
            mininterval=0.2,
            smoothing=0.05,
        )

    return make


class NotServed(Exception):
    """The exchange does not serve an endpoint a dataset needs (a usage error)."""


class SymbolsRejected(Exception):
    """Symbols the exchange does not know; ``str()`` names them and the exchange's words."""

    def __init__(self, rejected: dict[str, str]) -> None:
        named = ", ".join(f"{s} ({why})" for s, why in rejected.items())
        super().__init__(f"the exchange rejected {len(rejected)} symbol(s): {named}")
        self.rejected = rejected


@dataclass(frozen=True)
class Target:
    """One symbol to backfill, with its rank in the universe (stored in ``kline_data``)."""

    symbol: str
    rank: int | None = None


@dataclass(frozen=True)
class Span:
    """One run of missing candles (open times) or trade ids of a symbol, both ends in."""

    symbol: str
    rank: int | None
    first: int
    last: int
    units: int


@dataclass
class DatasetRun:
    """What backfilling one dataset did: one log line (:meth:`line`) and the exit status."""

    dataset: str
    symbols: int = 0
    wanted: int = 0
    """Candles or trade ids the range holds, for the symbols planned."""
    stored: int = 0
    """Of those, already in Postgres before the run (not fetched)."""
    missing: int = 0
    covered: int = 0
    """Of the missing ones, how many pages have answered (fetched, or absent there)."""
    rows: int = 0
    changed: int = 0
    bad: int = 0
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    weight: int = 0
    used_1m: int = 0
    duration_ms: int = 0

    @property
    def absent(self) -> int:
        """Candles or ids asked for that the exchange does not have."""
        return max(0, self.covered - self.rows - self.bad)

    def line(self) -> str:
        return (
            f"backfill dataset={self.dataset} symbols={self.symbols} wanted={self.wanted} "
            f"stored={self.stored} missing={self.missing} fetched={self.covered} "
            f"rows={self.rows} changed={self.changed} absent={self.absent} bad={self.bad} "
            f"skipped={len(self.skipped)} failed={len(self.failed)} weight={self.weight} "
            f"used_1m={self.used_1m} duration_ms={self.duration_ms}"
        )


@dataclass
class Outcome:
    """Every dataset's run, and why the whole run stopped early (None: it did not)."""

    runs: list[DatasetRun] = field(default_factory=list)
    stopped: str | None = None
    interrupted: bool = False
    usage_error: str | None = None

    @property
    def status(self) -> int:
        if self.usage_error is not None:
            return EXIT_CONFIG
        if self.stopped is not None or any(r.failed or r.skipped for r in self.runs):
            return EXIT_FAILED
        return EXIT_OK


class Backfill:
    """Fills ``klines`` and ``trades`` for a time range (see the module docstring)."""

    def __init__(
        self,
        exchange: ExchangeClient,
        writer: Writer,
        *,
        sleeper: Sleeper,
        progress: ProgressFactory | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.exchange = exchange
        self.writer = writer
        self.sleeper = sleeper
        self.progress = progress or tqdm_progress()
        self._clock = clock

    def _now(self) -> datetime:
        return now_utc(self._clock)

    def _check_stop(self) -> None:
        if self.sleeper.stopped:
            raise Interrupted()

    # -- the whole run ----------------------------------------------------------------------

    def run(
        self,
        targets: Sequence[Target],
        datasets: Sequence[str],
        start_ms: int,
        end_ms: int,
        interval: str,
    ) -> Outcome:
        """Backfill each dataset in turn, ``start_ms`` to ``end_ms`` (both included)."""
        outcome = Outcome()
        for dataset in datasets:
            if dataset not in DATASETS:
                raise ValueError(f"unknown dataset {dataset!r}")
            result = DatasetRun(dataset)
            outcome.runs.append(result)
            started, weight0 = time.monotonic(), self.exchange.stats.weight_requested
            try:
                if dataset == "klines":
                    spans = self._plan_klines(targets, start_ms, end_ms, interval, result)
                else:
                    spans = self._plan_trades(targets, start_ms, end_ms, result)
                self._fetch(dataset, spans, interval, result)
            except Interrupted:
                outcome.interrupted = True
                outcome.stopped = "interrupted"
            except Banned as e:
                outcome.stopped = f"the exchange bans this IP: {e}"
            except Unreachable as e:
                outcome.stopped = f"the exchange does not answer: {e.cause}"
            except DatabaseUnavailable as e:
                outcome.stopped = f"Postgres is unavailable: {e}"
            except NotServed as e:
                outcome.usage_error = str(e)
            finally:
                result.weight = self.exchange.stats.weight_requested - weight0
                result.used_1m = self.exchange.pacer.used
                result.duration_ms = int((time.monotonic() - started) * 1000)
                log.info(result.line())
            if outcome.stopped is not None or outcome.usage_error is not None:
                break
        return outcome

    def _guarded(self, result: DatasetRun, symbol: str, work: Callable[[], None]) -> bool:
        """Run ``work`` for one symbol; True if it went through. A symbol the exchange
        rejects or whose requests keep failing is noted in ``result``, not fatal."""
        self._check_stop()
        try:
            work()
            return True
        except Unreachable:
            raise
        except SymbolRejected as e:
            if e.status == 404:
                raise NotServed(_not_served(self.exchange, e.path)) from e
            log.warning(
                "backfill: skipping symbol=%s dataset=%s code=%s msg=%r",
                symbol,
                result.dataset,
                e.code,
                e.msg,
            )
            result.skipped.append(symbol)
        except (RetriesExhausted, RequestRejected, BadRecord) as e:
            log.error("backfill: symbol=%s dataset=%s failed: %s", symbol, result.dataset, e)
            result.failed.append(symbol)
        return False

    # -- planning: what Postgres lacks ------------------------------------------------------

    def _plan_klines(
        self,
        targets: Sequence[Target],
        start_ms: int,
        end_ms: int,
        interval: str,
        result: DatasetRun,
    ) -> list[Span]:
        step = interval_ms(interval)
        first, last = first_open(interval, start_ms), last_open(interval, end_ms)
        spans: list[Span] = []
        if first > last:
            return spans
        count = (last - first) // step + 1

        def plan(target: Target) -> None:
            runs = self.writer.stored_kline_runs(
                target.symbol,
                interval,
                ms_to_utc(first),
                ms_to_utc(last),
                timedelta(milliseconds=step),
            )
            stored = [(utc_to_ms(a), utc_to_ms(b)) for a, b in runs]
            holes = missing_ranges(first, last, stored, step)
            spans.extend(
                Span(target.symbol, target.rank, a, b, (b - a) // step + 1) for a, b in holes
            )
            missing = sum((b - a) // step + 1 for a, b in holes)
            result.wanted += count
            result.stored += count - missing
            result.missing += missing

        for target in targets:
            if self._guarded(result, target.symbol, lambda t=target: plan(t)):
                result.symbols += 1
        self._log_plan(result, start_ms, end_ms, f" interval={interval}")
        return spans

    def _plan_trades(
        self, targets: Sequence[Target], start_ms: int, end_ms: int, result: DatasetRun
    ) -> list[Span]:
        spans: list[Span] = []

        def plan(target: Target) -> None:
            ids = trade_id_range(self.exchange, target.symbol, start_ms, end_ms)
            if ids is None:
                return
            first, last = ids
            stored = self.writer.stored_trade_id_runs(target.symbol, first, last)
            holes = missing_ranges(first, last, stored)
            spans.extend(Span(target.symbol, None, a, b, b - a + 1) for a, b in holes)
            missing = sum(b - a + 1 for a, b in holes)
            result.wanted += last - first + 1
            result.stored += last - first + 1 - missing
            result.missing += missing

        for target in targets:
            if self._guarded(result, target.symbol, lambda t=target: plan(t)):
                result.symbols += 1
        self._log_plan(result, start_ms, end_ms, "")
        return spans

    def _log_plan(self, result: DatasetRun, start_ms: int, end_ms: int, extra: str) -> None:
        unit = UNITS[result.dataset]
        log.info(
            "backfill %s from %s to %s%s: %d symbols, %d %ss in range, %d stored, %d to fetch",
            result.dataset,
            _iso(start_ms),
            _iso(end_ms),
            extra,
            result.symbols,
            result.wanted,
            unit,
            result.stored,
            result.missing,
        )

    # -- fetching the holes -----------------------------------------------------------------

    def _fetch(self, dataset: str, spans: list[Span], interval: str, result: DatasetRun) -> None:
        bar = self.progress(dataset, result.missing, UNITS[dataset])
        try:
            for span in spans:
                if span.symbol not in result.failed and span.symbol not in result.skipped:
                    self._guarded(
                        result,
                        span.symbol,
                        lambda s=span: self._fetch_span(dataset, s, interval, result, bar),
                    )
        finally:
            bar.close()

    def _fetch_span(
        self, dataset: str, span: Span, interval: str, result: DatasetRun, bar: Progress
    ) -> None:
        if dataset == "klines":
            step = interval_ms(interval)
            pages = kline_pages(self.exchange, span.symbol, interval, span.first, span.last)
        else:
            step = 1
            pages = trade_pages(self.exchange, span.symbol, span.first, span.last)
        cursor = span.first
        for page, covered in pages:
            rows, bad = self._rows(dataset, span, interval, page)
            written = self.writer.write(DATASETS[dataset], rows)
            units = (covered - cursor) // step + 1
            cursor = covered + step
            result.rows += written.rows
            result.changed += written.changed
            result.bad += bad
            result.covered += units
            bar.update(units)
            bar.set_postfix_str(
                f"{span.symbol} weight={self.exchange.stats.weight_requested}", refresh=False
            )
            self._check_stop()

    def _rows(self, dataset: str, span: Span, interval: str, page: list) -> tuple[list, int]:
        """A page's rows, built as the live jobs build them, and how many records were bad."""
        now = self._now()
        if dataset == "klines":
            return parse_each(
                page,
                lambda k: kline_row(
                    span.symbol, interval, k, now=now, rank=span.rank, ingested_at=now
                ),
                context=f"backfill klines {span.symbol}",
            )
        return parse_each(
            page,
            lambda t: trade_row(span.symbol, t, ingested_at=now),
            context=f"backfill trades {span.symbol}",
        )


def _iso(ms: int) -> str:
    return ms_to_utc(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


def _not_served(exchange: ExchangeClient, path: str) -> str:
    return (
        f"{exchange.settings.api_url} does not serve /api/v3/{path} (HTTP 404); the trades "
        "backfill needs it: set BINANCE_API_URL=https://api.binance.com/api (or the simulator)"
    )


# -- which symbols ----------------------------------------------------------------------------


def resolve_targets(
    exchange: ExchangeClient, universe: UniverseSettings, symbols: Sequence[str] = ()
) -> list[Target]:
    """The symbols to backfill, ranked as the live jobs rank them.

    ``symbols`` (``--symbols``), else ``UNIVERSE_SYMBOLS``: exactly those, and every one the
    exchange does not know raises :class:`SymbolsRejected` (the ranking's ticker/24hr call
    tells, then one call per symbol names them). Else the top ``UNIVERSE_SIZE`` of
    ``UNIVERSE_QUOTE_ASSET`` by ``UNIVERSE_RANK_BY`` (one ticker/24hr call, weight 80).
    """
    wanted = list(dict.fromkeys(symbols or universe.symbols))
    if not wanted:
        selection = select_universe(
            exchange.ticker_24hr(),
            size=universe.size,
            rank_by=universe.rank_by,
            quote_asset=universe.quote_asset,
            min_quote_volume=universe.min_quote_volume,
        )
        return [Target(r.symbol, r.rank) for r in selection.ranked]
    try:
        tickers = exchange.ticker_24hr(wanted)
    except RequestRejected:
        tickers, rejected = [], {}
        for symbol in wanted:
            try:
                tickers.append(exchange.ticker_24hr_one(symbol))
            except SymbolRejected as e:
                rejected[symbol] = f"code {e.code}: {e.msg}"
        if rejected:
            raise SymbolsRejected(rejected) from None
    selection = select_universe(
        tickers,
        size=len(wanted),
        rank_by=universe.rank_by,
        min_quote_volume=Decimal(0),
        symbols=wanted,
    )
    ranks = {r.symbol: r.rank for r in selection.ranked}
    unlisted = [s for s in wanted if s not in ranks]
    if unlisted:
        raise SymbolsRejected({s: "not in its ticker/24hr answer" for s in unlisted})
    return [Target(s, ranks[s]) for s in wanted]
