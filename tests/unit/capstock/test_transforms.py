"""Raw Binance JSON → rows: exact decimals, millisecond UTC times, field order, book sides."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from capstock.model.tables import TABLES
from capstock.transform.rows import (
    BadRecord,
    book_rows,
    dec,
    heartbeat_row,
    kline_row,
    ms_to_utc,
    parse_each,
    price_row,
    ticker_24hr_row,
    trade_row,
    utc_to_ms,
)

NOW = datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=UTC)
KLINE = [
    1499040000000,
    "0.01634790",
    "0.80000000",
    "0.01575800",
    "0.01577100",
    "148976.11427815",
    1499644799999,
    "2434.19055334",
    308,
    "1756.87402397",
    "28.46694368",
    "0",
]
TRADE = {
    "id": 28457,
    "price": "4.00000100",
    "qty": "12.00000000",
    "quoteQty": "48.000012",
    "time": 1499865549590,
    "isBuyerMaker": True,
    "isBestMatch": True,
}
TICKER_24HR = {
    "symbol": "BNBBTC",
    "priceChange": "-94.99999800",
    "priceChangePercent": "-95.960",
    "weightedAvgPrice": "0.29628482",
    "prevClosePrice": "0.10002000",
    "lastPrice": "4.00000200",
    "lastQty": "200.00000000",
    "bidPrice": "4.00000000",
    "bidQty": "100.00000000",
    "askPrice": "4.00000200",
    "askQty": "100.00000000",
    "openPrice": "99.00000000",
    "highPrice": "100.00000000",
    "lowPrice": "0.10000000",
    "volume": "8913.30000000",
    "quoteVolume": "15.30000000",
    "openTime": 1499783499040,
    "closeTime": 1499869899040,
    "firstId": 28385,
    "lastId": 28460,
    "count": 76,
}
BOOK = {
    "lastUpdateId": 1027024,
    "bids": [["4.00000000", "431.00000000"]],
    "asks": [["4.00000200", "12.00000000"]],
}
PRICE = {"symbol": "LTCBTC", "price": "4.00000200"}


def test_ms_to_utc_is_exact_to_the_millisecond():
    t = ms_to_utc(1499865549590)
    assert t == datetime(2017, 7, 12, 13, 19, 9, 590000, tzinfo=UTC)
    assert t.tzinfo is UTC
    assert utc_to_ms(t) == 1499865549590
    # A value float division would round: 1700000000001 ms / 1000 is not exact in binary.
    assert ms_to_utc(1700000000001).microsecond == 1000


def test_ms_rejects_non_integers():
    for bad in ("1499865549590", 1.5, True, None):
        with pytest.raises(BadRecord):
            ms_to_utc(bad)


def test_dec_keeps_every_digit_and_refuses_floats():
    assert dec("0.00001234") == Decimal("0.00001234")
    assert str(dec("123456789012.12345678")) == "123456789012.12345678"
    assert str(dec("4.00000200")) == "4.00000200"
    for bad in (0.1, 1, "abc", "NaN", "Infinity", None):
        with pytest.raises(BadRecord):
            dec(bad)


def test_kline_field_order():
    row = kline_row("ETHBTC", "1m", KLINE, now=NOW, rank=3, ingested_at=NOW)
    assert row["open_time"] == datetime(2017, 7, 3, 0, 0, tzinfo=UTC)
    assert row["close_time"] == ms_to_utc(1499644799999)
    assert (row["open"], row["high"], row["low"], row["close"]) == (
        Decimal("0.01634790"),
        Decimal("0.80000000"),
        Decimal("0.01575800"),
        Decimal("0.01577100"),
    )
    assert row["volume"] == Decimal("148976.11427815")
    assert row["quote_volume"] == Decimal("2434.19055334")
    assert row["trade_count"] == 308
    assert row["taker_buy_base_volume"] == Decimal("1756.87402397")
    assert row["taker_buy_quote_volume"] == Decimal("28.46694368")
    assert row["rank"] == 3
    assert row["is_closed"] is True


def test_kline_is_open_until_its_close_time_has_passed():
    open_ms = utc_to_ms(NOW) - 30_000
    raw = [open_ms, "1", "1", "1", "1", "0", open_ms + 59_999, "0", 0, "0", "0", "0"]
    assert kline_row("X", "1m", raw, now=NOW, rank=None, ingested_at=NOW)["is_closed"] is False


@pytest.mark.parametrize(
    "raw", [KLINE[:11], [*KLINE[:1], 1.0, *KLINE[2:]], [str(KLINE[0]), *KLINE[1:]], {"t": 1}]
)
def test_malformed_klines_are_bad_records(raw):
    with pytest.raises(BadRecord):
        kline_row("X", "1m", raw, now=NOW, rank=None, ingested_at=NOW)


def test_trade_row():
    row = trade_row("BNBBTC", TRADE, ingested_at=NOW)
    assert row == {
        "symbol": "BNBBTC",
        "trade_id": 28457,
        "price": Decimal("4.00000100"),
        "qty": Decimal("12.00000000"),
        "quote_qty": Decimal("48.000012"),
        "trade_time": datetime(2017, 7, 12, 13, 19, 9, 590000, tzinfo=UTC),
        "is_buyer_maker": True,
        "is_best_match": True,
        "day": date(2017, 7, 12),
        "ingested_at": NOW,
    }


def test_trade_day_is_the_utc_day_of_the_trade():
    raw = {
        "id": 1,
        "price": "1",
        "qty": "1",
        "quoteQty": "1",
        "time": 1700006399999,
        "isBuyerMaker": False,
        "isBestMatch": True,
    }
    assert trade_row("X", raw, ingested_at=NOW)["day"] == date(2023, 11, 14)
    raw["time"] += 1
    assert trade_row("X", raw, ingested_at=NOW)["day"] == date(2023, 11, 15)


def test_book_rows_sides_levels_and_one_snapshot_time():
    raw = {
        "lastUpdateId": 1027024,
        "bids": [
            ["4.00000000", "431.00000000"],
            ["3.99000000", "1.00000000"],
            ["3.98000000", "2.00000000"],
        ],
        "asks": [["4.00000200", "12.00000000"], ["4.10000000", "3.50000000"]],
    }
    rows = book_rows("BNBBTC", raw, snapshot_time=NOW, levels=2, ingested_at=NOW)
    assert [(r["side"], r["level"], r["price"], r["qty"]) for r in rows] == [
        ("bid", 0, Decimal("4.00000000"), Decimal("431.00000000")),
        ("bid", 1, Decimal("3.99000000"), Decimal("1.00000000")),
        ("ask", 0, Decimal("4.00000200"), Decimal("12.00000000")),
        ("ask", 1, Decimal("4.10000000"), Decimal("3.50000000")),
    ]
    assert {r["snapshot_time"] for r in rows} == {NOW}
    assert {r["last_update_id"] for r in rows} == {1027024}
    assert {r["day"] for r in rows} == {NOW.date()}


def test_book_with_a_bad_level_is_rejected_whole():
    raw = {"lastUpdateId": 1, "bids": [["1", "1"], ["x"]], "asks": []}
    with pytest.raises(BadRecord):
        book_rows("X", raw, snapshot_time=NOW, levels=5, ingested_at=NOW)


def test_ticker_24hr_row():
    row = ticker_24hr_row(TICKER_24HR, rank=1, ingested_at=NOW)
    assert row["close_time"] == ms_to_utc(1499869899040)
    assert row["open_time"] == ms_to_utc(1499783499040)
    assert row["price_change_percent"] == Decimal("-95.960")
    assert row["weighted_avg_price"] == Decimal("0.29628482")
    assert (row["first_id"], row["last_id"], row["trade_count"], row["rank"]) == (
        28385,
        28460,
        76,
        1,
    )
    assert row["bid_price"] == Decimal("4.00000000") and row["ask_price"] == Decimal("4.00000200")


def test_price_row_uses_the_fetch_time():
    row = price_row({"symbol": "LTCBTC", "price": "4.00000200"}, ts=NOW, ingested_at=NOW)
    assert row == {
        "symbol": "LTCBTC",
        "ts": NOW,
        "price": Decimal("4.00000200"),
        "day": NOW.date(),
        "ingested_at": NOW,
    }


def test_parse_each_counts_bad_records_and_keeps_the_rest(caplog):
    items = [{"symbol": "A", "price": "1"}, {"symbol": "B", "price": 2.5}, {"symbol": "C"}]
    rows, bad = parse_each(items, lambda p: price_row(p, ts=NOW, ingested_at=NOW), context="t")
    assert [r["symbol"] for r in rows] == ["A"]
    assert bad == 2
    assert "bad record context=t" in caplog.text


ROW_OF_TABLE = {
    "kline_data": lambda: kline_row("BNBBTC", "1m", KLINE, now=NOW, rank=1, ingested_at=NOW),
    "recent_trades": lambda: trade_row("BNBBTC", TRADE, ingested_at=NOW),
    "order_book": lambda: book_rows("BNBBTC", BOOK, snapshot_time=NOW, levels=5, ingested_at=NOW)[
        0
    ],
    "top_24hr": lambda: ticker_24hr_row(TICKER_24HR, rank=1, ingested_at=NOW),
    "latest_prices": lambda: price_row(PRICE, ts=NOW, ingested_at=NOW),
    "heartbeat": lambda: heartbeat_row(
        "producer", beat_time=NOW, weight_used_1m=1, trade_gaps_total=0, ingested_at=NOW
    ),
}
"""One row from each table's builder, built from the samples in the builders' docstrings."""


@pytest.mark.parametrize("name", list(TABLES))
def test_each_builder_fills_exactly_its_tables_columns(name):
    assert name in ROW_OF_TABLE, f"no row builder is tested for {name}"
    row = ROW_OF_TABLE[name]()
    assert sorted(row) == sorted(TABLES[name].column_names)
