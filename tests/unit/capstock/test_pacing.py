"""Backoff and the request-weight pacer, on a fake clock."""

import pytest
from capstock.backoff import Backoff, Interrupted
from capstock.exchange.pacer import WINDOW_ROLLOVER_MARGIN_SECONDS, WeightPacer

from tests.support.clock import FakeClock, RecordingSleeper


def test_backoff_doubles_with_jitter_and_caps():
    b = Backoff(base=1, factor=2, cap=5, max_attempts=4, rng=lambda: 1.0)
    assert [b.next_delay() for _ in range(4)] == [1, 2, 4, 5]
    assert b.exhausted
    b.reset()
    assert not b.exhausted
    low = Backoff(base=1, factor=2, cap=5, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(3)] == [0.5, 1, 2]


def pacer(budget=600, start=0.0):
    clock = FakeClock(start)
    sleeper = RecordingSleeper(clock)
    return WeightPacer(budget, sleeper=sleeper, clock=clock), sleeper, clock


def test_pacer_allows_a_burst_then_paces_evenly():
    p, sleeper, _ = pacer(budget=600)  # 10 weight/s, burst 100
    for _ in range(10):
        p.acquire(10)
    assert sleeper.waits == []
    p.acquire(10)
    assert sleeper.waits == [pytest.approx(1.0)]


def test_pacer_never_exceeds_budget_per_window():
    p, _, clock = pacer(budget=600, start=30.0)
    spent: dict[int, int] = {}
    for _ in range(400):
        p.acquire(25)
        window = int(clock() // 60)
        spent[window] = spent.get(window, 0) + 25
    assert max(spent.values()) <= 600
    assert len(spent) > 5


def test_server_count_forces_a_wait_for_the_next_window():
    p, sleeper, clock = pacer(budget=600, start=120.0 + 10)
    p.observe(590)  # another client on the same IP used most of this minute
    p.acquire(20)
    assert sleeper.waits[0] == pytest.approx(50 + WINDOW_ROLLOVER_MARGIN_SECONDS)
    assert clock() >= 180
    assert p.used == 20


def test_pacer_sleep_is_interruptible():
    p, sleeper, _ = pacer(budget=60)
    sleeper.stop()
    p.observe(60)
    with pytest.raises(Interrupted):
        p.acquire(5)
