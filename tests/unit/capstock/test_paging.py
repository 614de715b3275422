"""Paging the exchange's history (capstock.ingest.paging) against a scripted exchange."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from capstock.ingest.paging import (
    DAY_MS,
    first_open,
    interval_ms,
    kline_pages,
    last_open,
    missing_ranges,
    trade_id_range,
    trade_pages,
)
from capstock.transform.rows import BadRecord, utc_to_ms

MINUTE = 60_000


class ScriptedExchange:
    """Answers klines, historicalTrades and aggTrades from in-memory data, and records
    every call (what a page request asked for)."""

    def __init__(self, opens=(), trade_ids=(), trade_times=None):
        self.opens = sorted(opens)
        self.trades = [
            {"id": i, "time": (trade_times or {}).get(i, i * 1000)} for i in sorted(trade_ids)
        ]
        self.calls: list[tuple] = []

    def klines(self, symbol, interval, limit, *, start_ms=None, end_ms=None):
        self.calls.append(("klines", start_ms, end_ms, limit))
        found = [o for o in self.opens if start_ms <= o <= end_ms][:limit]
        return [[o, "1", "1", "1", "1", "0", o + 59_999, "0", 0, "0", "0", "0"] for o in found]

    def trades_from_id(self, symbol, from_id, limit=1000):
        self.calls.append(("historicalTrades", from_id, limit))
        return [t for t in self.trades if t["id"] >= from_id][:limit]

    def agg_trades(self, symbol, *, limit=1000, from_id=None, start_ms=None, end_ms=None):
        self.calls.append(("aggTrades", start_ms, end_ms, limit))
        if start_ms is None:
            found = self.trades[-limit:]
        else:
            found = [t for t in self.trades if start_ms <= t["time"] <= end_ms][:limit]
        return [{"a": t["id"], "f": t["id"], "l": t["id"], "T": t["time"]} for t in found]


def test_missing_ranges():
    assert missing_ranges(1, 10, []) == [(1, 10)]
    assert missing_ranges(1, 10, [(1, 10)]) == []
    assert missing_ranges(1, 10, [(8, 12), (3, 4)]) == [(1, 2), (5, 7)]
    assert missing_ranges(5, 6, [(1, 2), (9, 9)]) == [(5, 6)]
    assert missing_ranges(0, 600, [(120, 180)], step=60) == [(0, 60), (240, 600)]


def test_candle_open_times():
    t = utc_to_ms(datetime(2026, 11, 20, 6, 30, 15, tzinfo=UTC))
    assert last_open("1m", t) == t - 15_000
    assert first_open("1m", t) == t + 45_000
    assert first_open("1h", t - 15_000 - 30 * MINUTE) == t - 15_000 - 30 * MINUTE
    monday = utc_to_ms(datetime(2026, 11, 16, tzinfo=UTC))
    assert last_open("1w", t) == monday
    assert first_open("1w", t) == monday + 7 * DAY_MS
    assert interval_ms("4h") == 4 * 60 * MINUTE
    for interval in ("3d", "1M", "2m"):
        with pytest.raises(ValueError, match="cannot be paged by time"):
            interval_ms(interval)


def test_kline_pages_cover_the_range_and_skip_what_the_exchange_lacks():
    opens = [i * MINUTE for i in range(2500) if not 1200 <= i < 1300]
    exchange = ScriptedExchange(opens=opens)
    pages = list(kline_pages(exchange, "X", "1m", 0, 2499 * MINUTE, limit=1000))
    assert [len(p) for p, _ in pages] == [1000, 1000, 400]
    assert [covered for _, covered in pages] == [999 * MINUTE, 2099 * MINUTE, 2499 * MINUTE]
    assert [c[1] for c in exchange.calls] == [0, 1000 * MINUTE, 2100 * MINUTE]


def test_kline_pages_end_on_an_empty_answer():
    exchange = ScriptedExchange(opens=[])
    assert list(kline_pages(exchange, "X", "1m", 0, 10 * MINUTE)) == [([], 10 * MINUTE)]


def test_trade_pages_fill_a_hole_by_id():
    exchange = ScriptedExchange(trade_ids=[*range(100, 150), *range(160, 3000)])
    pages = list(trade_pages(exchange, "X", 120, 2200, limit=1000))
    ids = [t["id"] for page, _ in pages for t in page]
    assert ids == [*range(120, 150), *range(160, 2201)]
    assert [covered for _, covered in pages] == [1129, 2129, 2200]
    assert [c[1:] for c in exchange.calls] == [(120, 1000), (1130, 1000), (2130, 71)]


def test_trade_pages_stop_when_the_exchange_has_no_more():
    exchange = ScriptedExchange(trade_ids=range(1, 11))
    pages = list(trade_pages(exchange, "X", 5, 50))
    assert [t["id"] for t in pages[0][0]] == list(range(5, 11)) and pages[0][1] == 50
    assert len(pages) == 1


def test_a_page_that_does_not_move_forward_is_a_bad_record():
    class Stuck(ScriptedExchange):
        def trades_from_id(self, symbol, from_id, limit=1000):
            return [{"id": 1}] * limit

    with pytest.raises(BadRecord, match="only older ids"):
        list(trade_pages(Stuck(), "X", 10, 5000, limit=3))


def test_trade_id_range_from_times():
    times = {i: 1_000_000 + (i - 100) * 30_000 for i in range(100, 400)}  # a trade every 30 s
    exchange = ScriptedExchange(trade_ids=range(100, 400), trade_times=times)
    assert trade_id_range(exchange, "X", 1_000_000, 1_000_000 + 60_000) == (100, 102)
    assert trade_id_range(exchange, "X", 1_000_001, 1_000_000 + 59_999) == (101, 101)
    newest = times[399]
    assert trade_id_range(exchange, "X", newest - 30_000, newest + 10**9) == (398, 399)
    assert trade_id_range(exchange, "X", newest + 1, newest + 10**9) is None
    assert trade_id_range(exchange, "X", 0, 999_999) is None
    # a quiet stretch of more than an hour is searched an hour at a time
    quiet = {100: 0, 101: 3 * 3_600_000 + 5}
    exchange = ScriptedExchange(trade_ids=[100, 101], trade_times=quiet)
    assert trade_id_range(exchange, "X", 1, 10**9) == (101, 101)
    assert len([c for c in exchange.calls if c[0] == "aggTrades"]) == 5
