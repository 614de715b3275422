"""Binance spot REST rate-limit facts, shared by the producer and the simulator.

Source: the spot API docs' market-data and limits pages (see ``binance-api.md``).
Weights are per request and per IP; the limit is a fixed one-minute window.
"""

from __future__ import annotations

REQUEST_WEIGHT_LIMIT_1M = 6000
"""``REQUEST_WEIGHT`` per minute, as listed in exchangeInfo ``rateLimits``."""
WEIGHT_SHARE_MAX = 0.9
"""The largest share of the limit the producer may plan to use (``BINANCE_WEIGHT_SHARE``);
the rest is headroom for other clients on the same IP. Used weight above it is red on the
pipeline-health dashboard."""
WEIGHT_SHARE_WARN = 0.6
"""Used weight above this share of the limit is a warning (orange) on the dashboard: more
than the producer's default budget of half the limit."""
RAW_REQUESTS_LIMIT_5M = 61000
WEIGHT_WINDOW_SECONDS = 60

USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
USED_WEIGHT_HEADER_BARE = "x-mbx-used-weight"
RETRY_AFTER_HEADER = "Retry-After"

WEIGHT_PING = 1
WEIGHT_TIME = 1
WEIGHT_EXCHANGE_INFO = 20
WEIGHT_TRADES = 25
WEIGHT_HISTORICAL_TRADES = 25
"""``GET /api/v3/historicalTrades`` (trades by id). Not served by data-api.binance.vision."""
WEIGHT_AGG_TRADES = 4
WEIGHT_KLINES = 2

DEPTH_MAX_LIMIT = 5000
TRADES_MAX_LIMIT = 1000
KLINES_MAX_LIMIT = 1000

ERR_TOO_MANY_REQUESTS = -1003
ERR_BAD_INTERVAL = -1120
ERR_BAD_SYMBOL = -1121
ERR_ILLEGAL_CHARS = -1100
ERR_MANDATORY_PARAM = -1102
ERR_BAD_COMBO = -1128
ERR_INVALID_PARAMETER = -1130


def depth_weight(limit: int) -> int:
    """Weight of ``GET /api/v3/depth`` for a ``limit`` (values above 5000 count as 5000)."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def ticker_24hr_weight(symbol_count: int | None) -> int:
    """Weight of ``GET /api/v3/ticker/24hr``: ``None`` means no symbol parameter (all symbols)."""
    if symbol_count is None:
        return 80
    if symbol_count <= 20:
        return 2
    if symbol_count <= 100:
        return 40
    return 80


def ticker_price_weight(single_symbol: bool) -> int:
    """Weight of ``GET /api/v3/ticker/price``: 2 with ``symbol``, 4 with ``symbols`` or none."""
    return 2 if single_symbol else 4
