"""The streaming ingest's trade-id ledger (capstock.transform.trade_gaps.TradeIdLedger)."""

import pytest
from capstock.transform.trade_gaps import Gap, Hole, TradeIdLedger


def test_nothing_stored_starts_the_capture_at_the_first_id():
    ledger = TradeIdLedger(None)
    assert ledger.accept(500) == (True, None)
    assert ledger.accept(501) == (True, None) and ledger.high == 501


def test_a_jump_opens_a_hole_between():
    ledger = TradeIdLedger(100)
    assert ledger.accept(104) == (True, Hole(101, 103))
    assert ledger.holes == [Hole(101, 103)] and ledger.missing == 3
    assert Hole(101, 103).gap() == Gap(100, 104) and Hole(101, 103).size == 3


def test_duplicates_are_not_new_but_ids_inside_a_hole_are():
    ledger = TradeIdLedger(100)
    ledger.accept(101)
    ledger.accept(105)
    assert ledger.accept(101) == (False, None)
    assert ledger.accept(100) == (False, None), "stored before the start"
    assert ledger.accept(103) == (True, None)
    assert ledger.holes == [Hole(102, 104)], "the fill still fetches it"


def test_a_hole_fills_from_its_low_end_page_by_page():
    ledger = TradeIdLedger(0)
    ledger.accept(3001)
    assert not ledger.filled(1, 1, 1000)
    assert ledger.remaining(1) == Hole(1001, 3000)
    assert not ledger.filled(1, 2001, 3000), "a page that does not continue it moves nothing"
    assert ledger.remaining(1) == Hole(1001, 3000)
    assert not ledger.filled(1, 1001, 2000)
    assert ledger.filled(1, 2001, 3000) and ledger.holes == [] and ledger.remaining(1) is None
    assert not ledger.filled(1, 2001, 3000), "closed: a late page changes nothing"


def test_holes_are_independent():
    ledger = TradeIdLedger(10)
    ledger.accept(13)
    ledger.accept(20)
    assert ledger.holes == [Hole(11, 12), Hole(14, 19)]
    assert ledger.filled(14, 14, 19) and ledger.holes == [Hole(11, 12)]


def test_a_hole_left_by_an_earlier_run_is_taken_over():
    ledger = TradeIdLedger(100)
    ledger.reopen(Hole(50, 60))
    assert ledger.holes == [Hole(50, 60)] and ledger.accept(55) == (True, None)
    with pytest.raises(ValueError):
        ledger.reopen(Hole(99, 101))
