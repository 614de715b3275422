"""The simulated market's past, before the minutes generated at start: made on demand.

A :class:`~capstock.simulator.market.Market` generates trades one by one as time moves,
which is too slow for a day of history (1,440 minutes x 60 trades x 22 symbols). So only
the last :data:`EAGER_HISTORY_MINUTES` are generated that way; the minutes before them are
a :class:`SymbolHistory` per symbol, whose trades are made when a request needs them:

* at start, one draw per minute fixes how many trades it holds (Poisson with the symbol's
  trade rate) and where the price stands at its end (a random walk run *backwards* from
  the price the live market starts at, so the past ends exactly where the present begins);
* a minute's trades come from a generator seeded with (seed, symbol, minute): the same
  minute always has the same trades, whichever request asks first;
* trade ids are consecutive and end right below the first live trade id, so
  ``historicalTrades``, ``aggTrades`` and ``trades`` speak of the same ids.

Prices and quantities are integers of ticks and lot steps until a response needs them, so
a minute costs about a tenth of a millisecond, and nothing but the per-minute counts and
prices is kept for long: a day of 200 symbols is a few megabytes.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MINUTE_MS = 60_000
EAGER_HISTORY_MINUTES = 30
"""Minutes before the start generated trade by trade (the default ``--history-minutes``);
the rest of the history is a :class:`SymbolHistory`."""
STEP_SIGMA = 0.0002
"""Relative standard deviation of the price change per trade (as in the live market)."""
QTY_SIGMA = 1.2
"""Standard deviation of the log of a trade's notional around the symbol's median."""
MINUTES_CACHED = 16
"""Minutes of trades kept made per symbol (the next page of trades starts in the minute the
last one ended in); a candle is made again when asked for again (about 0.1 ms)."""
NORMAL_ABOVE = 30.0
"""Above this mean, trades per minute are drawn from the normal approximation of Poisson."""


@dataclass(frozen=True)
class MinuteTrades:
    """One minute's trades as integers: ids from ``first_id``, times in ms, prices in ticks,
    quantities in lot steps, and whether the buyer was the maker."""

    first_id: int
    times: list[int]
    prices: list[int]
    qtys: list[int]
    makers: list[bool]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: by inversion for small means, else the rounded normal approximation."""
    if mean <= 0:
        return 0
    if mean > NORMAL_ABOVE:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    u = rng.random()
    k, p = 0, math.exp(-mean)
    cumulative = p
    while u > cumulative and p > 0:
        k += 1
        p *= mean / k
        cumulative += p
    return k


class SymbolHistory:
    """The trades of one symbol from ``start_ms`` (a minute boundary) for ``minutes``
    minutes, ending with id ``end_id - 1`` at price ``end_price``.

    ``trade_rate`` is trades per second, ``notional_median`` the median quote value of a
    trade; ``tick`` and ``step`` quantize prices and quantities, as in the live market.
    """

    def __init__(
        self,
        *,
        seed: Any,
        symbol: str,
        start_ms: int,
        minutes: int,
        end_id: int,
        end_price: Decimal,
        tick: Decimal,
        step: Decimal,
        trade_rate: float,
        notional_median: float,
    ) -> None:
        if start_ms % MINUTE_MS or minutes < 0:
            raise ValueError("history must start on a minute and not be negative")
        self.seed = seed
        self.symbol = symbol
        self.start_ms = start_ms
        self.minutes = minutes
        self.end_ms = start_ms + minutes * MINUTE_MS
        self.end_id = end_id
        self.end_price = end_price
        self.tick = tick
        self.step = step
        self.trade_rate = trade_rate
        self.notional_median = notional_median
        self._tick = float(tick)
        self._step = float(step)
        rng = random.Random(f"{seed}:{symbol}:history")
        mean = trade_rate * 60
        counts = [poisson(rng, mean) for _ in range(minutes)]
        self.offsets = [0] * (minutes + 1)
        """``offsets[k]``: trades before minute ``k``; ``offsets[-1]`` is the total."""
        for k, n in enumerate(counts):
            self.offsets[k + 1] = self.offsets[k] + n
        self.first_id = end_id - self.offsets[-1]
        # Log price at each minute boundary, walked back from the price the present starts at.
        self.anchors = [0.0] * (minutes + 1)
        self.anchors[minutes] = math.log(end_price)
        for k in range(minutes - 1, -1, -1):
            self.anchors[k] = self.anchors[k + 1] - rng.gauss(0, STEP_SIGMA * math.sqrt(counts[k]))
        self._minutes: OrderedDict[int, MinuteTrades] = OrderedDict()

    @property
    def last_id(self) -> int:
        return self.end_id - 1

    @property
    def trade_count(self) -> int:
        return self.offsets[-1]

    def count(self, k: int) -> int:
        return self.offsets[k + 1] - self.offsets[k]

    # -- one minute --------------------------------------------------------------------

    def minute(self, k: int) -> MinuteTrades:
        """The trades of minute ``k`` (0 = the first), made once and cached for a while."""
        cached = self._minutes.get(k)
        if cached is not None:
            self._minutes.move_to_end(k)
            return cached
        made = self._make(k)
        self._minutes[k] = made
        if len(self._minutes) > MINUTES_CACHED:
            self._minutes.popitem(last=False)
        return made

    def _make(self, k: int) -> MinuteTrades:
        n = self.count(k)
        first_id = self.first_id + self.offsets[k]
        if n == 0:
            return MinuteTrades(first_id, [], [], [], [])
        base = self.start_ms + k * MINUTE_MS
        rng = random.Random(f"{self.seed}:{self.symbol}:{base}")
        times = sorted(base + rng.randrange(MINUTE_MS) for _ in range(n))
        steps = [rng.gauss(0, STEP_SIGMA) for _ in range(n)]
        # A bridge: the walk ends exactly on the next minute's anchor.
        drift = (self.anchors[k + 1] - self.anchors[k] - sum(steps)) / n
        x = self.anchors[k]
        prices, qtys, makers = [], [], []
        tick, step, median = self._tick, self._step, self.notional_median
        for s in steps:
            x += s + drift
            ticks = max(1, round(math.exp(x) / tick))
            notional = median * math.exp(rng.gauss(0, QTY_SIGMA))
            prices.append(ticks)
            qtys.append(max(1, round(notional / (ticks * tick) / step)))
            makers.append(rng.random() < 0.5)
        return MinuteTrades(first_id, times, prices, qtys, makers)

    def candle(self, minute_ms: int) -> tuple | None:
        """The one-minute candle opening at ``minute_ms`` as (open, high, low, close,
        volume, quote_volume, count, taker_buy_base, taker_buy_quote), exact decimals;
        None outside the history or for a minute without trades."""
        k = (minute_ms - self.start_ms) // MINUTE_MS
        if minute_ms % MINUTE_MS or not 0 <= k < self.minutes:
            return None
        m = self.minute(k)
        if not m.prices:
            return None
        volume = quote = taker_base = taker_quote = 0
        for price, qty, maker in zip(m.prices, m.qtys, m.makers, strict=True):
            volume += qty
            quote += price * qty
            if not maker:
                taker_base += qty
                taker_quote += price * qty
        tick, step = self.tick, self.step
        return (
            m.prices[0] * tick,
            max(m.prices) * tick,
            min(m.prices) * tick,
            m.prices[-1] * tick,
            volume * step,
            quote * (tick * step),
            len(m.prices),
            taker_base * step,
            taker_quote * (tick * step),
        )

    def close_before(self, minute_ms: int) -> Decimal | None:
        """The close of the last minute with trades before ``minute_ms``; None if none."""
        k = min(self.minutes, (minute_ms - self.start_ms) // MINUTE_MS) - 1
        while k >= 0:
            if self.count(k):
                candle = self.candle(self.start_ms + k * MINUTE_MS)
                return candle[3] if candle else None
            k -= 1
        return None

    # -- trades ------------------------------------------------------------------------

    def trades_from_id(self, from_id: int, limit: int) -> list[tuple]:
        """Up to ``limit`` trades with id >= ``from_id``, oldest first, as
        (id, price, qty, time_ms, is_buyer_maker)."""
        if limit <= 0 or from_id > self.last_id:
            return []
        index = max(0, from_id - self.first_id)
        k = bisect.bisect_right(self.offsets, index) - 1
        return self._collect(k, lambda i, _t: i >= from_id, limit)

    def trades_between(self, start_ms: int, end_ms: int, limit: int) -> list[tuple]:
        """Up to ``limit`` trades with ``start_ms <= time <= end_ms``, oldest first."""
        if limit <= 0 or end_ms < self.start_ms or start_ms >= self.end_ms:
            return []
        k = max(0, (start_ms - self.start_ms) // MINUTE_MS)
        last = min(self.minutes - 1, (end_ms - self.start_ms) // MINUTE_MS)
        return self._collect(k, lambda _i, t: start_ms <= t <= end_ms, limit, last)

    def _collect(self, k: int, keep, limit: int, last: int | None = None) -> list[tuple]:
        out: list[tuple] = []
        last = self.minutes - 1 if last is None else last
        tick, step = self.tick, self.step
        while k <= last and len(out) < limit:
            m = self.minute(k)
            for j, time_ms in enumerate(m.times):
                trade_id = m.first_id + j
                if keep(trade_id, time_ms):
                    out.append(
                        (trade_id, m.prices[j] * tick, m.qtys[j] * step, time_ms, m.makers[j])
                    )
                    if len(out) == limit:
                        break
            k += 1
        return out

    # -- across restarts ---------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """What :meth:`from_state` needs besides the symbol's own (saved) settings."""
        return {
            "start_ms": self.start_ms,
            "minutes": self.minutes,
            "end_id": self.end_id,
            "end_price": str(self.end_price),
        }
