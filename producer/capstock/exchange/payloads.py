"""Binance stream payload facts, shared by the producer and the simulator.

Source: the websocket market-streams page (``binance-api.md`` §4).
"""

from __future__ import annotations

TICKER_STREAM_KEYS = (
    ("s", "symbol"),
    ("p", "priceChange"),
    ("P", "priceChangePercent"),
    ("w", "weightedAvgPrice"),
    ("x", "prevClosePrice"),
    ("c", "lastPrice"),
    ("Q", "lastQty"),
    ("b", "bidPrice"),
    ("B", "bidQty"),
    ("a", "askPrice"),
    ("A", "askQty"),
    ("o", "openPrice"),
    ("h", "highPrice"),
    ("l", "lowPrice"),
    ("v", "volume"),
    ("q", "quoteVolume"),
    ("O", "openTime"),
    ("C", "closeTime"),
    ("F", "firstId"),
    ("L", "lastId"),
    ("n", "count"),
)
"""Key of a ``<symbol>@ticker`` event → the REST ``ticker/24hr`` field it carries."""
