"""Time for tests: a settable clock and a sleeper that records waits instead of spending them.

Both stand in for :mod:`capstock.backoff`'s real ones wherever a component takes a
``clock`` (seconds since the epoch) or a ``sleeper``; pass the same :class:`FakeClock` to
both so that every recorded wait moves the clock forward.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from capstock.backoff import Interrupted, Sleeper


@dataclass
class FakeClock:
    """A settable clock (seconds since the epoch) for the pacer and the simulator in tests."""

    now: float = 1_700_000_000.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class RecordingSleeper(Sleeper):
    """Records each wait in :attr:`waits` and advances ``clock`` (if any) instead of waiting.

    Like the real sleeper, :meth:`sleep` raises :class:`Interrupted` once stopped and
    :meth:`sleep_through` waits (here: records) even then.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        if self.stopped:
            raise Interrupted()
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)

    def wait(self, seconds: float) -> bool:
        if self.stopped:
            return True
        self.sleep(seconds)
        return False

    def sleep_through(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)
