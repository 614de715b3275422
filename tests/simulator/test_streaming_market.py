"""Stream mode's candles, order books and tickers against the in-process simulator on a fake
clock (the market only moves when the test moves the clock, so a stream's view and a REST
answer can be taken of the same market): closed candles equal REST klines, the local book
equals the simulator's book (also after a resync), tickers and prices equal REST's."""

import time
from decimal import Decimal

import pytest
from capstock.simulator import start_simulator
from capstock.transform.rows import kline_row, ms_to_utc, price_row, ticker_24hr_row

from tests.support.clock import FakeClock
from tests.support.producer_fakes import MemoryWriter, make_producer
from tests.support.stream_checks import rest, streaming, wait_until, without_ingested_at

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
def clock() -> FakeClock:
    # 30 s into a minute, so a candle closes within the first advance.
    return FakeClock(now=float(1_700_000_000 // 60 * 60 + 30))


@pytest.fixture
def sim(clock):
    with start_simulator(symbols=3, seed=3, clock=clock, trade_rate=5, history_minutes=2) as s:
        yield s


def stream_producer(sim, writer, clock=None, **ingest):
    options = {
        "mode": "stream",
        "stream_url": sim.ws_url,
        "stall_seconds": 120,
        "flush_ms": 20,
        "depth_speed_ms": 100,
        "book_snapshot_limit": 5000,
        **ingest,
    }
    return make_producer(
        sim.url,
        clock=clock,
        writer=writer,
        ingest=options,
        jobs={"depth_levels": 10},
        symbols=",".join(SYMBOLS),
    )


def advance(clock, seconds, step=1.0):
    """Move the simulator's clock a step at a time, giving its streams time to send."""
    for _ in range(int(seconds / step)):
        clock.advance(step)
        time.sleep(0.06)


def table(ingest, writer, name):
    return ingest.writer.call(lambda: dict(writer.tables[name]))


def book_caught_up(ingest, sim, symbol):
    """True once the local book's update id is the simulator's (which is not moving)."""
    target = rest(sim.url, "depth", symbol=symbol, limit=1)["lastUpdateId"]
    with ingest._lock:
        book = ingest.books[symbol]
        return book.synced and book.update_id == target


def assert_book_is_the_simulators(ingest, sim, symbol):
    wait_until(lambda: book_caught_up(ingest, sim, symbol), lambda: f"{symbol} book behind")
    depth = rest(sim.url, "depth", symbol=symbol, limit=5000)
    with ingest._lock:
        update_id, bids, asks = ingest.books[symbol].top()
    assert update_id == depth["lastUpdateId"]
    assert bids == [(Decimal(p), Decimal(q)) for p, q in depth["bids"]]
    assert asks == [(Decimal(p), Decimal(q)) for p, q in depth["asks"]]


def test_closed_candles_are_the_rest_klines(sim, clock):
    writer = MemoryWriter()
    with streaming(stream_producer(sim, writer)) as ingest:
        advance(clock, 2)
        wait_until(lambda: ingest.counters.klines >= 2, lambda: "no kline event")
        advance(clock, 150, step=2)
        stored = {}

        def two_closed():
            stored.update(table(ingest, writer, "kline_data"))
            closed = [k for k, r in stored.items() if r["is_closed"] and k[0] == "BTCUSDT"]
            return len(closed) >= 2

        wait_until(two_closed, lambda: f"closed candles: {sorted(stored)}")
        now = ms_to_utc(sim.now_ms())
        for symbol in SYMBOLS:
            raw = rest(sim.url, "klines", symbol=symbol, interval="1m", limit=10)
            expected = {
                (symbol, "1m", row["open_time"]): row
                for row in (
                    kline_row(symbol, "1m", k, now=now, rank=None, ingested_at=None) for k in raw
                )
                if row["is_closed"]
            }
            closed = {
                k: r
                for k, r in table(ingest, writer, "kline_data").items()
                if r["is_closed"] and k[0] == symbol
            }
            assert len(closed) >= 2 and set(closed) <= set(expected)
            for key, row in closed.items():
                assert without_ingested_at({**row, "rank": None}) == without_ingested_at(
                    expected[key]
                )
                assert row["rank"] in (1, 2)
        open_rows = [r for r in table(ingest, writer, "kline_data").values() if not r["is_closed"]]
        assert {r["symbol"] for r in open_rows} == set(SYMBOLS), "the open candle is stored too"


def closed_candles(ingest, writer, symbol):
    rows = table(ingest, writer, "kline_data").items()
    return {k[2]: r for k, r in rows if k[0] == symbol and r["is_closed"]}


def test_candles_that_closed_while_the_producer_was_away_come_from_rest(sim, clock):
    writer = MemoryWriter()
    with streaming(stream_producer(sim, writer, clock)) as ingest:
        advance(clock, 2)
        advance(clock, 70, step=2)
        wait_until(lambda: closed_candles(ingest, writer, "BTCUSDT"), lambda: "no candle closed")
        first = min(closed_candles(ingest, writer, "BTCUSDT"))
    clock.advance(200)  # three more candles close while nobody listens
    with streaming(stream_producer(sim, writer, clock)) as ingest:
        now = ms_to_utc(sim.now_ms())
        raw = rest(sim.url, "klines", symbol="BTCUSDT", interval="1m", limit=10)
        expected = {
            row["open_time"]: row
            for row in (
                kline_row("BTCUSDT", "1m", k, now=now, rank=None, ingested_at=None) for k in raw
            )
            if row["is_closed"] and row["open_time"] >= first
        }
        assert len(expected) >= 4
        wait_until(
            lambda: set(expected) <= set(closed_candles(ingest, writer, "BTCUSDT")),
            lambda: f"closed: {sorted(closed_candles(ingest, writer, 'BTCUSDT'))}",
        )
        stored = closed_candles(ingest, writer, "BTCUSDT")
    for open_time, row in expected.items():
        assert without_ingested_at({**stored[open_time], "rank": None}) == without_ingested_at(row)


def test_the_local_book_is_the_simulators_and_resyncs_after_a_missed_event(sim, clock):
    writer = MemoryWriter()
    with streaming(stream_producer(sim, writer)) as ingest:
        advance(clock, 3)
        for symbol in SYMBOLS:
            assert_book_is_the_simulators(ingest, sim, symbol)
        advance(clock, 3)
        assert_book_is_the_simulators(ingest, sim, "BTCUSDT")
        assert ingest.books["BTCUSDT"].syncs == 1 and ingest.books["BTCUSDT"].gaps == 0

        sim.add_fault("ws_skip", count=1, paths=["btcusdt@depth@100ms"])
        advance(clock, 4)
        wait_until(lambda: not sim.faults.snapshot(), lambda: "the skip did not happen")
        advance(clock, 2)
        assert_book_is_the_simulators(ingest, sim, "BTCUSDT")
        book = ingest.books["BTCUSDT"]
        assert (book.gaps, book.syncs) == (1, 2) and ingest.counters.resyncs == 1

        rows = ingest.write_books()
        assert rows == len(SYMBOLS) * 2 * 10
        assert ingest.write_books() == 0, "nothing changed, no new snapshot"
        stored = table(ingest, writer, "order_book")
    update_id, bids, asks = book.top(10)
    btc = sorted(
        (r for r in stored.values() if r["symbol"] == "BTCUSDT"),
        key=lambda r: (r["side"], r["level"]),
    )
    assert [(r["price"], r["qty"]) for r in btc if r["side"] == "bid"] == bids
    assert [(r["price"], r["qty"]) for r in btc if r["side"] == "ask"] == asks
    assert {r["last_update_id"] for r in btc} == {update_id}
    assert {r["snapshot_time"] for r in btc} == {ms_to_utc(book.event_ms)}


def test_tickers_and_prices_are_the_rest_figures_at_the_event_time(sim, clock):
    writer = MemoryWriter()
    with streaming(stream_producer(sim, writer)) as ingest:
        advance(clock, 3)
        now_ms = sim.now_ms()

        def tickers_now():
            with ingest._lock:
                return all(ingest._tickers.get(s, {}).get("E") == now_ms for s in SYMBOLS)

        wait_until(tickers_now, lambda: "no ticker at the clock's time")
        assert ingest.write_tickers() == len(SYMBOLS)
        assert ingest.write_prices() == len(SYMBOLS)
        assert ingest.write_tickers() == 0, "the same event is not written twice"
        tickers = table(ingest, writer, "top_24hr")
        prices = table(ingest, writer, "latest_prices")
    ranks = {r.symbol: r.rank for r in ingest.producer.universe}
    for symbol in SYMBOLS:
        expected = ticker_24hr_row(
            rest(sim.url, "ticker/24hr", symbol=symbol), rank=ranks[symbol], ingested_at=None
        )
        (row,) = [r for r in tickers.values() if r["symbol"] == symbol]
        assert without_ingested_at(row) == without_ingested_at(expected)
        ts = ms_to_utc(now_ms)
        price = price_row(rest(sim.url, "ticker/price", symbol=symbol), ts=ts, ingested_at=None)
        assert without_ingested_at(prices[(symbol, ts)]) == without_ingested_at(price)
