"""Waiting, in one place: exponential backoff with jitter and an interruptible sleeper.

Nothing else in the producer calls ``time.sleep``. Every wait goes through a
:class:`Sleeper`, so a shutdown signal cuts it short and tests can record waits instead of
spending them (``tests/support/clock.py``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_SECONDS = 30.0


class Interrupted(Exception):
    """A wait was cut short because the process is shutting down."""


class RetriesExhausted(Exception):
    """Every allowed attempt failed; ``__cause__`` is the last error."""


class Sleeper:
    """Sleeps until a timeout or until :meth:`stop` is called (from a signal handler)."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raises :class:`Interrupted` if stopped before or during the wait."""
        if self._stop.wait(max(0.0, seconds)):
            raise Interrupted()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if stopped (never raises)."""
        return self._stop.wait(max(0.0, seconds))

    def sleep_through(self, seconds: float) -> None:
        """Wait ``seconds`` even after a stop request (a shutdown grace period)."""
        time.sleep(max(0.0, seconds))

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


@dataclass
class Backoff:
    """Exponential backoff with jitter: failure n waits between half and all of
    ``min(cap, base * factor**n)`` (the random half spreads retries of many clients).

    Call :meth:`next_delay` after each failure and :meth:`reset` after a success;
    :attr:`exhausted` turns true after ``max_attempts`` failures.
    """

    base: float = BACKOFF_BASE_SECONDS
    factor: float = BACKOFF_FACTOR
    cap: float = BACKOFF_CAP_SECONDS
    max_attempts: int | None = 6
    rng: Callable[[], float] = random.random
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * self.factor**self.failures)
        self.failures += 1
        return ceiling * (0.5 + 0.5 * self.rng())

    @property
    def exhausted(self) -> bool:
        return self.max_attempts is not None and self.failures >= self.max_attempts

    def reset(self) -> None:
        self.failures = 0
