"""The simulator's order book: one event per update id, replayable from its change log,
never crossed, bounded by what a REST snapshot returns."""

from decimal import Decimal

import pytest
from capstock.exchange import limits
from capstock.simulator.book import ASK, BID, BOOK_LEVELS, LEVEL_SLACK, OrderBook
from capstock.simulator.market import Market

NOW_MS = 1_700_000_000_000


@pytest.fixture
def market() -> Market:
    return Market(symbol_count=8, seed=3, now_ms=NOW_MS, trade_rate=10, history_minutes=1)


def replay(levels: dict[str, dict[Decimal, Decimal]], changes) -> None:
    for c in changes:
        if c.qty == 0:
            levels[c.side].pop(c.price, None)
        else:
            levels[c.side][c.price] = c.qty


def test_the_change_log_replays_the_book_from_a_snapshot(market):
    book = market.order_book("BTCUSDT")
    snapshot = {side: dict(book.levels[side]) for side in (BID, ASK)}
    first_id = book.update_id
    book.log = []
    market.advance(NOW_MS + 30_000)
    assert book.update_id == market.symbols["BTCUSDT"].update_id > first_id
    ids = sorted({c.update_id for c in book.log})
    assert ids[0] == first_id + 1 and ids[-1] == book.update_id
    replay(snapshot, book.log)
    assert snapshot == book.levels


@pytest.mark.parametrize("symbol", ["BTCUSDT", "SHIBUSDT", "PEPEUSDT", "ETHBTC"])
def test_the_book_follows_the_price_uncrossed_and_bounded(market, symbol):
    book = market.order_book(symbol)
    for minute in range(1, 11):
        market.advance(NOW_MS + minute * 60_000)
        price = market.symbols[symbol].price
        assert book.best(BID) <= price < book.best(ASK)
        for side in (BID, ASK):
            assert 0 < len(book.levels[side]) <= BOOK_LEVELS + LEVEL_SLACK
            assert len(book.levels[side]) <= limits.DEPTH_MAX_LIMIT
            assert all(p > 0 and q > 0 for p, q in book.levels[side].items())
    _, bids, asks = market.book(symbol, limits.DEPTH_MAX_LIMIT)
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)


def test_a_book_is_a_function_of_seed_symbol_and_update_id():
    options = {
        "seed": 1,
        "symbol": "BTCUSDT",
        "price": Decimal("65000.00"),
        "tick": Decimal("0.01"),
        "step": Decimal("0.00001"),
        "notional_median": 300.0,
        "update_id": 1000,
    }
    a, b = OrderBook(**options), OrderBook(**options)
    a.sync(1050, Decimal("64990.00"))
    b.sync(1050, Decimal("64990.00"))
    assert a.top(5000) == b.top(5000)
    assert a.update_id == 1050


def test_the_rest_depth_is_the_book(market):
    update_id, bids, asks = market.book("ETHUSDT", 5)
    book = market.order_book("ETHUSDT")
    assert update_id == book.update_id == market.symbols["ETHUSDT"].update_id
    assert bids == book.side(BID, 5) and asks == book.side(ASK, 5)
