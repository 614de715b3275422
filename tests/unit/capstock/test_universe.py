"""Universe ranking from ticker/24hr entries."""

from decimal import Decimal

from capstock.transform.universe import describe_left_out, select_universe


def rank_universe(tickers, **options):
    return select_universe(tickers, **options).ranked


def ticker(symbol, quote_volume, change):
    return {"symbol": symbol, "quoteVolume": quote_volume, "priceChangePercent": change}


TICKERS = [
    ticker("BTCUSDT", "3696209134.03277583", "-3.743"),
    ticker("ETHUSDT", "1800000000.00000000", "1.200"),
    ticker("SHIBUSDT", "3166742.85664590", "8.378"),
    ticker("PEPEUSDT", "950000.00000000", "25.000"),  # below the minimum volume
    ticker("ETHBTC", "99999999999.00000000", "50.000"),  # wrong quote asset
    ticker("USDT", "1", "0"),
    ticker("DOGEUSDT", "3166742.85664590", "0.500"),  # ties SHIB on volume
]


def symbols(ranked):
    return [(r.symbol, r.rank) for r in ranked]


def test_top_n_by_quote_volume_with_minimum():
    ranked = rank_universe(TICKERS, size=10, min_quote_volume=Decimal("1000000"))
    assert symbols(ranked) == [
        ("BTCUSDT", 1),
        ("ETHUSDT", 2),
        ("DOGEUSDT", 3),
        ("SHIBUSDT", 4),
    ]


def test_size_cuts_the_list():
    assert symbols(rank_universe(TICKERS, size=2)) == [("BTCUSDT", 1), ("ETHUSDT", 2)]


def test_gainers_ranking():
    ranked = rank_universe(TICKERS, size=3, rank_by="price_change", min_quote_volume=Decimal(0))
    assert symbols(ranked) == [("PEPEUSDT", 1), ("SHIBUSDT", 2), ("ETHUSDT", 3)]


def test_explicit_list_ignores_filters_but_keeps_known_symbols_only():
    ranked = rank_universe(
        TICKERS, size=1, min_quote_volume=Decimal("1e12"), symbols=["ETHBTC", "PEPEUSDT", "NOPE"]
    )
    assert symbols(ranked) == [("ETHBTC", 1), ("PEPEUSDT", 2)]


def test_exact_decimal_comparison_not_float():
    # Equal as floats, different as decimals.
    a = ticker("AUSDT", "9007199254740993.00000001", "0")
    b = ticker("BUSDT", "9007199254740993.00000000", "0")
    assert symbols(rank_universe([b, a], size=2)) == [("AUSDT", 1), ("BUSDT", 2)]


def test_tickers_with_bad_numbers_are_skipped(caplog):
    bad = {"symbol": "XUSDT", "quoteVolume": 123.0, "priceChangePercent": "1"}
    ranked = rank_universe([bad, *TICKERS], size=10)
    assert "XUSDT" not in [r.symbol for r in ranked]
    assert "skipping ticker with bad numbers symbol=XUSDT" in caplog.text


def test_every_symbol_left_out_has_its_reason():
    bad = {"symbol": "XUSDT", "quoteVolume": 123.0, "priceChangePercent": "1"}
    selection = select_universe([bad, *TICKERS], size=3, min_quote_volume=Decimal("1000000"))
    assert symbols(selection.ranked) == [("BTCUSDT", 1), ("ETHUSDT", 2), ("DOGEUSDT", 3)]
    assert selection.left_out == {
        "beyond UNIVERSE_SIZE=3": [("SHIBUSDT", None)],
        "under UNIVERSE_MIN_QUOTE_VOLUME=1000000": [("PEPEUSDT", "950000.00000000")],
        "not quoted in USDT": [("ETHBTC", None), ("USDT", None)],
        "with malformed numbers": [("XUSDT", None)],
    }


def test_explicit_mode_names_the_symbols_the_exchange_did_not_list():
    selection = select_universe(TICKERS, size=1, symbols=["PEPEUSDT", "NOPE", "ETHBTC"])
    assert symbols(selection.ranked) == [("ETHBTC", 1), ("PEPEUSDT", 2)]
    assert selection.left_out == {"not listed by the exchange": [("NOPE", None)]}


def test_nothing_left_out_is_an_empty_mapping():
    selection = select_universe(TICKERS[:2], size=5)
    assert selection.left_out == {}
    assert describe_left_out(selection.left_out, 5) == "none"


def test_the_description_names_a_few_symbols_per_reason_and_counts_the_rest():
    many = [(f"S{i}BTC", None) for i in range(8)]
    left_out = {"under X=1": [("AUSDT", "0.5")], "not quoted in USDT": many}
    assert describe_left_out(left_out, 3) == (
        "1 under X=1 (AUSDT=0.5), 8 not quoted in USDT (S0BTC, S1BTC, S2BTC and 5 more)"
    )
