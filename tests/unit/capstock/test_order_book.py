"""The local order book (capstock.transform.order_book): Binance's documented procedure
step by step, on recorded-shape events."""

from decimal import Decimal as D

import pytest
from capstock.transform.order_book import DepthUpdate, LocalBook
from capstock.transform.rows import BadRecord


def event(first, last, bids=(), asks=(), e=1000):
    """A depthUpdate as Binance sends it."""
    return DepthUpdate.parse(
        {
            "e": "depthUpdate",
            "E": e,
            "s": "BNBBTC",
            "U": first,
            "u": last,
            "b": [[p, q] for p, q in bids],
            "a": [[p, q] for p, q in asks],
        }
    )


SNAPSHOT = ([(D("4.00"), D("431")), (D("3.99"), D("10"))], [(D("4.01"), D("12"))])


def synced_book(last_update_id=100):
    book = LocalBook("BNBBTC")
    assert book.on_event(event(95, 101, bids=[("4.00", "430")])) == "buffered"
    assert book.on_snapshot(last_update_id, *SNAPSHOT) == "synced"
    return book


def test_events_are_buffered_until_a_snapshot_they_continue():
    book = LocalBook("BNBBTC")
    assert book.on_event(event(90, 94)) == "buffered"
    assert book.on_event(event(95, 101, bids=[("4.00", "430")], e=7)) == "buffered"
    assert book.on_snapshot(100, *SNAPSHOT) == "synced"
    assert book.top() == (101, [(D("4.00"), D("430")), (D("3.99"), D("10"))], SNAPSHOT[1])
    assert book.event_ms == 7 and book.syncs == 1 and not book.buffer


def test_a_snapshot_older_than_the_first_buffered_event_is_refused():
    book = LocalBook("BNBBTC")
    book.on_event(event(120, 125))
    assert book.on_snapshot(110, *SNAPSHOT) == "too_old" and not book.synced
    assert book.on_snapshot(121, *SNAPSHOT) == "synced"


def test_a_snapshot_with_nothing_buffered_cannot_be_checked():
    assert LocalBook("X").on_snapshot(100, *SNAPSHOT) == "too_old"


def test_events_missing_between_the_snapshot_and_the_buffer_mean_another_snapshot():
    book = LocalBook("BNBBTC")
    book.on_event(event(90, 95))
    book.on_event(event(103, 110))  # 96..102 never arrived
    assert book.on_snapshot(100, *SNAPSHOT) == "gap" and not book.synced
    assert book.on_snapshot(104, *SNAPSHOT) == "synced" and book.update_id == 110


def test_old_events_are_ignored_and_quantities_are_absolute():
    book = synced_book()
    assert book.on_event(event(99, 101)) == "ignored"
    assert book.on_event(event(102, 103, bids=[("3.99", "0"), ("3.98", "5")])) == "applied"
    assert book.on_event(event(104, 104, asks=[("4.02", "0")])) == "applied", "absent: fine"
    update_id, bids, asks = book.top()
    assert update_id == 104 and bids == [(D("4.00"), D("430")), (D("3.98"), D("5"))]
    assert asks == [(D("4.01"), D("12"))]


def test_a_jump_in_u_discards_the_book_and_buffers_again():
    book = synced_book()
    assert book.on_event(event(105, 106)) == "gap"
    assert not book.synced and book.gaps == 1 and book.top() == (0, [], [])
    assert book.on_event(event(107, 108)) == "buffered"
    assert book.on_snapshot(107, *SNAPSHOT) == "synced" and book.update_id == 108


def test_top_limits_the_levels_and_changed_tells_whether_to_write():
    book = synced_book()
    assert book.changed
    assert book.top(1) == (101, [(D("4.00"), D("430"))], [(D("4.01"), D("12"))])


@pytest.mark.parametrize(
    "raw",
    [
        {"U": 1, "u": 2, "E": 3, "b": [], "a": "x"},
        {"U": "1", "u": 2, "E": 3, "b": [], "a": []},
        {"U": 5, "u": 2, "E": 3, "b": [], "a": []},
        {"u": 2, "E": 3, "b": [], "a": []},
        {"U": 1, "u": 2, "E": 3, "b": [["1.0"]], "a": []},
    ],
)
def test_malformed_events_are_bad_records(raw):
    with pytest.raises(BadRecord):
        DepthUpdate.parse(raw)
