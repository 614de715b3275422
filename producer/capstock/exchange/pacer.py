"""Request-weight pacing: stay under a share of Binance's per-minute weight limit."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from capstock.backoff import Sleeper
from capstock.exchange.limits import WEIGHT_WINDOW_SECONDS

WINDOW_ROLLOVER_MARGIN_SECONDS = 1.0
"""Wait this long past a minute boundary, so a slightly slow local clock cannot make us
spend the next window's budget while the server still counts the old one."""
BURST_SECONDS = 10.0
"""The token bucket holds this many seconds of budget: short bursts, then an even pace."""


class WeightPacer:
    """Keeps the IP's request weight under ``budget`` per one-minute window.

    Two rules, applied before every request of weight ``w``:

    1. *Pace*: a token bucket refilled at ``budget / 60`` per second (holding at most
       :data:`BURST_SECONDS` worth) spreads requests over the minute instead of spending
       the budget in the first second.
    2. *Respect the server's count*: the weight used in the current window is taken from
       ``X-MBX-USED-WEIGHT-1M`` after each response (it includes other clients on the same
       IP) and counted locally between responses; if ``used + w`` would exceed the budget,
       wait for the next window.

    The window is the wall-clock minute (Binance's fixed one-minute interval). ``clock`` and
    ``sleeper`` are injectable so tests run on a fake clock.
    """

    def __init__(
        self,
        budget: int,
        *,
        sleeper: Sleeper,
        clock: Callable[[], float] = time.time,
        burst_seconds: float = BURST_SECONDS,
    ) -> None:
        if budget <= 0:
            raise ValueError("budget must be positive")
        self.budget = budget
        self.rate = budget / WEIGHT_WINDOW_SECONDS
        self.capacity = self.rate * burst_seconds
        self._sleeper = sleeper
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._tokens = self.capacity
        self._refilled_at = now
        self._window = self._window_of(now)
        self._used = 0
        self.last_server_used: int | None = None
        self.waited_seconds = 0.0

    @staticmethod
    def _window_of(t: float) -> int:
        return math.floor(t / WEIGHT_WINDOW_SECONDS)

    def _roll(self, now: float) -> None:
        window = self._window_of(now)
        if window != self._window:
            self._window = window
            self._used = 0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now

    def _wait(self, seconds: float) -> None:
        self.waited_seconds += seconds
        self._sleeper.sleep(seconds)

    @property
    def used(self) -> int:
        """Weight used in the current window as far as we know."""
        with self._lock:
            self._roll(self._clock())
            return self._used

    def acquire(self, weight: int) -> None:
        """Block until a request of ``weight`` fits the budget, then count it."""
        with self._lock:
            now = self._clock()
            self._roll(now)
            if self._used + weight > self.budget:
                next_window = (self._window + 1) * WEIGHT_WINDOW_SECONDS
                self._wait(next_window - now + WINDOW_ROLLOVER_MARGIN_SECONDS)
                now = self._clock()
                self._roll(now)
            self._refill(now)
            if self._tokens < weight:
                self._wait((weight - self._tokens) / self.rate)
                now = self._clock()
                self._roll(now)
                self._refill(now)
            self._tokens -= weight
            self._used += weight

    def refund(self, weight: int) -> None:
        """Give back the weight of a request that never reached the exchange (no
        connection): it cost the server nothing, so it must not cost the budget."""
        with self._lock:
            self._roll(self._clock())
            self._used = max(0, self._used - weight)
            self._tokens = min(self.capacity, self._tokens + weight)

    def observe(self, used_weight: int | None) -> None:
        """Record the server's ``X-MBX-USED-WEIGHT-1M`` from a response (None if absent)."""
        if used_weight is None:
            return
        with self._lock:
            self._roll(self._clock())
            self.last_server_used = used_weight
            self._used = used_weight
