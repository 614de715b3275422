"""Universe ranking from ticker/24hr entries."""

from decimal import Decimal

from capstock.universe import rank_universe


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
