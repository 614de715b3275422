"""Paging through the exchange's history: candles by time, trades by id, and which trade
ids a time range holds. What ``cap-stock backfill`` uses, and what filling a hole in the
trade ids reuses (:func:`trade_pages` from the hole's first id to its last).

Every function goes through an :class:`~capstock.exchange.client.ExchangeClient`, so
weight pacing, retries and 429/418 handling are the client's, and yields one page at a
time: a caller writes a page before asking for the next, and an interruption loses at
most the page in hand. Each page comes with ``covered``, the last open time or trade id
it accounts for (rows the exchange does not have included), so progress can be counted
in the units asked for.

Why trades go by id: ``GET /api/v3/trades`` only has the newest 1,000, and
``historicalTrades`` pages by ``fromId`` alone. A time range is turned into trade ids
first with ``aggTrades`` (``startTime``/``endTime`` in windows of at most an hour, weight
4): an aggregate trade's ``f`` is its first trade id. Aggregate trades themselves are not
stored: their ids are not trade ids and several trades may be one aggregate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from capstock.exchange import limits
from capstock.exchange.client import ExchangeClient
from capstock.transform.rows import BadRecord

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
KLINE_INTERVAL_MS = {
    "1s": SECOND_MS,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "1w": 7 * DAY_MS,
}
"""Intervals of a fixed length, whose candles open on multiples of it since the epoch
(weeks open on Mondays: :data:`KLINE_OFFSET_MS`). ``3d`` and ``1M`` are left out: a month
has no fixed length, and where three-day candles start is not documented."""
KLINE_OFFSET_MS = {"1w": 4 * DAY_MS}
"""1970-01-01 was a Thursday; weekly candles open on Monday 00:00 UTC."""
AGG_TRADES_WINDOW_MS = HOUR_MS
"""Time window per ``aggTrades`` look-up (older docs reject a longer one with -1127)."""


def interval_ms(interval: str) -> int:
    """``"1m"`` → 60000; ValueError for an interval without a fixed length."""
    try:
        return KLINE_INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(
            f"{interval!r} cannot be paged by time: use one of {' '.join(KLINE_INTERVAL_MS)}"
        ) from None


def first_open(interval: str, t_ms: int) -> int:
    """The open time of the first candle opening at or after ``t_ms``."""
    step, offset = interval_ms(interval), KLINE_OFFSET_MS.get(interval, 0)
    return -((offset - t_ms) // step) * step + offset


def last_open(interval: str, t_ms: int) -> int:
    """The open time of the candle that contains ``t_ms``."""
    step, offset = interval_ms(interval), KLINE_OFFSET_MS.get(interval, 0)
    return (t_ms - offset) // step * step + offset


def missing_ranges(
    first: int, last: int, stored: Iterable[tuple[int, int]], step: int = 1
) -> list[tuple[int, int]]:
    """The parts of ``first..last`` (values ``step`` apart, both ends included) that the
    ``stored`` runs (inclusive ``(lo, hi)`` pairs, any order) do not cover.

    >>> missing_ranges(1, 10, [(3, 4), (8, 12)])
    [(1, 2), (5, 7)]
    """
    out = []
    cursor = first
    for lo, hi in sorted(stored):
        if hi < cursor:
            continue
        if lo > last:
            break
        if lo > cursor:
            out.append((cursor, min(lo - step, last)))
        cursor = max(cursor, hi + step)
    if cursor <= last:
        out.append((cursor, last))
    return out


def _int_field(raw: Any, key: str) -> int | None:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def kline_pages(
    exchange: ExchangeClient,
    symbol: str,
    interval: str,
    first: int,
    last: int,
    *,
    limit: int = limits.KLINES_MAX_LIMIT,
) -> Iterator[tuple[list[Any], int]]:
    """The candles opening from ``first`` to ``last`` (open times, ms), oldest first, as
    (raw klines, covered) pages. A page shorter than ``limit`` ends the range: the
    exchange has no more candles in it (a gap in its data is not asked for twice)."""
    step = interval_ms(interval)
    cursor = first
    while cursor <= last:
        page = exchange.klines(symbol, interval, limit, start_ms=cursor, end_ms=last)
        opens = [k[0] for k in page if isinstance(k, list) and k and isinstance(k[0], int)]
        top = max(opens, default=cursor - step)
        covered = last if len(page) < limit or top >= last else top
        if covered < cursor:
            raise BadRecord(f"klines {symbol} from {cursor}: a full page with no later candle")
        yield page, covered
        cursor = covered + step


def trade_pages(
    exchange: ExchangeClient,
    symbol: str,
    first_id: int,
    last_id: int,
    *,
    limit: int = limits.TRADES_MAX_LIMIT,
) -> Iterator[tuple[list[Any], int]]:
    """The trades with ids ``first_id..last_id``, in id order, as (raw trades, covered)
    pages from ``GET /api/v3/historicalTrades`` (25 weight per page of up to 1,000).

    Trades beyond ``last_id`` in a page are dropped; ids the exchange does not have are
    skipped (they never existed, or the exchange no longer serves them). Records without
    an integer ``id`` are passed on, for the row builder to count as bad."""
    cursor = first_id
    while cursor <= last_id:
        want = min(limit, last_id - cursor + 1)
        page = exchange.trades_from_id(symbol, cursor, want)
        ids = [i for i in (_int_field(t, "id") for t in page) if i is not None]
        top = max(ids, default=last_id)
        covered = last_id if len(page) < want or top >= last_id else top
        if covered < cursor:
            raise BadRecord(f"historicalTrades {symbol} from id {cursor}: only older ids")
        rows = [t for t in page if (i := _int_field(t, "id")) is None or cursor <= i <= last_id]
        yield rows, covered
        cursor = covered + 1


def _agg_field(agg: Any, key: str, what: str) -> int:
    value = _int_field(agg, key)
    if value is None:
        raise BadRecord(f"aggTrades {what}: no integer {key!r} in {agg!r:.200}")
    return value


def first_trade_id(exchange: ExchangeClient, symbol: str, start_ms: int, end_ms: int) -> int | None:
    """The id of the first trade at or after ``start_ms`` and at or before ``end_ms``;
    None if there is none. One ``aggTrades`` look-up per hour of the range until a trade
    is found (a busy symbol needs one)."""
    t = start_ms
    while t <= end_ms:
        window_end = min(end_ms, t + AGG_TRADES_WINDOW_MS - 1)
        found = exchange.agg_trades(symbol, start_ms=t, end_ms=window_end, limit=1)
        if found:
            return _agg_field(found[0], "f", f"{symbol} from {t}")
        t = window_end + 1
    return None


def trade_id_range(
    exchange: ExchangeClient, symbol: str, start_ms: int, end_ms: int
) -> tuple[int, int] | None:
    """The first and last trade id of the trades from ``start_ms`` to ``end_ms`` (both
    included); None when the exchange has no trade in that time."""
    newest = exchange.agg_trades(symbol, limit=1)
    if not newest:
        return None
    newest_time = _agg_field(newest[-1], "T", f"{symbol} newest")
    first = first_trade_id(exchange, symbol, start_ms, min(end_ms, newest_time))
    if first is None:
        return None
    last = _agg_field(newest[-1], "l", f"{symbol} newest")
    if newest_time > end_ms:
        after = first_trade_id(exchange, symbol, end_ms + 1, newest_time)
        last = after - 1 if after is not None else last
    return (first, last) if last >= first else None
