"""Stream payloads → rows (capstock.transform.rows): the same rows REST gives for the same
facts, from the payload shapes Binance documents; stream naming and sharding."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from capstock.exchange.streams import MAX_STREAMS_PER_CONNECTION, combined_url, shard
from capstock.ingest.streaming import stream_kind, symbol_streams
from capstock.model.tables import KLINE_DATA, LATEST_PRICES, RECENT_TRADES, TOP_24HR
from capstock.transform.rows import (
    BadRecord,
    kline_row,
    plain_decimal,
    price_row,
    stream_kline_row,
    stream_price_row,
    stream_ticker_row,
    stream_trade_row,
    ticker_24hr_row,
    trade_row,
)

T = datetime(2026, 11, 21, 5, 35, tzinfo=UTC)

TRADE_EVENT = {
    "e": "trade",
    "E": 1499865549600,
    "s": "BNBBTC",
    "t": 28457,
    "p": "4.00000100",
    "q": "12.00000000",
    "T": 1499865549590,
    "m": True,
    "M": True,
}
REST_TRADE = {
    "id": 28457,
    "price": "4.00000100",
    "qty": "12.00000000",
    "quoteQty": "48.000012",
    "time": 1499865549590,
    "isBuyerMaker": True,
    "isBestMatch": True,
}


def test_a_streamed_trade_is_the_rest_trade():
    streamed = stream_trade_row(TRADE_EVENT, ingested_at=T)
    assert streamed == trade_row("BNBBTC", REST_TRADE, ingested_at=T)
    assert str(streamed["quote_qty"]) == "48.000012", "the same digits as REST's quoteQty"
    RECENT_TRADES.check_row(streamed)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("48.0000120000000000", "48.000012"),
        ("100.00", "100"),
        ("0.00000000", "0"),
        ("1E+3", "1000"),
    ],
)
def test_plain_decimal(value, text):
    assert str(plain_decimal(Decimal(value))) == text


def test_a_streamed_kline_is_the_rest_kline_and_x_says_closed():
    raw = [
        1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
        "148976.11427815", 1499040059999, "2434.19055334", 308, "1756.87402397",
        "28.46694368", "0",
    ]  # fmt: skip
    event = {
        "e": "kline",
        "E": 1499040060001,
        "s": "ETHBTC",
        "k": {
            "t": raw[0], "T": raw[6], "s": "ETHBTC", "i": "1m", "f": 100, "L": 407,
            "o": raw[1], "c": raw[4], "h": raw[2], "l": raw[3], "v": raw[5], "n": raw[8],
            "x": True, "q": raw[7], "V": raw[9], "Q": raw[10], "B": "0",
        },
    }  # fmt: skip
    after_close = datetime(2017, 7, 3, 0, 1, 1, tzinfo=UTC)
    rest = kline_row("ETHBTC", "1m", raw, now=after_close, rank=3, ingested_at=T)
    assert stream_kline_row(event, rank=3, ingested_at=T) == rest
    event["k"]["x"] = False
    assert stream_kline_row(event, rank=3, ingested_at=T)["is_closed"] is False
    KLINE_DATA.check_row(rest)


TICKER_EVENT = {
    "e": "24hrTicker", "E": 1499869899041, "s": "BNBBTC", "p": "-94.99999800", "P": "-95.960",
    "w": "0.29628482", "x": "0.10002000", "c": "4.00000200", "Q": "200.00000000",
    "b": "4.00000000", "B": "100.00000000", "a": "4.00000200", "A": "100.00000000",
    "o": "99.00000000", "h": "100.00000000", "l": "0.10000000", "v": "8913.30000000",
    "q": "15.30000000", "O": 1499783499040, "C": 1499869899040, "F": 28385, "L": 28460,
    "n": 76,
}  # fmt: skip
REST_TICKER = {
    "symbol": "BNBBTC", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
    "weightedAvgPrice": "0.29628482", "prevClosePrice": "0.10002000",
    "lastPrice": "4.00000200", "lastQty": "200.00000000", "bidPrice": "4.00000000",
    "bidQty": "100.00000000", "askPrice": "4.00000200", "askQty": "100.00000000",
    "openPrice": "99.00000000", "highPrice": "100.00000000", "lowPrice": "0.10000000",
    "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
    "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76,
}  # fmt: skip


def test_a_streamed_ticker_is_the_rest_ticker():
    row = stream_ticker_row(TICKER_EVENT, rank=2, ingested_at=T)
    assert row == ticker_24hr_row(REST_TICKER, rank=2, ingested_at=T)
    TOP_24HR.check_row(row)


def test_a_streamed_price_is_stamped_with_the_event_time():
    row = stream_price_row(TICKER_EVENT, ingested_at=T)
    ts = datetime(2017, 7, 12, 14, 31, 39, 41000, tzinfo=UTC)
    assert row == price_row({"symbol": "BNBBTC", "price": "4.00000200"}, ts=ts, ingested_at=T)
    LATEST_PRICES.check_row(row)


@pytest.mark.parametrize(
    "broken",
    [{"p": 4.000001}, {"t": "28457"}, {"m": "true"}, {"T": None}, {"s": ""}],
)
def test_a_malformed_trade_event_is_a_bad_record(broken):
    with pytest.raises(BadRecord):
        stream_trade_row({**TRADE_EVENT, **broken}, ingested_at=T)


def test_stream_names_per_symbol_and_their_kinds():
    names = symbol_streams("BTCUSDT", "1m", 1000)
    assert names == ["btcusdt@trade", "btcusdt@kline_1m", "btcusdt@depth", "btcusdt@ticker"]
    assert [stream_kind(n) for n in names] == ["trade", "kline", "depth", "ticker"]
    assert stream_kind("btcusdt@depth@100ms") == "depth"


def test_streams_are_split_into_connections_of_at_most_1024():
    names = [f"s{i}@trade" for i in range(2500)]
    assert [len(s) for s in shard(names, 200)][:2] == [200, 200]
    assert [len(s) for s in shard(names, 5000)] == [MAX_STREAMS_PER_CONNECTION, 1024, 452]
    assert combined_url("ws://h:1/", ["a@trade", "b@ticker"]) == (
        "ws://h:1/stream?streams=a@trade/b@ticker"
    )
