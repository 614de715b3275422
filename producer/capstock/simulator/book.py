"""A symbol's order book that changes with each update id, so a diff stream can replay it.

The market hands out update ids as it trades (one to three per trade, see
:meth:`capstock.simulator.market.Market._trade`); :meth:`OrderBook.sync` turns each new
id into one book event, made around the last trade price, touching one level or more:

* levels on the wrong side of the last price (bids above it, asks at or below it) are
  swept away together, as a trade through them would, and the other side is quoted one
  grid step from the price;
* a side that has shrunk below :data:`BOOK_LEVELS` - :data:`LEVEL_SLACK` is refilled
  beyond its worst level, one that has grown above the target loses its worst levels;
* otherwise one random level near the top changes quantity, appears (more often, so the
  touch stays near the price) or disappears.

Levels sit on a grid of about :data:`GRID_FRACTION` of the price (whole ticks, at least
one), so a book of :data:`BOOK_LEVELS` levels spans a few percent of the price whatever
the tick. The book never crosses (best bid < best ask) and never holds more than
:data:`BOOK_LEVELS` + :data:`LEVEL_SLACK` levels a side, fewer than the 5000 a REST
snapshot can return: a snapshot plus every later change is the whole book, which is what
Binance's local-order-book procedure needs to reproduce it exactly.

While :attr:`OrderBook.log` is a list (the stream feed sets it when someone subscribes to
the symbol's depth), every change is appended to it as a :class:`Change`; ``None`` (the
default) records nothing. Books are not saved across restarts: a continued market seeds a
fresh book at its saved update id.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from decimal import Decimal

BOOK_LEVELS = 1000
"""Target levels per side."""
LEVEL_SLACK = 50
"""How far a side may drift from :data:`BOOK_LEVELS` before it is trimmed or refilled."""
TOP_LEVELS = 20
"""Random changes touch the best levels, about this deep."""
GRID_FRACTION = Decimal("0.00001")
"""Level spacing unit as a fraction of the price (rounded to whole ticks, at least one)."""

BID = "b"
ASK = "a"


@dataclass(frozen=True)
class Change:
    """Level ``price`` of ``side`` (``"b"`` or ``"a"``) is now ``qty`` (0: removed) as of
    ``update_id``."""

    update_id: int
    side: str
    price: Decimal
    qty: Decimal


class OrderBook:
    """Bids and asks of one symbol as of :attr:`update_id`."""

    def __init__(
        self,
        *,
        seed: int,
        symbol: str,
        price: Decimal,
        tick: Decimal,
        step: Decimal,
        notional_median: float,
        update_id: int,
    ) -> None:
        self.tick = tick
        self.step = step
        self.notional_median = notional_median
        self.update_id = update_id
        self.rng = random.Random(f"book:{seed}:{symbol}:{update_id}")
        self.levels: dict[str, dict[Decimal, Decimal]] = {BID: {}, ASK: {}}
        self._prices: dict[str, list[Decimal]] = {BID: [], ASK: []}  # ascending
        self.log: list[Change] | None = None
        self._seed_levels(price)

    def _grid(self, price: Decimal) -> Decimal:
        return max(self.tick, (price * GRID_FRACTION // self.tick) * self.tick)

    def _seed_levels(self, price: Decimal) -> None:
        rng, grid = self.rng, self._grid(price)
        level = price
        for _ in range(BOOK_LEVELS):
            if level <= 0:
                break
            self._set(BID, level, self._qty(price))
            level -= grid * rng.randrange(1, 4)
        level = price + grid * rng.randrange(1, 4)
        for _ in range(BOOK_LEVELS):
            self._set(ASK, level, self._qty(price))
            level += grid * rng.randrange(1, 4)

    # -- reading ---------------------------------------------------------------------------

    def best(self, side: str) -> Decimal | None:
        prices = self._prices[side]
        if not prices:
            return None
        return prices[-1] if side == BID else prices[0]

    def side(self, side: str, limit: int | None = None) -> list[tuple[Decimal, Decimal]]:
        """(price, qty) best first, at most ``limit`` levels (all without one)."""
        prices = self._prices[side]
        ordered = reversed(prices) if side == BID else iter(prices)
        count = len(prices) if limit is None else min(limit, len(prices))
        qty = self.levels[side]
        return [(p, qty[p]) for p, _ in zip(ordered, range(count), strict=False)]

    def top(self, limit: int) -> tuple[int, list[tuple], list[tuple]]:
        """(update id, bids best first, asks best first), ``limit`` levels a side at most."""
        return self.update_id, self.side(BID, limit), self.side(ASK, limit)

    # -- changing --------------------------------------------------------------------------

    def sync(self, update_id: int, price: Decimal) -> None:
        """One book event for each update id after :attr:`update_id` up to ``update_id``."""
        for uid in range(self.update_id + 1, update_id + 1):
            for side, level, qty in self._event(price):
                self._set(side, level, qty)
                if self.log is not None:
                    self.log.append(Change(uid, side, level, qty))
            self.update_id = uid

    def _event(self, price: Decimal) -> list[tuple[str, Decimal, Decimal]]:
        """The level changes of one update id (applied in order)."""
        swept = self._sweep(price)
        if swept:
            return swept
        rng = self.rng
        side = BID if rng.random() < 0.5 else ASK
        count = len(self._prices[side])
        if count < BOOK_LEVELS - LEVEL_SLACK:
            refill = self._refill(side, price, BOOK_LEVELS - count)
            if refill:
                return refill
        if count > BOOK_LEVELS + LEVEL_SLACK:
            worst = self._prices[side]
            trimmed = worst[: count - BOOK_LEVELS] if side == BID else worst[BOOK_LEVELS:]
            return [(side, level, Decimal(0)) for level in trimmed]
        roll = rng.random()
        if roll < 0.2 and count > 1:
            return [(side, self._near_top(side), Decimal(0))]
        if roll < 0.65:
            fresh = self._new_price(side, price)
            if fresh is not None:
                return [(side, fresh, self._qty(price))]
        return [(side, self._near_top(side), self._qty(price))]

    def _sweep(self, price: Decimal) -> list[tuple[str, Decimal, Decimal]]:
        """Remove bids above ``price`` and asks at or below it, and quote the other side
        one grid step from the price (as market makers follow a move)."""
        bids, asks = self._prices[BID], self._prices[ASK]
        crossed_bids = bids[bisect.bisect_right(bids, price) :]
        crossed_asks = asks[: bisect.bisect_right(asks, price)]
        if not crossed_bids and not crossed_asks:
            return []
        grid = self._grid(price)
        changes = [(BID, level, Decimal(0)) for level in crossed_bids]
        changes += [(ASK, level, Decimal(0)) for level in crossed_asks]
        if crossed_bids or not bids:
            changes.append((ASK, price + grid, self._qty(price)))
        if crossed_asks or not asks:
            changes.append((BID, max(self.tick, price - grid), self._qty(price)))
        return changes

    def _refill(self, side: str, price: Decimal, count: int) -> list[tuple[str, Decimal, Decimal]]:
        """Up to ``count`` new levels beyond the side's worst one (bids stop above zero,
        so a sub-cent coin's bid side may stay short)."""
        grid = self._grid(price)
        level = self._worst(side)
        changes = []
        for _ in range(count):
            gap = grid * self.rng.randrange(1, 4)
            level = level - gap if side == BID else level + gap
            if level <= 0:
                break
            changes.append((side, level, self._qty(price)))
        return changes

    def _near_top(self, side: str) -> Decimal:
        prices = self._prices[side]
        depth = min(len(prices) - 1, int(self.rng.expovariate(1 / (TOP_LEVELS / 4))))
        return prices[-1 - depth] if side == BID else prices[depth]

    def _worst(self, side: str) -> Decimal:
        prices = self._prices[side]
        return prices[0] if side == BID else prices[-1]

    def _new_price(self, side: str, price: Decimal) -> Decimal | None:
        """A level near the last trade price that the side lacks and that keeps the book
        uncrossed (bids at or below the price, asks above it), or None."""
        offset = self._grid(price) * int(self.rng.expovariate(1 / 3))
        level = price - offset if side == BID else price + self.tick + offset
        other = self.best(ASK if side == BID else BID)
        if level <= 0 or level in self.levels[side]:
            return None
        if other is not None and (level >= other if side == BID else level <= other):
            return None
        return level

    def _qty(self, price: Decimal) -> Decimal:
        notional = self.notional_median * math.exp(self.rng.gauss(1.0, 1.0))
        return max(self.step, (Decimal(str(round(notional, 6))) / price).quantize(self.step))

    def _set(self, side: str, level: Decimal, qty: Decimal) -> None:
        levels, prices = self.levels[side], self._prices[side]
        if qty == 0:
            if levels.pop(level, None) is not None:
                del prices[bisect.bisect_left(prices, level)]
            return
        if level not in levels:
            bisect.insort(prices, level)
        levels[level] = qty
