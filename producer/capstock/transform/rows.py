"""Stage 2: raw Binance JSON → table rows: dicts whose keys are exactly the columns of their
table in :mod:`capstock.model.tables` (the writer refuses a missing or unknown key, see
:func:`capstock.staging.writer.dedupe`; a unit test checks every builder against its table).

Rules: decimals are parsed from Binance's strings with :class:`decimal.Decimal` and never
pass through ``float``; millisecond integers become timezone-aware UTC datetimes with exactly
that millisecond; a record that does not have the documented shape raises
:class:`BadRecord` (the jobs count and log it, and keep the rest of the batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from capstock.exchange.payloads import TICKER_STREAM_KEYS

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BOOK_SIDES = ("bid", "ask")
KLINE_FIELDS = 12


class BadRecord(ValueError):
    """A record that does not have the documented shape."""


def ms_to_utc(ms: Any) -> datetime:
    """``1499865549590`` → ``2017-07-12 13:19:09.590000+00:00`` (exact; no float maths)."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise BadRecord(f"expected integer milliseconds, got {ms!r}")
    return EPOCH + timedelta(milliseconds=ms)


def utc_to_ms(t: datetime) -> int:
    return (t - EPOCH) // timedelta(milliseconds=1)


def now_utc(clock: Callable[[], float] | None = None) -> datetime:
    """The current time, truncated to the millisecond (what both stores can keep)."""
    if clock is None:
        t = datetime.now(UTC)
        return t.replace(microsecond=t.microsecond // 1000 * 1000)
    return ms_to_utc(int(clock() * 1000))


def dec(value: Any) -> Decimal:
    """``"0.00001234"`` → ``Decimal('0.00001234')``. Only strings are accepted: a JSON number
    would already have been through a float."""
    if not isinstance(value, str):
        raise BadRecord(f"expected a decimal string, got {value!r}")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise BadRecord(f"not a decimal: {value!r}") from None
    if not d.is_finite():
        raise BadRecord(f"not a finite decimal: {value!r}")
    return d


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRecord(f"expected an integer, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRecord(f"expected a boolean, got {value!r}")
    return value


def _field(raw: Any, key: str) -> Any:
    try:
        return raw[key]
    except (KeyError, TypeError):
        raise BadRecord(f"missing field {key!r}") from None


def kline_row(
    symbol: str, interval: str, raw: Any, *, now: datetime, rank: int | None, ingested_at: datetime
) -> dict:
    """One kline (12-element array from ``GET /api/v3/klines``) → a ``kline_data`` row.

    Sample::

        [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
         "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
         "28.46694368", "0"]

    Order: open time, open, high, low, close, volume, close time, quote volume, trade count,
    taker buy base volume, taker buy quote volume, unused. The candle is closed once its
    close time (``open + interval - 1 ms``) is before ``now``.
    """
    if not isinstance(raw, list) or len(raw) != KLINE_FIELDS:
        raise BadRecord(f"kline is not a {KLINE_FIELDS}-element array: {raw!r}")
    close_time = ms_to_utc(raw[6])
    return {
        "symbol": symbol,
        "interval": interval,
        "open_time": ms_to_utc(raw[0]),
        "close_time": close_time,
        "open": dec(raw[1]),
        "high": dec(raw[2]),
        "low": dec(raw[3]),
        "close": dec(raw[4]),
        "volume": dec(raw[5]),
        "quote_volume": dec(raw[7]),
        "trade_count": _int(raw[8]),
        "taker_buy_base_volume": dec(raw[9]),
        "taker_buy_quote_volume": dec(raw[10]),
        "is_closed": close_time < now,
        "rank": rank,
        "ingested_at": ingested_at,
    }


def trade_row(symbol: str, raw: Any, *, ingested_at: datetime) -> dict:
    """One trade from ``GET /api/v3/trades`` → a ``recent_trades`` row.

    Sample::

        {"id": 28457, "price": "4.00000100", "qty": "12.00000000", "quoteQty": "48.000012",
         "time": 1499865549590, "isBuyerMaker": true, "isBestMatch": true}
    """
    trade_time = ms_to_utc(_field(raw, "time"))
    return {
        "symbol": symbol,
        "trade_id": _int(_field(raw, "id")),
        "price": dec(_field(raw, "price")),
        "qty": dec(_field(raw, "qty")),
        "quote_qty": dec(_field(raw, "quoteQty")),
        "trade_time": trade_time,
        "is_buyer_maker": _bool(_field(raw, "isBuyerMaker")),
        "is_best_match": _bool(_field(raw, "isBestMatch")),
        "day": trade_time.date(),
        "ingested_at": ingested_at,
    }


def book_rows(
    symbol: str, raw: Any, *, snapshot_time: datetime, levels: int, ingested_at: datetime
) -> list[dict]:
    """One ``GET /api/v3/depth`` response → ``order_book`` rows, top ``levels`` per side.

    Sample::

        {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]],
         "asks": [["4.00000200", "12.00000000"]]}

    Bids come best (highest) first, asks best (lowest) first; ``level`` 0 is the best price.
    Every row of one response shares ``snapshot_time``. The whole snapshot is rejected if
    any level is malformed (half a book would be misleading).
    """
    last_update_id = _int(_field(raw, "lastUpdateId"))
    sides = [book_levels(_field(raw, key), key, levels) for key in ("bids", "asks")]
    return snapshot_rows(
        symbol,
        last_update_id,
        sides[0],
        sides[1],
        snapshot_time=snapshot_time,
        ingested_at=ingested_at,
    )


def book_levels(entries: Any, key: str, limit: int | None = None) -> list[tuple[Decimal, Decimal]]:
    """``[["4.00000000", "431.00000000"], ...]`` → (price, qty) pairs, the first ``limit``
    (all with None); :class:`BadRecord` if any pair is malformed."""
    if not isinstance(entries, list):
        raise BadRecord(f"{key} is not a list")
    pairs = []
    for level, entry in enumerate(entries if limit is None else entries[:limit]):
        if not isinstance(entry, list) or len(entry) != 2:
            raise BadRecord(f"{key}[{level}] is not a [price, qty] pair: {entry!r}")
        pairs.append((dec(entry[0]), dec(entry[1])))
    return pairs


def snapshot_rows(
    symbol: str,
    last_update_id: int,
    bids: list[tuple[Decimal, Decimal]],
    asks: list[tuple[Decimal, Decimal]],
    *,
    snapshot_time: datetime,
    ingested_at: datetime,
) -> list[dict]:
    """``order_book`` rows of one book: bids best first, asks best first (``level`` 0 the
    best), every row sharing ``snapshot_time`` and ``last_update_id``. The REST job's
    fetched snapshot and the streaming ingest's local book both end here."""
    rows = []
    for side, pairs in zip(BOOK_SIDES, (bids, asks), strict=True):
        for level, (price, qty) in enumerate(pairs):
            rows.append(
                {
                    "symbol": symbol,
                    "snapshot_time": snapshot_time,
                    "side": side,
                    "price": price,
                    "qty": qty,
                    "level": level,
                    "last_update_id": last_update_id,
                    "day": snapshot_time.date(),
                    "ingested_at": ingested_at,
                }
            )
    return rows


def ticker_24hr_row(raw: Any, *, rank: int, ingested_at: datetime) -> dict:
    """One FULL ``GET /api/v3/ticker/24hr`` entry → a ``top_24hr`` row.

    Sample::

        {"symbol": "BNBBTC", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
         "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000",
         "lastPrice": "4.00000200", "lastQty": "200.00000000", "bidPrice": "4.00000000",
         "bidQty": "100.00000000", "askPrice": "4.00000200", "askQty": "100.00000000",
         "openPrice": "99.00000000", "highPrice": "100.00000000", "lowPrice": "0.10000000",
         "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
         "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76}
    """
    return {
        "symbol": _symbol(_field(raw, "symbol")),
        "close_time": ms_to_utc(_field(raw, "closeTime")),
        "open_time": ms_to_utc(_field(raw, "openTime")),
        "price_change": dec(_field(raw, "priceChange")),
        "price_change_percent": dec(_field(raw, "priceChangePercent")),
        "weighted_avg_price": dec(_field(raw, "weightedAvgPrice")),
        "prev_close_price": dec(_field(raw, "prevClosePrice")),
        "last_price": dec(_field(raw, "lastPrice")),
        "last_qty": dec(_field(raw, "lastQty")),
        "bid_price": dec(_field(raw, "bidPrice")),
        "ask_price": dec(_field(raw, "askPrice")),
        "open_price": dec(_field(raw, "openPrice")),
        "high_price": dec(_field(raw, "highPrice")),
        "low_price": dec(_field(raw, "lowPrice")),
        "volume": dec(_field(raw, "volume")),
        "quote_volume": dec(_field(raw, "quoteVolume")),
        "first_id": _int(_field(raw, "firstId")),
        "last_id": _int(_field(raw, "lastId")),
        "trade_count": _int(_field(raw, "count")),
        "rank": rank,
        "ingested_at": ingested_at,
    }


def price_row(raw: Any, *, ts: datetime, ingested_at: datetime) -> dict:
    """One ``GET /api/v3/ticker/price`` entry → a ``latest_prices`` row.

    Sample::

        {"symbol": "LTCBTC", "price": "4.00000200"}

    The response carries no time, so ``ts`` is the fetch time (shared by one fetch).
    """
    return {
        "symbol": _symbol(_field(raw, "symbol")),
        "ts": ts,
        "price": dec(_field(raw, "price")),
        "day": ts.date(),
        "ingested_at": ingested_at,
    }


def heartbeat_row(
    source: str,
    *,
    beat_time: datetime,
    weight_used_1m: int | None,
    trade_gaps_total: int | None,
    ingested_at: datetime,
    exchange_error: str | None = None,
    exchange_error_since: datetime | None = None,
    trade_gaps_filled: int | None = None,
    trade_gaps_open: int | None = None,
    ingest_mode: str | None = None,
) -> dict:
    return {
        "source": source,
        "beat_time": beat_time,
        "weight_used_1m": weight_used_1m,
        "trade_gaps_total": trade_gaps_total,
        "ingested_at": ingested_at,
        "exchange_error": exchange_error,
        "exchange_error_since": exchange_error_since,
        "trade_gaps_filled": trade_gaps_filled,
        "trade_gaps_open": trade_gaps_open,
        "ingest_mode": ingest_mode,
    }


# -- websocket stream payloads (capstock.ingest.streaming) --------------------------------------


def plain_decimal(d: Decimal) -> Decimal:
    """The shortest exact form: ``Decimal('48.0000120000000000')`` → ``Decimal('48.000012')``,
    ``Decimal('100.00')`` → ``Decimal('100')`` (never ``1E+2``): how Binance writes a
    ``quoteQty``."""
    n = d.normalize()
    exponent = n.as_tuple().exponent
    return n.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else n


def stream_trade_row(raw: Any, *, ingested_at: datetime) -> dict:
    """One ``<symbol>@trade`` event → a ``recent_trades`` row, equal to the row
    :func:`trade_row` makes of the same trade from REST.

    Sample::

        {"e": "trade", "E": 1700000000123, "s": "BTCUSDT", "t": 17000000001234,
         "p": "65012.34000000", "q": "0.00120000", "T": 1700000000100, "m": true, "M": true}

    The event has no quote quantity: it is ``p * q``, exact, in its shortest form (as
    REST's ``quoteQty``).
    """
    price, qty = dec(_field(raw, "p")), dec(_field(raw, "q"))
    trade_time = ms_to_utc(_field(raw, "T"))
    return {
        "symbol": _symbol(_field(raw, "s")),
        "trade_id": _int(_field(raw, "t")),
        "price": price,
        "qty": qty,
        "quote_qty": plain_decimal(price * qty),
        "trade_time": trade_time,
        "is_buyer_maker": _bool(_field(raw, "m")),
        "is_best_match": _bool(_field(raw, "M")),
        "day": trade_time.date(),
        "ingested_at": ingested_at,
    }


def stream_kline_row(raw: Any, *, rank: int | None, ingested_at: datetime) -> dict:
    """One ``<symbol>@kline_<interval>`` event → a ``kline_data`` row; ``x`` says whether
    the candle is closed (the open one is sent every 2 s and upserted each time).

    Sample::

        {"e": "kline", "E": 1700000002000, "s": "BTCUSDT", "k": {"t": 1699999980000,
         "T": 1700000039999, "s": "BTCUSDT", "i": "1m", "f": 17000000001200,
         "L": 17000000001234, "o": "65000.00000000", "c": "65012.34000000",
         "h": "65020.00000000", "l": "64990.00000000", "v": "1.20000000", "n": 35,
         "x": false, "q": "78012.00000000", "V": "0.60000000", "Q": "39006.00000000",
         "B": "0"}}
    """
    k = _field(raw, "k")
    return {
        "symbol": _symbol(_field(k, "s")),
        "interval": _symbol(_field(k, "i")),
        "open_time": ms_to_utc(_field(k, "t")),
        "close_time": ms_to_utc(_field(k, "T")),
        "open": dec(_field(k, "o")),
        "high": dec(_field(k, "h")),
        "low": dec(_field(k, "l")),
        "close": dec(_field(k, "c")),
        "volume": dec(_field(k, "v")),
        "quote_volume": dec(_field(k, "q")),
        "trade_count": _int(_field(k, "n")),
        "taker_buy_base_volume": dec(_field(k, "V")),
        "taker_buy_quote_volume": dec(_field(k, "Q")),
        "is_closed": _bool(_field(k, "x")),
        "rank": rank,
        "ingested_at": ingested_at,
    }


def stream_ticker_row(raw: Any, *, rank: int, ingested_at: datetime) -> dict:
    """One ``<symbol>@ticker`` event → a ``top_24hr`` row (as :func:`ticker_24hr_row`
    makes of the REST object with the same figures).

    Sample::

        {"e": "24hrTicker", "E": 1700000001000, "s": "BTCUSDT", "p": "12.34000000",
         "P": "0.019", "w": "65001.00000000", "x": "65000.00000000", "c": "65012.34000000",
         "Q": "0.00120000", "b": "65012.33000000", "B": "0.50000000", "a": "65012.35000000",
         "A": "0.40000000", "o": "65000.00000000", "h": "65100.00000000",
         "l": "64900.00000000", "v": "1234.50000000", "q": "80245000.00000000",
         "O": 1699913601000, "C": 1700000001000, "F": 16999000000000, "L": 17000000001234,
         "n": 1001235}
    """
    rest = {name: _field(raw, key) for key, name in TICKER_STREAM_KEYS}
    return ticker_24hr_row(rest, rank=rank, ingested_at=ingested_at)


def stream_price_row(raw: Any, *, ingested_at: datetime) -> dict:
    """The last price of a ``<symbol>@ticker`` event (``c``) → a ``latest_prices`` row
    stamped with the event time ``E`` (REST's price has no time; the stream's has)."""
    ts = ms_to_utc(_field(raw, "E"))
    return price_row(
        {"symbol": _field(raw, "s"), "price": _field(raw, "c")}, ts=ts, ingested_at=ingested_at
    )


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadRecord(f"expected a symbol, got {value!r}")
    return value


T = TypeVar("T")


def parse_each(
    items: Iterable[Any], parse: Callable[[Any], T], *, context: str
) -> tuple[list[T], int]:
    """Apply ``parse`` to each item; bad items are counted and the first one is logged."""
    rows: list[T] = []
    bad = 0
    for item in items:
        try:
            rows.append(parse(item))
        except BadRecord as e:
            bad += 1
            if bad == 1:
                log.warning("bad record context=%s error=%s record=%.300r", context, e, item)
    if bad > 1:
        log.warning("bad records context=%s count=%d", context, bad)
    return rows, bad
