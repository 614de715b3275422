"""The real python-binance client, wrapped by ExchangeClient, against a misbehaving simulator.

Waits go to a RecordingSleeper (and advance a fake clock where the test needs time to pass),
so these tests compare recorded waits with Retry-After values instead of measuring time.
"""

import pytest
from capstock.backoff import RetriesExhausted
from capstock.config import BinanceSettings, load
from capstock.exchange.client import Banned, ExchangeClient, SymbolRejected, Unreachable
from capstock.simulator import start_simulator

from tests.support.clock import FakeClock, RecordingSleeper


def exchange(url, sleeper=None, clock=None, **settings):
    options = {"api_url": url, "request_timeout": 2.0, **settings}
    kwargs = {"sleeper": sleeper or RecordingSleeper(), "rng": lambda: 1.0}
    if clock is not None:
        kwargs["clock"] = clock
    return ExchangeClient(load(BinanceSettings, **options), **kwargs)


def test_obeys_retry_after_on_429(simulator):
    simulator.add_fault("429", count=2, retry_after=7)
    ex = exchange(simulator.url)
    trades = ex.recent_trades("BTCUSDT", 10)
    assert len(trades) == 10
    assert ex.sleeper.waits == [7, 7]
    assert ex.stats.rate_limit_waits == [7, 7]
    assert simulator.requests["trades"] == 3


def test_418_bans_every_request_until_retry_after_without_waiting(simulator, caplog):
    simulator.add_fault("418", count=1, retry_after=120)
    clock = FakeClock()
    ex = exchange(simulator.url, clock=clock)
    with pytest.raises(Banned) as banned:
        ex.order_book("ETHUSDT", 5)
    assert banned.value.until == clock() + 120 and ex.banned
    assert "rate limited path=depth status=418 code=-1003 retry_after=120s" in caplog.text
    with pytest.raises(Banned):
        ex.recent_trades("ETHUSDT", 5)  # no request during the ban: it would extend it
    assert simulator.requests["depth"] == 1 and simulator.requests["trades"] == 0
    assert ex.sleeper.waits == []
    clock.advance(120)
    assert not ex.banned
    assert ex.order_book("ETHUSDT", 5)["bids"]


def test_retries_5xx_with_growing_backoff(simulator):
    for status in (500, 503, 502):
        simulator.add_fault("5xx", count=1, status=status)
    ex = exchange(simulator.url)
    assert len(ex.klines("BTCUSDT", "1m", 2)) == 2
    assert ex.sleeper.waits == [0.5, 1.0, 2.0]  # jitter pinned to its maximum
    assert ex.stats.retries == 3


def test_gives_up_after_max_attempts(simulator):
    simulator.add_fault("5xx", status=500)
    ex = exchange(simulator.url, max_attempts=4)
    with pytest.raises(RetriesExhausted):
        ex.ping()
    assert simulator.requests["ping"] == 4
    assert len(ex.sleeper.waits) == 3


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_survives_bad_bodies(simulator, kind):
    simulator.add_fault(kind, count=2, paths=["ticker/24hr"])
    ex = exchange(simulator.url)
    tickers = ex.ticker_24hr()
    assert {t["symbol"] for t in tickers} == set(simulator.symbols())
    assert simulator.requests["ticker/24hr"] == 3
    assert ex.stats.retries == 2


def test_slow_response_times_out_and_is_retried(simulator):
    simulator.add_fault("slow", count=1, delay=1.0)
    ex = exchange(simulator.url, request_timeout=0.2)
    assert ex.ticker_price(["BTCUSDT"])[0]["symbol"] == "BTCUSDT"
    assert ex.stats.retries == 1


def test_invalid_symbol_is_not_retried(simulator):
    ex = exchange(simulator.url)
    with pytest.raises(SymbolRejected) as err:
        ex.klines("NOPEUSDT", "1m", 1)
    assert (err.value.symbol, err.value.code) == ("NOPEUSDT", -1121)
    assert simulator.requests["klines"] == 1
    assert ex.sleeper.waits == []


def test_stays_within_the_weight_budget_over_a_run():
    """Three minutes' worth of polling on a fake clock: never over budget, never a 429."""
    clock = FakeClock(1_699_999_980.0)  # the start of a minute window
    with start_simulator(symbols=6, clock=clock, history_minutes=2) as sim:
        sleeper = RecordingSleeper(clock)
        ex = exchange(sim.url, sleeper=sleeper, clock=clock, weight_share=0.1)  # 600/min
        assert ex.pacer.budget == 600
        symbols = [s for s in sim.symbols() if s.endswith("USDT")]
        requested = 0
        for _ in range(12):
            ex.ticker_24hr()
            for s in symbols:
                ex.recent_trades(s, 100)
                ex.order_book(s, 20)
                ex.klines(s, "1m", 3)
            requested += 80 + len(symbols) * (25 + 5 + 2)
        assert ex.stats.weight_requested == requested
        assert requested > 3 * 600, "the run must need several windows"
        assert sim.ledger.max_used() <= 600
        assert sim.statuses[429] == 0 and sim.statuses[418] == 0
        assert sum(sleeper.waits) >= (requested / 600 - 1) * 60 * 0.9


def test_weight_used_by_another_client_is_respected():
    clock = FakeClock(1_699_999_980.0 + 5)
    with start_simulator(symbols=3, clock=clock, history_minutes=1) as sim:
        sleeper = RecordingSleeper(clock)
        ex = exchange(sim.url, sleeper=sleeper, clock=clock, weight_share=0.5)  # 3000/min
        sim.ledger.charge(2980)  # someone else on this IP
        ex.ping()  # the header now reports 2981
        ex.recent_trades("BTCUSDT", 10)  # 25 more would exceed 3000: wait for the next window
        assert sleeper.waits and sleeper.waits[-1] == pytest.approx(55 + 1, abs=0.01)
        assert sim.statuses[429] == 0


def test_simulator_429_retry_after_is_honoured_exactly():
    """When the budget is set above the exchange's real limit, the 429's Retry-After
    (seconds to the next window) is what the client waits."""
    clock = FakeClock(1_699_999_980.0 + 45)
    with start_simulator(symbols=3, clock=clock, weight_limit=60, history_minutes=1) as sim:
        sleeper = RecordingSleeper(clock)
        ex = exchange(sim.url, sleeper=sleeper, clock=clock, weight_limit=6000)
        ex.recent_trades("BTCUSDT", 5)
        ex.recent_trades("BTCUSDT", 5)
        ex.recent_trades("BTCUSDT", 5)  # 75 > 60: 429 with Retry-After 15
        assert ex.stats.rate_limit_waits == [15.0]
        assert sim.statuses[429] == 1 and sim.statuses[200] == 3


def test_an_unreachable_exchange_fails_fast_costs_no_weight_and_backs_off(caplog):
    """No route (here: a closed port) is a failure, but the server counted nothing: the
    budget must not shrink, or a long outage would throttle the jobs after it."""
    clock = FakeClock()
    ex = exchange("http://127.0.0.1:9/api", clock=clock)
    with pytest.raises(Unreachable) as first:
        ex.ticker_24hr()  # weight 80
    assert ex.stats.requests == 1 and ex.sleeper.waits == []  # no retries inside a job
    assert ex.stats.weight_requested == 0 and ex.pacer.used == 0
    assert first.value.cause.startswith("ConnectionRefusedError")
    # Until the backoff passes, calls fail without a request; one log line per outage.
    with pytest.raises(Unreachable):
        ex.ping()
    assert ex.stats.requests == 1
    clock.advance(5)
    with pytest.raises(Unreachable) as second:
        ex.ping()
    assert ex.stats.requests == 2 and second.value.until == clock() + 10  # doubled
    assert caplog.text.count("exchange unreachable at http://127.0.0.1:9/api") == 1
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in caplog.text
    trouble = ex.trouble()  # what the heartbeat stores: the cause, since the outage began
    assert trouble is not None and trouble.since == clock() - 5
    assert trouble.text == "unreachable: ConnectionRefusedError: [Errno 111] Connection refused"


def test_the_trouble_ends_when_the_exchange_answers_again(simulator):
    clock = FakeClock()
    ex = exchange(simulator.url, clock=clock)
    good = ex.client.API_URL
    ex.client.API_URL = "http://127.0.0.1:9/api"
    with pytest.raises(Unreachable):
        ex.ping()
    assert ex.trouble() is not None
    ex.client.API_URL = good
    clock.advance(5)
    ex.ping()
    assert ex.trouble() is None


def test_a_request_the_server_answered_keeps_its_weight(simulator):
    simulator.add_fault("5xx", status=500)
    ex = exchange(simulator.url, max_attempts=2)
    with pytest.raises(RetriesExhausted):
        ex.ping()
    assert ex.stats.weight_requested == 2  # two pings of weight 1 reached the server


def test_history_calls_go_through_the_same_policy(simulator):
    """trades_from_id (historicalTrades), agg_trades and klines by time: paced, weighed
    and retried like every other call."""
    simulator.add_fault("429", count=1, retry_after=3, paths="historicalTrades")
    simulator.add_fault("5xx", count=1, status=503, paths="aggTrades")
    ex = exchange(simulator.url)
    newest = ex.agg_trades("BTCUSDT", limit=1)
    assert len(newest) == 1 and newest[0]["f"] == newest[0]["l"] == newest[0]["a"]
    start = simulator.market.trades("BTCUSDT", 1000)[0].id  # minutes ago
    trades = ex.trades_from_id("BTCUSDT", start, 20)
    assert [t["id"] for t in trades] == list(range(start, start + 20))
    assert ex.sleeper.waits[-1] == 3 and ex.stats.rate_limited == 1 and ex.stats.retries == 1
    t0 = trades[0]["time"] // 60_000 * 60_000
    klines = ex.klines("BTCUSDT", "1m", 1000, start_ms=t0, end_ms=t0 + 120_000)
    assert [k[0] for k in klines] == [t0, t0 + 60_000, t0 + 120_000]
    weights = (4 + 4) + (25 + 25) + 2  # each try is charged
    assert ex.stats.weight_requested == weights
