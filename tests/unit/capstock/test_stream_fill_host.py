"""Stream mode against a REST host without ``historicalTrades`` (data-api.binance.vision):
trade-id holes cannot be filled there, so the producer says so once and leaves them open
instead of asking again forever. No network: the exchange is scripted."""

from __future__ import annotations

import doctest
import logging

import capstock.ingest.streaming
from capstock.config import LIVE_API_URL, MARKET_DATA_API_URL
from capstock.exchange.client import RequestRejected
from capstock.ingest.streaming import build_stream_ingest, fill_problem
from capstock.transform.trade_gaps import Hole, TradeIdLedger
from capstock.transform.universe import Ranked

from tests.support.producer_fakes import make_producer

SIMULATOR_URL = "http://127.0.0.1:9/api"


class NoHistoricalTrades:
    """A REST host answering ``historicalTrades`` as data-api.binance.vision does."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        self.settings = settings
        self.calls = 0

    def trades_from_id(self, symbol, from_id, limit=1000):  # type: ignore[no-untyped-def]
        self.calls += 1
        raise RequestRejected("historicalTrades", 404, None, "Not Found")


def ingest_for(url: str):  # type: ignore[no-untyped-def]
    return build_stream_ingest(make_producer(url))


def test_only_a_host_known_not_to_serve_historical_trades_is_a_problem_up_front():
    assert fill_problem(LIVE_API_URL) is None
    assert fill_problem(SIMULATOR_URL) is None
    problem = fill_problem(MARKET_DATA_API_URL)
    assert problem is not None
    assert "historicalTrades" in problem and "left open" in problem
    assert f"BINANCE_API_URL={LIVE_API_URL}" in problem, "it names the fix"
    assert "HTTP 404" in (fill_problem(SIMULATOR_URL, answered_404=True) or "")


def test_the_start_says_so_once(caplog):
    ingest = ingest_for(MARKET_DATA_API_URL)
    ingest.producer.universe = [Ranked("BTCUSDT", 1, {})]
    ingest.apply_universe = lambda ranked: None  # no connections in a unit test
    with caplog.at_level(logging.WARNING, logger="capstock.ingest.streaming"):
        ingest.start()
        ingest.stop()
    said = [r for r in caplog.records if "historicalTrades" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert ingest_for(SIMULATOR_URL).fill_problem is None


def test_a_hole_is_counted_and_left_open_not_queued_for_a_fill(caplog):
    ingest = ingest_for(MARKET_DATA_API_URL)
    with caplog.at_level(logging.WARNING):
        ingest._hole_found("BTCUSDT", Hole(101, 103))
    assert ingest.worker.pending("fill") == 0, "nothing would ever fill it"
    assert ingest.producer.trade_gaps_unsaved == 1, "still counted as a gap"
    assert not any("filling from REST" in r.getMessage() for r in caplog.records)


def test_a_404_answer_to_a_fill_stops_asking_and_leaves_every_hole_open(caplog):
    ingest = ingest_for(SIMULATOR_URL)
    exchange = NoHistoricalTrades(ingest.exchange.settings)
    ingest.exchange = exchange
    ledger = TradeIdLedger(100)
    ledger.accept(104)
    ingest.ledgers["BTCUSDT"] = ledger
    with caplog.at_level(logging.ERROR, logger="capstock.ingest.streaming"):
        ingest._fill("BTCUSDT", 101)
        ingest._fill("BTCUSDT", 101)  # one already queued before the 404 was known
    assert ingest.worker.pending("fill") == 0, "a 404 is not retried"
    assert ledger.holes == [Hole(101, 103)], "the hole stays open (trade_gaps_open)"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "HTTP 404" in errors[0] and LIVE_API_URL in errors[0]
    ingest._hole_found("BTCUSDT", Hole(106, 107))
    assert ingest.worker.pending("fill") == 0 and exchange.calls == 2


def test_the_docstring_examples_hold():
    result = doctest.testmod(capstock.ingest.streaming)
    assert result.attempted and not result.failed
