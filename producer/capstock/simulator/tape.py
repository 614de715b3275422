"""Every live trade of one symbol, compactly, for lookups by id and by time.

``GET /api/v3/trades`` needs only the last 1,000 trades (the market keeps those as
objects), but ``historicalTrades`` and ``aggTrades`` page back by id or time through
everything since the simulator started. A :class:`TradeTape` keeps that as integer
arrays (id, time, price in ticks, quantity in lot steps, maker flag): about 33 bytes a
trade, at most :data:`TAPE_TRADES` per symbol (the oldest go first). It is not saved
across restarts: a continued market answers from its last 1,000 trades and its history.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Iterator
from decimal import Decimal

TAPE_TRADES = 50_000
"""Live trades kept per symbol (14 hours at one trade a second; 1.6 MB)."""
CHUNK = 4096


class _Chunk:
    __slots__ = ("ids", "makers", "prices", "qtys", "times")

    def __init__(self) -> None:
        self.ids = array("q")
        self.times = array("q")
        self.prices = array("q")
        self.qtys = array("q")
        self.makers = bytearray()


class TradeTape:
    """Appended in id order; read as (id, price, qty, time_ms, is_buyer_maker) tuples."""

    def __init__(self, tick: Decimal, step: Decimal, capacity: int = TAPE_TRADES) -> None:
        self.tick = tick
        self.step = step
        self.capacity = capacity
        self._chunks: list[_Chunk] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def first_id(self) -> int | None:
        return self._chunks[0].ids[0] if self._chunks else None

    def append(
        self, trade_id: int, price: Decimal, qty: Decimal, time_ms: int, maker: bool
    ) -> None:
        if not self._chunks or len(self._chunks[-1].ids) >= CHUNK:
            if self._chunks and self._size >= self.capacity:
                self._size -= len(self._chunks.pop(0).ids)
            self._chunks.append(_Chunk())
        chunk = self._chunks[-1]
        chunk.ids.append(trade_id)
        chunk.times.append(time_ms)
        chunk.prices.append(int(price / self.tick))
        chunk.qtys.append(int(qty / self.step))
        chunk.makers.append(1 if maker else 0)
        self._size += 1

    def _from(self, start: Callable[[_Chunk], int], first_chunk: int) -> Iterator[tuple]:
        tick, step = self.tick, self.step
        for n, chunk in enumerate(self._chunks[first_chunk:]):
            i = start(chunk) if n == 0 else 0
            for j in range(i, len(chunk.ids)):
                yield (
                    chunk.ids[j],
                    chunk.prices[j] * tick,
                    chunk.qtys[j] * step,
                    chunk.times[j],
                    bool(chunk.makers[j]),
                )

    def from_id(self, from_id: int, limit: int) -> list[tuple]:
        """Up to ``limit`` trades with id >= ``from_id``, oldest first."""
        firsts = [c.ids[0] for c in self._chunks]
        first_chunk = max(0, bisect.bisect_right(firsts, from_id) - 1)
        out = []
        for trade in self._from(lambda c: bisect.bisect_left(c.ids, from_id), first_chunk):
            if len(out) >= limit:
                break
            out.append(trade)
        return out

    def between(self, start_ms: int, end_ms: int, limit: int) -> list[tuple]:
        """Up to ``limit`` trades with ``start_ms <= time <= end_ms``, oldest first."""
        firsts = [c.times[0] for c in self._chunks]
        first_chunk = max(0, bisect.bisect_left(firsts, start_ms) - 1)
        out = []
        for trade in self._from(lambda c: bisect.bisect_left(c.times, start_ms), first_chunk):
            if len(out) >= limit or trade[3] > end_ms:
                break
            out.append(trade)
        return out
