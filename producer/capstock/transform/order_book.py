"""A local order book kept from a diff-depth stream, by Binance's documented procedure.

Pure (no I/O, no threads): the streaming ingest feeds it the ``<symbol>@depth`` events and,
when it asks for one, a REST depth snapshot; it answers what to do next. The procedure
(web-socket-streams, "How to manage a local order book correctly"):

1. buffer the events, noting the first one's ``U``;
2. fetch a snapshot (``GET /api/v3/depth``);
3. if its ``lastUpdateId`` is below that first ``U``, fetch another;
4. drop the buffered events with ``u <= lastUpdateId``; the first one left must contain
   ``lastUpdateId + 1`` in its ``[U, u]``;
5. the snapshot is the book, its update id ``lastUpdateId``;
6. apply the buffered events, then every new one: one with ``u`` at or below the book's id
   is old (ignored); one with ``U`` above the book's id + 1 means events were missed:
   the book is discarded and the procedure starts again from 1. Quantities are absolute,
   ``"0"`` removes a level (removing one the book lacks is normal); the id becomes ``u``.

Sample event::

    {"e": "depthUpdate", "E": 1700000000100, "s": "BTCUSDT", "U": 157, "u": 160,
     "b": [["65010.00000000", "0.50000000"]], "a": [["65012.00000000", "0.00000000"]]}

The snapshot holds at most ``limit`` levels per side: deeper levels stay unknown until
they change, so keep the limit well above the levels stored.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from capstock.transform.rows import BadRecord, book_levels

MAX_BUFFERED = 10_000
"""Events kept while waiting for a snapshot; older ones are dropped (the snapshot that
follows then fails step 4 and another is fetched)."""

Outcome = Literal["applied", "ignored", "buffered", "gap"]
SnapshotOutcome = Literal["synced", "too_old", "gap"]


@dataclass(frozen=True)
class DepthUpdate:
    """The parts of a ``depthUpdate`` event the book uses."""

    first: int
    last: int
    event_ms: int
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]

    @classmethod
    def parse(cls, raw: Any) -> DepthUpdate:
        try:
            first, last, event_ms = raw["U"], raw["u"], raw["E"]
            bids, asks = raw["b"], raw["a"]
        except (KeyError, TypeError):
            raise BadRecord(f"not a depthUpdate event: {raw!r:.200}") from None
        for value in (first, last, event_ms):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadRecord(f"depthUpdate ids and time must be integers: {raw!r:.200}")
        if last < first:
            raise BadRecord(f"depthUpdate with u < U: {raw!r:.200}")
        return cls(first, last, event_ms, book_levels(bids, "b"), book_levels(asks, "a"))


class LocalBook:
    """One symbol's book (see the module docstring).

    :meth:`on_event` returns ``"buffered"`` while the book waits for a snapshot (fetch one
    if none is on its way), ``"gap"`` when events were missed (the book was discarded:
    fetch a snapshot), ``"applied"`` or ``"ignored"``. :meth:`on_snapshot` returns
    ``"synced"``, or ``"too_old"``/``"gap"`` when another snapshot is needed.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.update_id = 0
        self.synced = False
        self.event_ms: int | None = None
        """The event time of the last event applied (None before any)."""
        self.buffer: deque[DepthUpdate] = deque(maxlen=MAX_BUFFERED)
        self.syncs = 0
        self.gaps = 0
        self.changed = False
        """Something was applied since :meth:`top` was last taken with ``mark_seen``."""

    def on_event(self, event: DepthUpdate) -> Outcome:
        if not self.synced:
            self.buffer.append(event)
            return "buffered"
        if event.last <= self.update_id:
            return "ignored"
        if event.first > self.update_id + 1:
            self.gaps += 1
            self._discard()
            self.buffer.append(event)
            return "gap"
        self._apply(event)
        return "applied"

    def on_snapshot(self, last_update_id: int, bids: list, asks: list) -> SnapshotOutcome:
        """Start from a REST snapshot (``bids``/``asks`` as (price, qty) pairs)."""
        if self.synced:
            return "synced"
        if not self.buffer or last_update_id < self.buffer[0].first:
            return "too_old"  # step 3 (with nothing buffered it cannot be checked yet)
        pending = [e for e in self.buffer if e.last > last_update_id]
        if pending and pending[0].first > last_update_id + 1:
            self.buffer = deque(pending, maxlen=MAX_BUFFERED)
            return "gap"
        self.bids = {p: q for p, q in bids if q != 0}
        self.asks = {p: q for p, q in asks if q != 0}
        self.update_id = last_update_id
        self.synced = True
        self.syncs += 1
        self.changed = True
        self.buffer.clear()
        for event in pending:
            self._apply(event)
        return "synced"

    def _apply(self, event: DepthUpdate) -> None:
        for levels, changes in ((self.bids, event.bids), (self.asks, event.asks)):
            for price, qty in changes:
                if qty == 0:
                    levels.pop(price, None)
                else:
                    levels[price] = qty
        self.update_id = event.last
        self.event_ms = event.event_ms
        self.changed = True

    def _discard(self) -> None:
        self.synced = False
        self.update_id = 0
        self.bids, self.asks = {}, {}
        self.buffer.clear()

    def top(self, levels: int | None = None) -> tuple[int, list, list]:
        """(update id, bids best first, asks best first), ``levels`` per side (all: None)."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        if levels is not None:
            bids, asks = bids[:levels], asks[:levels]
        return self.update_id, bids, asks
