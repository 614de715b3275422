"""Trade-id gap accounting (capstock.transform.trade_gaps): integers in, new ids and gaps out."""

import doctest

import capstock.transform.trade_gaps
from capstock.transform.trade_gaps import Gap, TradeIds, account_trade_ids


def test_consecutive_ids_after_the_last_seen_have_no_gap():
    ids = account_trade_ids(100, [101, 102, 103])
    assert ids == TradeIds(new=(101, 102, 103), gaps=(), last=103)
    assert ids.missing == 0


def test_ids_already_seen_are_not_new():
    ids = account_trade_ids(102, [100, 101, 102, 103])
    assert ids.new == (103,) and ids.gaps == () and ids.last == 103


def test_a_gap_between_polls():
    ids = account_trade_ids(100, [108, 109])
    assert ids.gaps == (Gap(last_seen=100, next=108),)
    assert ids.missing == 7 and ids.new == (108, 109)


def test_gaps_inside_one_answer_are_counted_in_order_whatever_the_answer_order():
    ids = account_trade_ids(None, [15, 10, 11, 13])
    assert ids.new == (10, 11, 13, 15)
    assert ids.gaps == (Gap(11, 13), Gap(13, 15))
    assert ids.missing == 2 and ids.last == 15


def test_nothing_stored_yet_means_no_gap_before_the_first_id():
    assert account_trade_ids(None, [500, 501]).gaps == ()


def test_an_empty_or_old_answer_keeps_the_last_seen_id():
    assert account_trade_ids(100, []) == TradeIds(new=(), gaps=(), last=100)
    assert account_trade_ids(100, [99, 100]) == TradeIds(new=(), gaps=(), last=100)
    assert account_trade_ids(None, []) == TradeIds(new=(), gaps=(), last=None)


def test_a_repeated_id_counts_once_and_is_no_gap():
    ids = account_trade_ids(100, [101, 101, 102])
    assert ids.new == (101, 102) and ids.gaps == ()


def test_the_docstring_example_holds():
    result = doctest.testmod(capstock.transform.trade_gaps)
    assert result.attempted and not result.failed
