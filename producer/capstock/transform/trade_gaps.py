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
