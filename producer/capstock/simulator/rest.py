"""Binance's spot market-data endpoints over a :class:`Market`: query parameters in, JSON body out.

Served under ``/api/v3``: ``ping``, ``time``, ``exchangeInfo``, ``klines``, ``trades``,
``historicalTrades``, ``aggTrades``, ``depth``, ``ticker/24hr``, ``ticker/price``. Shapes
follow the exchange: decimals as 8-decimal strings, times as integer milliseconds, klines
as 12-element arrays.
``klines`` (``startTime``/``endTime``/``limit``), ``historicalTrades`` (``fromId``) and
``aggTrades`` (``fromId`` or ``startTime``/``endTime``) page through the market's whole
history (``--history-minutes`` before the start, and every trade since), with the same
consecutive trade ids ``trades`` shows. A request the exchange would reject raises
:class:`ApiError` with its code and message, e.g. ``GET /api/v3/trades?symbol=NOPE``::

    {"code": -1121, "msg": "Invalid symbol."}

No HTTP here, no weights and no faults: :mod:`capstock.simulator.exchange` adds those.

Limitations: kline intervals ``1s``, ``3d``, ``1w`` and ``1M`` answer -1120; each
aggregate trade holds exactly one trade (its id is the trade id); ``aggTrades`` with only
``endTime`` answers the hour before it, oldest first; ``historicalTrades`` asks for no API
key (the exchange's current docs ask none either; older ones did, as ``MARKET_DATA``);
limits above an endpoint's maximum are capped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from capstock.exchange import limits
from capstock.simulator.market import MINUTE_MS, Market, Trade, fmt, fmt_exact

Params = Mapping[str, str]

KLINE_INTERVAL_MINUTES = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
}
SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
DIGITS_RANGE = "^[0-9]{1,20}$"
MINI_TICKER_FIELDS = (
    "symbol",
    "openPrice",
    "highPrice",
    "lowPrice",
    "lastPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
)
"""What ``ticker/24hr?type=MINI`` keeps of the full ticker."""
AGG_TRADES_WINDOW_MS = 60 * MINUTE_MS
"""``aggTrades`` with ``endTime`` alone answers from this long before it."""


class ApiError(Exception):
    """A request the exchange rejects: Binance's error ``code`` and ``msg``, HTTP ``status``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def bad_symbol() -> ApiError:
    return ApiError(limits.ERR_BAD_SYMBOL, "Invalid symbol.")


def missing(name: str) -> ApiError:
    return ApiError(
        limits.ERR_MANDATORY_PARAM,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def illegal(name: str, legal: str) -> ApiError:
    return ApiError(
        limits.ERR_ILLEGAL_CHARS,
        f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.",
    )


# -- parameters --------------------------------------------------------------------------------


def symbol_param(market: Market, params: Params) -> str:
    """The mandatory ``symbol``, which must be one the market has."""
    symbol = params.get("symbol")
    if not symbol:
        raise missing("symbol")
    if symbol not in market.symbols:
        raise bad_symbol()
    return symbol


def symbols_param(market: Market, params: Params) -> list[str] | None:
    """``symbol`` or ``symbols`` (a JSON array) or neither (None: every symbol)."""
    if "symbol" in params and "symbols" in params:
        raise ApiError(limits.ERR_BAD_COMBO, "Combination of optional parameters invalid.")
    if "symbol" in params:
        return [symbol_param(market, params)]
    if "symbols" not in params:
        return None
    try:
        names = json.loads(params["symbols"])
    except ValueError:
        raise illegal("symbols", SYMBOLS_RANGE) from None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise illegal("symbols", SYMBOLS_RANGE)
    if len(set(names)) != len(names):
        raise ApiError(-1151, "Symbol is present multiple times in the list.")
    if any(n not in market.symbols for n in names):
        raise bad_symbol()
    return names


def int_param(params: Params, name: str) -> int | None:
    """An optional non-negative integer such as ``startTime`` or ``fromId``."""
    value = params.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise illegal(name, DIGITS_RANGE)
    return int(value)


def limit_param(params: Params, default: int, maximum: int) -> int:
    """``limit``: ``default`` when absent, at least 1, capped at ``maximum``."""
    limit = int_param(params, "limit")
    if limit is None:
        return default
    if limit < 1:
        raise ApiError(
            limits.ERR_INVALID_PARAMETER, "Data sent for parameter 'limit' is not valid."
        )
    return min(limit, maximum)


# -- endpoints ---------------------------------------------------------------------------------


class RestApi:
    """The endpoints of one market, which advertises ``weight_limit`` in exchangeInfo.

    :meth:`endpoint` finds the function for a path; calling it reads the market, so the
    caller holds the market's lock and advances it to now first.
    """

    def __init__(self, market: Market, weight_limit: int) -> None:
        self.market = market
        self.weight_limit = weight_limit
        self._endpoints: dict[str, Callable[[Params], Any]] = {
            "ping": self.ping,
            "time": self.time,
            "exchangeInfo": self.exchange_info,
            "trades": self.trades,
            "historicalTrades": self.historical_trades,
            "aggTrades": self.agg_trades,
            "klines": self.klines,
            "depth": self.depth,
            "ticker/24hr": self.ticker_24hr,
            "ticker/price": self.ticker_price,
        }

    def endpoint(self, name: str) -> Callable[[Params], Any]:
        """The function answering ``GET /api/v3/<name>``; :class:`ApiError` 404 if none."""
        try:
            return self._endpoints[name]
        except KeyError:
            raise ApiError(-1000, "Unknown endpoint.", status=404) from None

    def ping(self, params: Params) -> Any:
        return {}

    def time(self, params: Params) -> Any:
        return {"serverTime": self.market.now_ms}

    def exchange_info(self, params: Params) -> Any:
        names = symbols_param(self.market, params) or list(self.market.symbols)
        return {
            "timezone": "UTC",
            "serverTime": self.market.now_ms,
            "rateLimits": self._rate_limits(),
            "exchangeFilters": [],
            "symbols": [self._symbol_info(name) for name in names],
        }

    def _rate_limits(self) -> list[dict[str, Any]]:
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": limits.RAW_REQUESTS_LIMIT_5M,
            },
        ]

    def _symbol_info(self, name: str) -> dict[str, Any]:
        s = self.market.symbols[name]
        return {
            "symbol": s.symbol,
            "status": "TRADING",
            "baseAsset": s.base,
            "baseAssetPrecision": 8,
            "quoteAsset": s.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(s.tick),
                    "maxPrice": "1000000.00000000",
                    "tickSize": fmt(s.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(s.step),
                    "maxQty": "90000000000.00000000",
                    "stepSize": fmt(s.step),
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"],
        }

    def trades(self, params: Params) -> Any:
        symbol = symbol_param(self.market, params)
        limit = limit_param(params, 500, limits.TRADES_MAX_LIMIT)
        return [_trade(t) for t in self.market.trades(symbol, limit)]

    def historical_trades(self, params: Params) -> Any:
        """``GET /api/v3/historicalTrades``: ``limit`` trades from ``fromId`` on (the most
        recent without it), in the shape of ``trades``."""
        symbol = symbol_param(self.market, params)
        limit = limit_param(params, 500, limits.TRADES_MAX_LIMIT)
        from_id = int_param(params, "fromId")
        if from_id is None:
            trades = self.market.trades(symbol, limit)
        else:
            trades = self.market.trades_from_id(symbol, from_id, limit)
        return [_trade(t) for t in trades]

    def agg_trades(self, params: Params) -> Any:
        symbol = symbol_param(self.market, params)
        limit = limit_param(params, 500, limits.TRADES_MAX_LIMIT)
        from_id = int_param(params, "fromId")
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        if from_id is not None:
            trades = self.market.trades_from_id(symbol, from_id, limit)
        elif end is not None:
            start = max(0, end - AGG_TRADES_WINDOW_MS) if start is None else start
            trades = self.market.trades_between(symbol, start, end, limit)
        elif start is not None:
            trades = self.market.trades_between(symbol, start, self.market.now_ms, limit)
        else:
            trades = self.market.trades(symbol, limit)
        return [
            {
                "a": t.id,
                "p": fmt(t.price),
                "q": fmt(t.qty),
                "f": t.id,
                "l": t.id,
                "T": t.time_ms,
                "m": t.is_buyer_maker,
                "M": True,
            }
            for t in trades
        ]

    def klines(self, params: Params) -> Any:
        symbol = symbol_param(self.market, params)
        interval = params.get("interval")
        if not interval:
            raise missing("interval")
        if interval not in KLINE_INTERVAL_MINUTES:
            raise ApiError(limits.ERR_BAD_INTERVAL, "Invalid interval.")
        limit = limit_param(params, 500, limits.KLINES_MAX_LIMIT)
        rows = self.market.klines(
            symbol,
            KLINE_INTERVAL_MINUTES[interval] * MINUTE_MS,
            limit,
            int_param(params, "startTime"),
            int_param(params, "endTime"),
        )
        return [
            [o, fmt(op), fmt(hi), fmt(lo), fmt(cl), fmt(vol), c, fmt(qv), n, fmt(tb), fmt(tq), "0"]
            for (o, op, hi, lo, cl, vol, c, qv, n, tb, tq) in rows
        ]

    def depth(self, params: Params) -> Any:
        symbol = symbol_param(self.market, params)
        limit = limit_param(params, 100, limits.DEPTH_MAX_LIMIT)
        update_id, bids, asks = self.market.book(symbol, limit)
        return {
            "lastUpdateId": update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    def ticker_24hr(self, params: Params) -> Any:
        kind = params.get("type", "FULL")
        if kind not in ("FULL", "MINI"):
            raise ApiError(-1139, "Invalid ticker type.")
        names = symbols_param(self.market, params)
        tickers = [self.market.ticker_24hr(n) for n in (names or self.market.symbols)]
        if kind == "MINI":
            tickers = [{k: t[k] for k in MINI_TICKER_FIELDS} for t in tickers]
        return tickers[0] if "symbol" in params else tickers

    def ticker_price(self, params: Params) -> Any:
        names = symbols_param(self.market, params)
        prices = [
            {"symbol": n, "price": fmt(self.market.symbols[n].price)}
            for n in (names or self.market.symbols)
        ]
        return prices[0] if "symbol" in params else prices


def _trade(t: Trade) -> dict[str, Any]:
    """One trade as ``trades`` and ``historicalTrades`` render it."""
    return {
        "id": t.id,
        "price": fmt(t.price),
        "qty": fmt(t.qty),
        "quoteQty": fmt_exact(t.quote_qty),
        "time": t.time_ms,
        "isBuyerMaker": t.is_buyer_maker,
        "isBestMatch": True,
    }
