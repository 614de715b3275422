"""The simulator's long history: a day of klines, and every trade id by id and by time."""

import pytest
from binance.client import Client
from capstock.exchange import limits
from capstock.simulator import start_simulator
from capstock.simulator.history import EAGER_HISTORY_MINUTES, SymbolHistory, poisson
from capstock.simulator.ledger import request_weight
from capstock.simulator.market import MINUTE_MS, Market
from capstock.simulator.rest import RestApi

from tests.support.clock import FakeClock

NOW_MS = 1_700_000_012_345
DAY_MINUTES = 24 * 60


@pytest.fixture(scope="module")
def day() -> Market:
    return Market(symbol_count=4, seed=3, now_ms=NOW_MS, history_minutes=DAY_MINUTES)


def page_klines(market: Market, symbol: str, start_ms: int) -> list[tuple]:
    out, cursor = [], start_ms
    while True:
        page = market.klines(symbol, MINUTE_MS, 1000, start_ms=cursor)
        if not page:
            return out
        out += page
        cursor = page[-1][0] + MINUTE_MS


def page_trade_ids(market: Market, symbol: str, from_id: int) -> list[int]:
    out = []
    while page := market.trades_from_id(symbol, from_id, 1000):
        out += [t.id for t in page]
        from_id = page[-1].id + 1
    return out


def test_a_day_of_one_minute_klines_pages_without_a_hole(day):
    start = NOW_MS - DAY_MINUTES * MINUTE_MS
    first = -(-start // MINUTE_MS) * MINUTE_MS  # startTime rounds up to the next open
    for symbol in day.symbols:
        klines = page_klines(day, symbol, start)
        opens = [k[0] for k in klines]
        assert opens == list(range(first, NOW_MS // MINUTE_MS * MINUTE_MS + 1, MINUTE_MS))
        assert all(k[6] == k[0] + MINUTE_MS - 1 for k in klines)
        assert all(k[3] <= min(k[1], k[4]) <= max(k[1], k[4]) <= k[2] for k in klines)


def test_only_the_last_half_hour_is_generated_at_start(day):
    history = day.history["BTCUSDT"]
    assert history.start_ms == (NOW_MS - DAY_MINUTES * MINUTE_MS) // MINUTE_MS * MINUTE_MS
    live_start = NOW_MS - EAGER_HISTORY_MINUTES * MINUTE_MS
    assert history.end_ms == live_start // MINUTE_MS * MINUTE_MS
    assert Market(symbol_count=3, seed=1, now_ms=NOW_MS, history_minutes=30).history == {}


def test_trade_ids_run_from_the_history_into_the_live_trades(day):
    for symbol, s in day.symbols.items():
        history = day.history[symbol]
        ids = page_trade_ids(day, symbol, history.first_id)
        assert ids == list(range(history.first_id, s.next_trade_id))
        recent = [t.id for t in day.trades(symbol, 1000)]
        assert recent and recent == ids[-len(recent) :]
        assert history.last_id + 1 == ids[history.trade_count]


def test_klines_are_the_sum_of_the_trades(day):
    symbol = "ETHUSDT"
    history = day.history[symbol]
    # three minutes of the generated past, the one where live trading starts, and a later one
    minutes = [history.start_ms, history.start_ms + 600 * MINUTE_MS, history.end_ms - MINUTE_MS]
    minutes += [history.end_ms, history.end_ms + 10 * MINUTE_MS]
    for minute in minutes:
        (kline,) = day.klines(symbol, MINUTE_MS, 1, start_ms=minute, end_ms=minute)
        trades = day.trades_between(symbol, minute, minute + MINUTE_MS - 1, 1000)
        assert trades, minute
        assert kline[1] == trades[0].price and kline[4] == trades[-1].price
        assert kline[2] == max(t.price for t in trades)
        assert kline[3] == min(t.price for t in trades)
        assert kline[5] == sum(t.qty for t in trades)
        assert kline[7] == sum(t.quote_qty for t in trades)
        assert kline[8] == len(trades)
        assert kline[9] == sum(t.qty for t in trades if not t.is_buyer_maker)


def test_the_past_is_the_same_whichever_request_comes_first():
    def build() -> Market:
        return Market(symbol_count=3, seed=9, now_ms=NOW_MS, history_minutes=300)

    a, b = build(), build()
    start = a.history["BTCUSDT"].start_ms
    later = a.trades_between("BTCUSDT", start + 200 * MINUTE_MS, NOW_MS, 50)
    a_klines = a.klines("BTCUSDT", MINUTE_MS, 300, start_ms=start)
    assert b.klines("BTCUSDT", MINUTE_MS, 300, start_ms=start) == a_klines
    assert b.trades_between("BTCUSDT", start + 200 * MINUTE_MS, NOW_MS, 50) == later
    assert build().klines("BTCUSDT", 3_600_000, 5) == a.klines("BTCUSDT", 3_600_000, 5)


def test_the_history_continues_across_a_saved_state(day):
    restored = Market.from_state(day.to_state(), now_ms=NOW_MS)
    start = day.history["SOLUSDT"].start_ms
    assert restored.klines("SOLUSDT", MINUTE_MS, 1000, start_ms=start) == day.klines(
        "SOLUSDT", MINUTE_MS, 1000, start_ms=start
    )
    first = day.history["SOLUSDT"].first_id
    assert restored.trades_from_id("SOLUSDT", first, 700) == day.trades_from_id(
        "SOLUSDT", first, 700
    )


def test_poisson_draws_have_the_mean():
    import random

    rng = random.Random(1)
    for mean in (0.3, 5.0, 90.0):
        draws = [poisson(rng, mean) for _ in range(4000)]
        assert abs(sum(draws) / len(draws) - mean) < 0.1 * mean + 0.05
    assert poisson(rng, 0) == 0


def test_a_history_must_start_on_a_minute():
    with pytest.raises(ValueError):
        SymbolHistory(
            seed=1,
            symbol="X",
            start_ms=1,
            minutes=1,
            end_id=10,
            end_price=1,  # type: ignore[arg-type]
            tick=1,  # type: ignore[arg-type]
            step=1,  # type: ignore[arg-type]
            trade_rate=1.0,
            notional_median=1.0,
        )


def test_historical_and_aggregate_trades_endpoints(day):
    api = RestApi(day, weight_limit=6000)
    history = day.history["BNBUSDT"]
    page = api.endpoint("historicalTrades")(
        {"symbol": "BNBUSDT", "fromId": str(history.first_id + 10), "limit": "5"}
    )
    assert [t["id"] for t in page] == list(range(history.first_id + 10, history.first_id + 15))
    assert set(page[0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}
    recent = api.endpoint("historicalTrades")({"symbol": "BNBUSDT", "limit": "3"})
    assert recent == api.endpoint("trades")({"symbol": "BNBUSDT", "limit": "3"})

    second = history.start_ms + 90 * MINUTE_MS
    agg = api.endpoint("aggTrades")({"symbol": "BNBUSDT", "startTime": str(second), "limit": "2"})
    assert agg[0]["T"] >= second and agg[0]["a"] == agg[0]["f"] == agg[0]["l"]
    assert agg[0]["a"] == day.trades_between("BNBUSDT", second, NOW_MS, 1)[0].id
    window = api.endpoint("aggTrades")(
        {"symbol": "BNBUSDT", "startTime": str(second), "endTime": str(second + 999)}
    )
    assert all(second <= a["T"] <= second + 999 for a in window)
    by_id = api.endpoint("aggTrades")({"symbol": "BNBUSDT", "fromId": str(agg[0]["a"])})
    assert by_id[:2] == agg
    before = api.endpoint("aggTrades")({"symbol": "BNBUSDT", "endTime": str(second)})
    assert before and all(second - 3_600_000 <= a["T"] <= second for a in before)


def test_historical_trades_over_http_cost_25(day):
    assert request_weight("historicalTrades", {"symbol": "BTCUSDT"}) == 25
    assert limits.WEIGHT_HISTORICAL_TRADES == 25
    clock = FakeClock(NOW_MS / 1000)
    with start_simulator(symbols=3, seed=1, clock=clock, history_minutes=120) as sim:
        client = Client(ping=False, requests_params={"timeout": 5})
        client.API_URL = sim.url
        first = sim.market.history["BTCUSDT"].first_id
        trades = client.get_historical_trades(symbol="BTCUSDT", fromId=first, limit=1000)
        assert [t["id"] for t in trades] == list(range(first, first + 1000))
        assert client.response.headers["x-mbx-used-weight-1m"] == "25"
        klines = client.get_klines(
            symbol="BTCUSDT", interval="1m", startTime=NOW_MS - 7_200_000, limit=1000
        )
        assert len(klines) == 120


def test_the_tape_keeps_the_newest_trades_and_finds_them_by_id_and_time():
    from decimal import Decimal

    from capstock.simulator.tape import CHUNK, TradeTape

    tape = TradeTape(Decimal("0.01"), Decimal("0.001"), capacity=2 * CHUNK)
    for i in range(5 * CHUNK):
        tape.append(100 + i, Decimal("1.25"), Decimal("0.002"), 10 * i, i % 2 == 0)
    assert 2 * CHUNK <= len(tape) <= 3 * CHUNK
    first = tape.first_id
    assert first is not None and first > 100
    assert [t[0] for t in tape.from_id(0, 3)] == [first, first + 1, first + 2]
    found = tape.from_id(first + CHUNK - 1, 3)  # across a chunk boundary
    assert [t[0] for t in found] == [first + CHUNK - 1, first + CHUNK, first + CHUNK + 1]
    assert found[0][1:3] == (Decimal("1.25"), Decimal("0.002"))
    start = 10 * (first - 100 + CHUNK)
    assert [t[3] for t in tape.between(start - 10, start + 10, 10)] == [
        start - 10,
        start,
        start + 10,
    ]
    assert tape.from_id(100 + 5 * CHUNK, 5) == []
