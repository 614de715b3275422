"""Request weights and the per-minute budget, without HTTP: the facts of
capstock.exchange.limits applied per request, fixed windows on the simulator's clock."""

import pytest
from capstock.simulator.ledger import Charge, WeightLedger, request_weight

from tests.support.clock import FakeClock

WINDOW_START = 1_700_000_040.0  # a multiple of 60


@pytest.mark.parametrize(
    ("endpoint", "params", "weight"),
    [
        ("ping", {}, 1),
        ("time", {}, 1),
        ("exchangeInfo", {}, 20),
        ("klines", {"symbol": "BTCUSDT", "interval": "1m"}, 2),
        ("trades", {"symbol": "BTCUSDT"}, 25),
        ("aggTrades", {"symbol": "BTCUSDT"}, 4),
        ("nope", {}, 1),
        ("depth", {"symbol": "BTCUSDT"}, 5),
        ("depth", {"limit": "500"}, 25),
        ("depth", {"limit": "1000"}, 50),
        ("depth", {"limit": "9000"}, 250),
        ("depth", {"limit": "lots"}, 5),
        ("ticker/24hr", {}, 80),
        ("ticker/24hr", {"symbol": "BTCUSDT"}, 2),
        ("ticker/24hr", {"symbols": '["A","B"]'}, 2),
        ("ticker/24hr", {"symbols": str([f"S{i}" for i in range(21)]).replace("'", '"')}, 40),
        ("ticker/24hr", {"symbols": "not json"}, 2),
        ("ticker/24hr", {"symbols": "5"}, 2),
        ("ticker/price", {"symbol": "BTCUSDT"}, 2),
        ("ticker/price", {"symbols": '["BTCUSDT"]'}, 4),
        ("ticker/price", {}, 4),
    ],
)
def test_request_weight(endpoint, params, weight):
    assert request_weight(endpoint, params) == weight


def ledger(clock, limit=100, ban_after_429s=2, ban_seconds=300) -> WeightLedger:
    return WeightLedger(limit, clock, ban_after_429s=ban_after_429s, ban_seconds=ban_seconds)


def test_over_the_limit_is_429_until_the_next_window():
    clock = FakeClock(WINDOW_START + 15)
    weights = ledger(clock)
    assert weights.charge(60) == Charge(60)
    assert weights.charge(40) == Charge(100)
    assert weights.charge(1) == Charge(101, "429", 45)
    clock.advance(44.5)
    assert weights.charge(1) == Charge(102, "429", 1), "at least one second"
    clock.advance(1)
    assert weights.charge(1) == Charge(1), "a new window"


def test_too_many_429s_in_a_window_ban_and_every_request_counts():
    clock = FakeClock(WINDOW_START)
    weights = ledger(clock)
    weights.charge(100)
    assert [weights.charge(1).refusal for _ in range(3)] == ["429", "429", "418"]
    banned = weights.charge(1)
    assert (banned.used, banned.refusal, banned.retry_after) == (104, "418", 300)
    assert banned.banned_until == WINDOW_START + 300
    clock.advance(120)
    assert weights.charge(1) == Charge(1, "418", 180, WINDOW_START + 300), "still banned"
    clock.advance(180)
    assert weights.charge(1) == Charge(1), "ban over, a new window"


def test_used_weight_per_window_and_reset():
    clock = FakeClock(WINDOW_START + 59)
    weights = ledger(clock, ban_after_429s=0)
    weights.charge(30)
    clock.advance(1)
    weights.charge(120)
    assert weights.charge(1).refusal == "418"
    assert weights.used() == 121 and weights.max_used() == 121
    assert weights.by_window() == {int(WINDOW_START): 30, int(WINDOW_START) + 60: 121}
    weights.reset()
    assert weights.by_window() == {} and weights.used() == 0
    assert weights.charge(1) == Charge(1), "the ban is forgotten too"
