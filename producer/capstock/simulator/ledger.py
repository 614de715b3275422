"""Request weight: what each request costs and how much of the minute's budget is used.

The facts (weights per endpoint, the 6000-per-minute limit, the window length) are the
named constants of :mod:`capstock.exchange.limits`, shared with the producer's pacer.
Used weight is counted in fixed windows of :data:`~capstock.exchange.limits.WEIGHT_WINDOW_SECONDS`
on the simulator's clock. A request over the limit is refused with 429 and the seconds
to the next window; more than ``ban_after_429s`` refusals in one window ban the IP for
``ban_seconds`` (418). Every request is counted, refused ones and banned ones included,
as the exchange does. The simulator has one IP's worth of budget, shared by all clients.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from capstock.exchange import limits

BAN_AFTER_429S = 3
"""429s in one window that are tolerated; the next one bans (the exchange does not say)."""

FIXED_WEIGHTS: Mapping[str, int] = {
    "ping": limits.WEIGHT_PING,
    "time": limits.WEIGHT_TIME,
    "exchangeInfo": limits.WEIGHT_EXCHANGE_INFO,
    "klines": limits.WEIGHT_KLINES,
    "trades": limits.WEIGHT_TRADES,
    "historicalTrades": limits.WEIGHT_HISTORICAL_TRADES,
    "aggTrades": limits.WEIGHT_AGG_TRADES,
}
"""Endpoints whose weight does not depend on the parameters; any other path costs 1."""

Refusal = Literal["429", "418"]


def _symbol_count(params: Mapping[str, str]) -> int | None:
    """How many symbols a ``ticker/24hr`` request asks for; None means all of them.

    ``symbol`` counts 1; a ``symbols`` value that is not a JSON array counts 1 (the
    endpoint rejects it, the weight is still charged).
    """
    if "symbol" in params:
        return 1
    if "symbols" not in params:
        return None
    try:
        return max(1, len(json.loads(params["symbols"])))
    except (ValueError, TypeError):
        return 1


def _depth_limit(params: Mapping[str, str]) -> int:
    try:
        return min(int(params.get("limit", 100)), limits.DEPTH_MAX_LIMIT)
    except ValueError:
        return 100


def request_weight(endpoint: str, params: Mapping[str, str]) -> int:
    """The weight of one ``GET /api/v3/<endpoint>`` with these query parameters.

    >>> request_weight("depth", {"symbol": "BTCUSDT", "limit": "1000"})
    50
    >>> request_weight("ticker/24hr", {})
    80
    """
    if endpoint == "depth":
        return limits.depth_weight(_depth_limit(params))
    if endpoint == "ticker/24hr":
        return limits.ticker_24hr_weight(_symbol_count(params))
    if endpoint == "ticker/price":
        return limits.ticker_price_weight("symbol" in params)
    return FIXED_WEIGHTS.get(endpoint, 1)


@dataclass(frozen=True)
class Charge:
    """What counting one request gave: the window's used weight (this request included)
    and, for a refused request, the status and the ``Retry-After`` seconds."""

    used: int
    refusal: Refusal | None = None
    retry_after: int = 0
    banned_until: float = 0.0
    """End of the ban (seconds since the epoch) when ``refusal`` is 418."""


class WeightLedger:
    """Used request weight per fixed window, with 429 refusals and 418 bans. Thread-safe."""

    def __init__(
        self,
        limit: int,
        clock: Callable[[], float],
        *,
        ban_after_429s: int = BAN_AFTER_429S,
        ban_seconds: int,
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.ban_after_429s = ban_after_429s
        self.ban_seconds = ban_seconds
        self._windows: dict[int, int] = {}
        self._rejections: dict[int, int] = {}
        self._banned_until = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def _window(now: float) -> int:
        return math.floor(now / limits.WEIGHT_WINDOW_SECONDS)

    def charge(self, weight: int) -> Charge:
        """Count a request of ``weight`` and say whether it is served."""
        with self._lock:
            now = self.clock()
            window = self._window(now)
            used = self._windows.get(window, 0) + weight
            self._windows[window] = used
            if now < self._banned_until:
                return self._ban(used, math.ceil(self._banned_until - now))
            if used <= self.limit:
                return Charge(used)
            self._rejections[window] = self._rejections.get(window, 0) + 1
            if self._rejections[window] > self.ban_after_429s:
                self._banned_until = now + self.ban_seconds
                return self._ban(used, self.ban_seconds)
            next_window = (window + 1) * limits.WEIGHT_WINDOW_SECONDS
            return Charge(used, "429", max(1, math.ceil(next_window - now)))

    def _ban(self, used: int, retry_after: int) -> Charge:
        return Charge(used, "418", retry_after, self._banned_until)

    def used(self) -> int:
        """Weight used in the current window."""
        with self._lock:
            return self._windows.get(self._window(self.clock()), 0)

    def max_used(self) -> int:
        """The most weight any window used so far."""
        with self._lock:
            return max(self._windows.values(), default=0)

    def by_window(self) -> dict[int, int]:
        """Used weight per window, keyed by the window's start (seconds since the epoch)."""
        with self._lock:
            return {
                window * limits.WEIGHT_WINDOW_SECONDS: used
                for window, used in sorted(self._windows.items())
            }

    def reset(self) -> None:
        """Forget used weight, refusals and bans."""
        with self._lock:
            self._windows.clear()
            self._rejections.clear()
            self._banned_until = 0.0
