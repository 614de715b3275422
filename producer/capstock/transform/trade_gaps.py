"""Trade-id gap accounting: which fetched trades are new, and which ids were never fetched.

The exchange numbers each symbol's trades consecutively, and ``GET /api/v3/trades`` answers
the newest ``JOB_TRADES_LIMIT`` of them. The trades job remembers the highest id it stored
per symbol; when more trades happened between two polls than one answer holds, the ids in
between are missing: a gap. A gap can also lie inside one answer.

Pure (no I/O, no logging), so the job reads fetch → parse → account → write, and the
accounting is tested on plain integers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Gap:
    """The ids strictly between ``last_seen`` and ``next``, none of them fetched."""

    last_seen: int
    next: int

    @property
    def missing(self) -> int:
        return self.next - self.last_seen - 1


@dataclass(frozen=True)
class TradeIds:
    """What one answer adds to what was seen before."""

    new: tuple[int, ...]
    """The ids above the last one seen, ascending, each once: the trades to store."""
    gaps: tuple[Gap, ...]
    """Missing runs of ids, in order: before the first new id, and between new ids."""
    last: int | None
    """The highest id seen once this answer is stored (the earlier one if nothing is new)."""

    @property
    def missing(self) -> int:
        """How many ids the gaps leave out."""
        return sum(gap.missing for gap in self.gaps)


def account_trade_ids(last_seen: int | None, fetched: Iterable[int]) -> TradeIds:
    """Split one answer's trade ids into new ids and gaps.

    ``last_seen`` is the highest id already stored (``None``: nothing stored yet for the
    symbol, so no gap can be seen before the first id). Ids at or below it were stored
    before; an id repeated in the answer counts once.

    >>> account_trade_ids(100, [99, 100, 101, 102, 105])
    TradeIds(new=(101, 102, 105), gaps=(Gap(last_seen=102, next=105),), last=105)
    """
    new = sorted({i for i in fetched if last_seen is None or i > last_seen})
    gaps = []
    previous = last_seen
    for trade_id in new:
        if previous is not None and trade_id != previous + 1:
            gaps.append(Gap(previous, trade_id))
        previous = trade_id
    return TradeIds(tuple(new), tuple(gaps), previous)


@dataclass(frozen=True)
class Hole:
    """Trade ids ``first..last`` (both included) the stream did not deliver: to be filled
    from REST by id."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def gap(self) -> Gap:
        """The same ids as a :class:`Gap` (how the polling job counts and logs them)."""
        return Gap(self.first - 1, self.last + 1)


class TradeIdLedger:
    """Which trade ids of one symbol are accounted for, for the streaming ingest.

    Everything up to :attr:`high` is accounted for except what is left of the open
    holes: an id at or below ``high`` outside them was already taken (a duplicate: the
    stream delivered it twice, e.g. while two connections overlap at a rollover). ``high``
    starts at the highest id stored (a restart resumes there) or, with nothing stored, at
    the first id seen, where the capture begins.

    A hole is known by its first id for as long as it is open, and is filled from its low
    end: :meth:`filled` moves its filled mark up when a page of ids that continues it is
    stored, and closes it once the mark reaches its last id. A page that does not continue
    it (one before it failed) moves nothing, so the next fill starts where the stored ids
    end.

    Pure and not thread-safe: the caller holds a lock.

    >>> ledger = TradeIdLedger(100)
    >>> ledger.accept(101), ledger.accept(101), ledger.accept(105)
    ((True, None), (False, None), (True, Hole(first=102, last=104)))
    >>> ledger.filled(102, 102, 103), ledger.holes
    (False, [Hole(first=104, last=104)])
    >>> ledger.filled(102, 104, 104), ledger.holes
    (True, [])
    """

    def __init__(self, high: int | None) -> None:
        self.high = high
        self._holes: dict[int, list[int]] = {}
        """first id → [highest id filled so far (first - 1 at the start), last id]"""

    @property
    def holes(self) -> list[Hole]:
        """What is left of the open holes, lowest first."""
        return [Hole(done + 1, last) for done, last in sorted(self._holes.values())]

    @property
    def missing(self) -> int:
        """Ids in the open holes."""
        return sum(last - done for done, last in self._holes.values())

    def accept(self, trade_id: int) -> tuple[bool, Hole | None]:
        """Account for one streamed id: (whether it is new, the hole it reveals if any).

        An id inside an open hole is new (the fill fetches it again; the table ignores the
        second copy); the hole stays as it is, so nothing is marked filled early."""
        high = self.high
        if high is None or trade_id == high + 1:
            self.high = trade_id
            return True, None
        if trade_id > high:
            hole = Hole(high + 1, trade_id - 1)
            self._holes[hole.first] = [hole.first - 1, hole.last]
            self.high = trade_id
            return True, hole
        inside = any(done < trade_id <= last for done, last in self._holes.values())
        return inside, None

    def reopen(self, hole: Hole) -> None:
        """Take over a hole found earlier (by a run that stopped before filling it)."""
        if self.high is None or hole.last > self.high:
            raise ValueError(f"{hole} is not below the highest id {self.high}")
        self._holes.setdefault(hole.first, [hole.first - 1, hole.last])

    def remaining(self, first: int) -> Hole | None:
        """What is left of the hole that started at ``first``; None once it is closed."""
        entry = self._holes.get(first)
        return None if entry is None else Hole(entry[0] + 1, entry[1])

    def filled(self, first: int, page_first: int, through: int) -> bool:
        """Ids ``page_first..through`` of the hole that started at ``first`` are stored (or
        the exchange has none of them). True when that closed the hole."""
        entry = self._holes.get(first)
        if entry is None or page_first > entry[0] + 1:
            return False
        entry[0] = max(entry[0], through)
        if entry[0] >= entry[1]:
            del self._holes[first]
            return True
        return False
