"""Binance's market streams: their names and the payloads they carry, built from a market.

Stream names use lowercase symbols; the event names keep Binance's case::

    btcusdt@trade  btcusdt@aggTrade  btcusdt@kline_1m  btcusdt@ticker  btcusdt@miniTicker
    btcusdt@depth  btcusdt@depth@100ms  btcusdt@depth5  btcusdt@depth20@100ms
    !miniTicker@arr  (every symbol whose figures changed in the last second)

:func:`parse_stream` turns a name into a :class:`Stream` or raises :class:`BadStreamName`
(``BTCUSDT@trade`` is refused: symbols must be lowercase). A well-formed name for a symbol
the market does not list is accepted and stays silent, as on the exchange.

Payload keys and types follow Binance: prices and quantities are 8-decimal strings, ids
and times integers, flags booleans. ``E`` (event time) is the simulator's clock when the
event is sent. Kline intervals are those of the REST API (``1s``, ``3d``, ``1w``, ``1M``
are not simulated); a kline without trades has ``f`` = ``L`` = -1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from capstock.exchange.payloads import TICKER_STREAM_KEYS
from capstock.simulator.market import SymbolState, Trade, fmt
from capstock.simulator.rest import KLINE_INTERVAL_MINUTES

TRADE = "trade"
AGG_TRADE = "aggTrade"
KLINE = "kline"
DEPTH = "depth"
PARTIAL_DEPTH = "partialDepth"
TICKER = "ticker"
MINI_TICKER = "miniTicker"
ALL_MINI_TICKERS = "allMiniTickers"

SEQUENCED = frozenset({TRADE, AGG_TRADE, DEPTH})
"""Streams whose events carry ids a client checks for holes (what ``ws_skip`` affects)."""
PARTIAL_DEPTH_LEVELS = (5, 10, 20)
DEPTH_SPEEDS_MS = (100, 1000)
KLINE_EVERY_MS = 2000
"""An open candle is sent at least this often (Binance: 2000 ms, 1000 ms for ``1s``)."""
TICKER_EVERY_MS = 1000

_SYMBOL_STREAM = re.compile(r"(?P<symbol>[^@!]+)@(?P<event>.+)")
_DEPTH = re.compile(r"depth(?P<levels>5|10|20)?(?:@(?P<speed>100|1000)ms)?")
_ALL_MINI = re.compile(r"!miniTicker@arr(?:@1000ms)?")


class BadStreamName(ValueError):
    """A stream name the exchange does not serve."""


@dataclass(frozen=True)
class Stream:
    """One stream: ``kind`` (a module constant), the market ``symbol`` (upper case, None
    for ``!miniTicker@arr``) and the kind's parameters."""

    name: str
    kind: str
    symbol: str | None
    interval: str | None = None
    levels: int | None = None
    every_ms: int = 1000

    @property
    def sequenced(self) -> bool:
        return self.kind in SEQUENCED

    @property
    def interval_ms(self) -> int:
        return KLINE_INTERVAL_MINUTES[self.interval or "1m"] * 60_000


def parse_stream(name: str) -> Stream:
    """``"btcusdt@depth20@100ms"`` → Stream(kind='partialDepth', symbol='BTCUSDT', levels=20,
    every_ms=100); raises :class:`BadStreamName` for anything the exchange does not serve."""
    if not isinstance(name, str):
        raise BadStreamName(f"stream names are strings, not {name!r}")
    if _ALL_MINI.fullmatch(name):
        return Stream(name, ALL_MINI_TICKERS, None)
    match = _SYMBOL_STREAM.fullmatch(name)
    if match is None:
        raise BadStreamName(f"unknown stream {name!r}")
    symbol, event = match["symbol"], match["event"]
    if symbol != symbol.lower():
        raise BadStreamName(f"unknown stream {name!r}: symbols must be lowercase")
    if not symbol.isalnum():
        raise BadStreamName(f"unknown stream {name!r}")
    upper = symbol.upper()
    if event in (TRADE, AGG_TRADE, TICKER, MINI_TICKER):
        return Stream(name, event, upper)
    if event.startswith("kline_"):
        interval = event.removeprefix("kline_")
        if interval not in KLINE_INTERVAL_MINUTES:
            raise BadStreamName(f"unknown stream {name!r}: no kline interval {interval!r}")
        return Stream(name, KLINE, upper, interval=interval, every_ms=KLINE_EVERY_MS)
    depth = _DEPTH.fullmatch(event)
    if depth is None:
        raise BadStreamName(f"unknown stream {name!r}")
    every_ms = int(depth["speed"] or 1000)
    if depth["levels"]:
        return Stream(name, PARTIAL_DEPTH, upper, levels=int(depth["levels"]), every_ms=every_ms)
    return Stream(name, DEPTH, upper, every_ms=every_ms)


# -- payloads ----------------------------------------------------------------------------------


def trade_event(symbol: str, trade: Trade, event_ms: int) -> dict[str, Any]:
    """``<s>@trade``::

    {"e":"trade","E":1700000000123,"s":"BTCUSDT","t":17000000001234,"p":"65012.34000000",
     "q":"0.00120000","T":1700000000100,"m":true,"M":true}
    """
    return {
        "e": "trade",
        "E": event_ms,
        "s": symbol,
        "t": trade.id,
        "p": fmt(trade.price),
        "q": fmt(trade.qty),
        "T": trade.time_ms,
        "m": trade.is_buyer_maker,
        "M": True,
    }


def agg_trade_event(symbol: str, trade: Trade, event_ms: int) -> dict[str, Any]:
    """``<s>@aggTrade``: one trade per aggregate, as REST aggTrades answers (a = f = l)::

    {"e":"aggTrade","E":1700000000123,"s":"BTCUSDT","a":17000000001234,"p":"65012.34000000",
     "q":"0.00120000","f":17000000001234,"l":17000000001234,"T":1700000000100,"m":true,"M":true}
    """
    return {
        "e": "aggTrade",
        "E": event_ms,
        "s": symbol,
        "a": trade.id,
        "p": fmt(trade.price),
        "q": fmt(trade.qty),
        "f": trade.id,
        "l": trade.id,
        "T": trade.time_ms,
        "m": trade.is_buyer_maker,
        "M": True,
    }


def kline_event(
    symbol: str,
    interval: str,
    row: tuple,
    trade_ids: tuple[int, int],
    *,
    closed: bool,
    event_ms: int,
) -> dict[str, Any]:
    """``<s>@kline_<interval>`` from a :meth:`Market.klines` row; ``x`` says it is final::

    {"e":"kline","E":1700000002000,"s":"BTCUSDT","k":{"t":1699999980000,"T":1700000039999,
     "s":"BTCUSDT","i":"1m","f":17000000001200,"L":17000000001234,"o":"65000.00000000",
     "c":"65012.34000000","h":"65020.00000000","l":"64990.00000000","v":"1.20000000","n":35,
     "x":false,"q":"78012.00000000","V":"0.60000000","Q":"39006.00000000","B":"0"}}
    """
    open_ms, o, h, low, c, v, close_ms, q, n, taker_base, taker_quote = row
    first, last = trade_ids
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": open_ms,
            "T": close_ms,
            "s": symbol,
            "i": interval,
            "f": first,
            "L": last,
            "o": fmt(o),
            "c": fmt(c),
            "h": fmt(h),
            "l": fmt(low),
            "v": fmt(v),
            "n": n,
            "x": closed,
            "q": fmt(q),
            "V": fmt(taker_base),
            "Q": fmt(taker_quote),
            "B": "0",
        },
    }


def kline_trade_ids(s: SymbolState, open_ms: int, close_ms: int, count: int) -> tuple[int, int]:
    """First and last trade id of a candle of ``count`` trades (-1, -1 without trades).

    Read from the trades the market keeps (the last 1000); a candle reaching back before
    them counts back from its last id (ids are consecutive unless a trade-id gap was
    injected), and one entirely before them ends just before the oldest kept trade."""
    if count == 0:
        return -1, -1
    first = last = None
    after = s.next_trade_id
    reached_start = False
    for trade in reversed(s.trades):
        if trade.time_ms > close_ms:
            after = trade.id
            continue
        if trade.time_ms < open_ms:
            reached_start = True
            break
        if last is None:
            last = trade.id
        first = trade.id
    if last is None:
        last = after - 1
    if first is None or not reached_start:
        first = last - count + 1
    return first, last


def depth_update_event(
    symbol: str,
    first_id: int,
    last_id: int,
    bids: list[tuple[Decimal, Decimal]],
    asks: list[tuple[Decimal, Decimal]],
    event_ms: int,
) -> dict[str, Any]:
    """``<s>@depth[@100ms]``: every level changed by update ids ``U`` to ``u``, with its
    quantity after ``u`` (absolute; "0.00000000" removes the level)::

    {"e":"depthUpdate","E":1700000000100,"s":"BTCUSDT","U":157,"u":160,
     "b":[["65010.00000000","0.50000000"]],"a":[["65012.00000000","0.00000000"]]}
    """
    return {
        "e": "depthUpdate",
        "E": event_ms,
        "s": symbol,
        "U": first_id,
        "u": last_id,
        "b": [[fmt(p), fmt(q)] for p, q in bids],
        "a": [[fmt(p), fmt(q)] for p, q in asks],
    }


def partial_depth_event(
    update_id: int, bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]
) -> dict[str, Any]:
    """``<s>@depth<5|10|20>[@100ms]``: the top of the book, shaped as REST depth (no e/E/s)::

    {"lastUpdateId":160,"bids":[["65010.00000000","0.50000000"]],
     "asks":[["65012.00000000","1.00000000"]]}
    """
    return {
        "lastUpdateId": update_id,
        "bids": [[fmt(p), fmt(q)] for p, q in bids],
        "asks": [[fmt(p), fmt(q)] for p, q in asks],
    }


MINI_TICKER_KEYS = (
    ("c", "lastPrice"),
    ("o", "openPrice"),
    ("h", "highPrice"),
    ("l", "lowPrice"),
    ("v", "volume"),
    ("q", "quoteVolume"),
)


def ticker_event(ticker: dict[str, Any], event_ms: int) -> dict[str, Any]:
    """``<s>@ticker`` from a REST ticker/24hr object (``x`` is the previous close)::

    {"e":"24hrTicker","E":1700000001000,"s":"BTCUSDT","p":"12.34000000","P":"0.019",
     "w":"65001.00000000","x":"65000.00000000","c":"65012.34000000","Q":"0.00120000",
     "b":"65012.33000000","B":"0.50000000","a":"65012.35000000","A":"0.40000000",
     "o":"65000.00000000","h":"65100.00000000","l":"64900.00000000","v":"1234.50000000",
     "q":"80245000.00000000","O":1699913601000,"C":1700000001000,"F":16999000000000,
     "L":17000000001234,"n":1001235}
    """
    payload: dict[str, Any] = {"e": "24hrTicker", "E": event_ms}
    payload.update((key, ticker[field]) for key, field in TICKER_STREAM_KEYS)
    return payload


def mini_ticker_event(ticker: dict[str, Any], event_ms: int) -> dict[str, Any]:
    """``<s>@miniTicker`` (and each element of ``!miniTicker@arr``)::

    {"e":"24hrMiniTicker","E":1700000001000,"s":"BTCUSDT","c":"65012.34000000",
     "o":"65000.00000000","h":"65100.00000000","l":"64900.00000000","v":"1234.50000000",
     "q":"80245000.00000000"}
    """
    payload: dict[str, Any] = {"e": "24hrMiniTicker", "E": event_ms, "s": ticker["symbol"]}
    payload.update((key, ticker[field]) for key, field in MINI_TICKER_KEYS)
    return payload
