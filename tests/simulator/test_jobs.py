"""The producer's jobs against the simulator, with an in-memory writer instead of Postgres."""

import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from capstock.backoff import Interrupted
from capstock.exchange.client import ExchangeClient
from capstock.ingest.jobs import JOBS, JobResult
from capstock.simulator import start_simulator
from capstock.simulator.market import Market

from tests.support.clock import FakeClock
from tests.support.producer_fakes import MemoryWriter, make_producer


def test_one_cycle_fills_every_table_with_exact_values(simulator_url, caplog):
    caplog.set_level(logging.INFO, logger="capstock.ingest.jobs")
    p = make_producer(simulator_url)
    results = {r.job: r for r in p.once()}
    assert list(results) == [
        "ticker_24hr",
        "klines",
        "trades",
        "depth",
        "prices",
        "heartbeat",
        "retention",
    ]
    t = p.writer.tables
    symbols = {r.symbol for r in p.universe}
    assert len(symbols) == 4 and all(s.endswith("USDT") for s in symbols)
    assert {k[0] for k in t["top_24hr"]} == symbols
    assert {row["rank"] for row in t["top_24hr"].values()} == {1, 2, 3, 4}
    assert {k[0] for k in t["kline_data"]} == symbols
    assert len(t["kline_data"]) == 12
    assert len(t["order_book"]) == 4 * 2 * 5
    assert {k[0] for k in t["latest_prices"]} == symbols
    assert t["heartbeat"][("producer",)]["trade_gaps_total"] == 0
    assert all(isinstance(r["price"], Decimal) for r in t["recent_trades"].values())
    assert "job=klines symbols=4 rows=12" in caplog.text
    assert results["trades"].weight == 4 * 25


def test_second_cycle_adds_no_duplicate_trades_and_updates_the_open_kline():
    # One clock for exchange and producer, 10 s into a minute: 5 s later the same candle
    # is still open on both sides (with real clocks a minute boundary could fall between).
    now = [float((int(time.time()) // 60) * 60 + 10)]
    with start_simulator(symbols=8, seed=1, history_minutes=10, clock=lambda: now[0]) as sim:
        p = make_producer(sim.url, clock=lambda: now[0])
        p.once()
        trades_before = dict(p.writer.tables["recent_trades"])
        open_before = {k: r for k, r in p.writer.tables["kline_data"].items() if not r["is_closed"]}
        now[0] += 5
        second = {r.job: r for r in p.once()}
    trades_after = p.writer.tables["recent_trades"]
    new_ids = set(trades_after) - set(trades_before)
    assert second["trades"].rows == len(new_ids)  # only ids above the last one were sent
    assert second["trades"].gaps == 0
    open_after = {k: r for k, r in p.writer.tables["kline_data"].items() if not r["is_closed"]}
    assert len(open_after) == 4, "one open candle per symbol, updated in place"
    assert set(open_after) == set(open_before)
    assert any(open_after[k] != open_before[k] for k in open_after), "no open candle changed"


def test_trade_id_gap_is_counted_and_reported_in_the_heartbeat(simulator, simulator_url, caplog):
    p = make_producer(simulator_url, symbols=["BTCUSDT", "ETHUSDT"])
    p.once()
    last = p.last_trade_ids["BTCUSDT"]
    simulator.skip_trade_ids("BTCUSDT", 7)
    simulator.market.advance(simulator.market.now_ms + 60_000)
    result = p.trades()
    assert result.gaps == 1
    assert p.trade_gaps_total == 1 and p.trade_ids_missing_total == 7
    assert f"trade gap symbol=BTCUSDT last_seen={last} next={last + 8} missing=7" in caplog.text
    p.heartbeat()
    assert p.writer.tables["heartbeat"][("producer",)]["trade_gaps_total"] == 1


def _gap(simulator, producer, symbol="BTCUSDT"):
    simulator.skip_trade_ids(symbol, 3)
    simulator.market.advance(simulator.market.now_ms + 5_000)
    assert producer.trades().gaps == 1


def test_the_trade_gap_total_persists_across_runs_and_once_adds_to_it(simulator):
    store = MemoryWriter()

    def stored():
        return store.tables["heartbeat"][("producer",)]["trade_gaps_total"]

    running = make_producer(simulator.url, writer=store, symbols=["BTCUSDT"])
    running.once()
    _gap(simulator, running)
    running.heartbeat()
    assert stored() == 1

    # `cap-stock once` beside it (here on another symbol) adds to the stored total ...
    once = make_producer(simulator.url, writer=store, symbols=["SOLUSDT"])
    once.once()
    assert stored() == 1
    _gap(simulator, once, "SOLUSDT")
    once.heartbeat()
    assert stored() == 2
    # ... and the running producer's next beat keeps it, adding its own new gap.
    _gap(simulator, running)
    running.heartbeat()
    assert stored() == 3 == running.trade_gaps_total

    # A restart continues from the stored total instead of 0.
    restarted = make_producer(simulator.url, writer=store, symbols=["BTCUSDT"])
    assert restarted.once()[2].gaps == 0
    assert stored() == 3
    _gap(simulator, restarted)
    assert restarted.trade_gaps_total == 4
    restarted.heartbeat()
    assert stored() == 4


class UnreachableGaps(MemoryWriter):
    """Postgres away for the total's read (the SpoolingWriter answers None then)."""

    reachable = False

    def trade_gaps_total(self, source):
        return super().trade_gaps_total(source) if self.reachable else None


def test_a_beat_that_cannot_read_the_total_keeps_the_stored_one(simulator):
    store = UnreachableGaps()
    store.tables["heartbeat"][("producer",)] = {"trade_gaps_total": 7}
    p = make_producer(simulator.url, writer=store, symbols=["BTCUSDT"])
    p.once()
    _gap(simulator, p)
    p.heartbeat()
    row = store.tables["heartbeat"][("producer",)]
    assert row["trade_gaps_total"] == 7, "NULL keeps the stored total"
    assert row["beat_time"] is not None and p.trade_gaps_unsaved == 1
    store.reachable = True
    p.heartbeat()
    assert store.tables["heartbeat"][("producer",)]["trade_gaps_total"] == 8
    assert (p.trade_gaps_stored, p.trade_gaps_unsaved) == (8, 0)


def test_prices_store_only_the_universe_when_the_exchange_ignores_the_filter(simulator, caplog):
    caplog.set_level(logging.INFO, logger="capstock.ingest.jobs")
    simulator.add_fault("unfiltered", paths=["ticker/price"])
    p = make_producer(simulator.url)
    p.refresh_universe()
    universe = {r.symbol for r in p.universe}
    first, second = p.prices(), p.prices()
    assert {k[0] for k in p.writer.tables["latest_prices"]} == universe
    assert first.symbols == second.symbols == 4 and first.bad == 0
    extra = len(simulator.symbols()) - 4  # 4 more USDT pairs, ETHBTC and BNBBTC
    line = f"returned {extra} symbols outside the universe (e.g. BNBBTC, "
    assert caplog.text.count("ignored the symbols filter") == 1, "logged once, not per run"
    assert line in caplog.text
    simulator.clear_faults()
    p.prices()
    assert caplog.text.count("applies the symbols filter again") == 1


def test_the_universe_line_says_which_symbols_were_left_out_and_why(caplog):
    # The demo's market: 20 USDT pairs, seed 1, the default UNIVERSE_SIZE=20 and
    # UNIVERSE_MIN_QUOTE_VOLUME=1000000 give 19 symbols; the log must say why.
    caplog.set_level(logging.INFO, logger="capstock.ingest.jobs")
    with start_simulator(symbols=20, seed=1, history_minutes=1) as sim:
        p = make_producer(sim.url, size=20, min_quote_volume=Decimal("1000000"))
        p.refresh_universe()
        p.refresh_universe()  # the same members: no second line
    assert len(p.universe) == 19
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("universe:")]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("universe: 19 of UNIVERSE_SIZE=20 symbols by quote_volume: ")
    assert all(r.symbol in line for r in p.universe)
    left_out = line.split("; left out: ", 1)[1]
    assert left_out.startswith("1 under UNIVERSE_MIN_QUOTE_VOLUME=1000000 (PEPEUSDT=")
    assert left_out.endswith(", 2 not quoted in USDT (BNBBTC, ETHBTC)")


def test_a_change_of_members_is_logged_with_who_joined_and_who_dropped(simulator, caplog):
    caplog.set_level(logging.INFO, logger="capstock.ingest.jobs")
    p = make_producer(simulator.url, size=3)
    p.refresh_universe()
    before = [r.symbol for r in p.universe]
    # Raise the minimum volume just above the third's: it drops out, nobody replaces it.
    third = before[2]
    minimum = Decimal(simulator.market.ticker_24hr(third)["quoteVolume"]) + 1
    p.settings.universe.min_quote_volume = minimum
    p.refresh_universe()
    after = [r.symbol for r in p.universe]
    assert third not in after and len(after) == 2
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("universe:")][-1]
    assert f"joined: -; dropped: {third};" in line
    assert f"under UNIVERSE_MIN_QUOTE_VOLUME={minimum:f} ({third}=" in line


def test_an_empty_universe_is_a_warning_that_says_why(simulator, caplog):
    p = make_producer(simulator.url, size=3, min_quote_volume=Decimal("1e15"))
    p.refresh_universe()
    assert p.universe == []
    (record,) = [r for r in caplog.records if r.getMessage().startswith("universe:")]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(
        "universe: 0 of UNIVERSE_SIZE=3 symbols by quote_volume: -; "
        "left out: 8 under UNIVERSE_MIN_QUOTE_VOLUME=1000000000000000 ("
    )


def test_invalid_symbol_in_the_list_is_skipped_with_a_log_line(simulator_url, caplog):
    caplog.set_level(logging.INFO, logger="capstock.ingest.jobs")
    p = make_producer(simulator_url, symbols=["BTCUSDT", "NOPEUSDT", "SHIBUSDT"])
    result = p.refresh_universe()
    assert result.skipped == ["NOPEUSDT"]
    assert [r.symbol for r in p.universe] == ["BTCUSDT", "SHIBUSDT"]
    assert "skipping symbol=NOPEUSDT job=ticker_24hr status=400 code=-1121" in caplog.text
    assert "left out: 1 rejected by the exchange (NOPEUSDT)" in caplog.text
    p.refresh_universe()  # remembered: no second -1121 round trip
    assert p.rejected_symbols == {"NOPEUSDT"}


def test_symbol_rejected_mid_job_does_not_stop_the_others(simulator_url, caplog):
    p = make_producer(simulator_url)
    p.refresh_universe()
    from capstock.transform.universe import Ranked

    p.universe = [*p.universe[:2], Ranked("GONEUSDT", 3, {}), *p.universe[2:]]
    result = p.klines()
    assert result.skipped == ["GONEUSDT"] and result.symbols == 4
    assert "skipping symbol=GONEUSDT job=klines" in caplog.text


def test_stop_request_finishes_the_batch_in_hand(simulator_url):
    p = make_producer(simulator_url)
    p.refresh_universe()
    fetched = []
    original = p.exchange.order_book

    def fetch_then_stop(symbol, limit):
        fetched.append(symbol)
        if len(fetched) == 2:
            p.sleeper.stop()  # SIGTERM arrives during the second fetch
        return original(symbol, limit)

    p.exchange.order_book = fetch_then_stop
    result = p.depth()
    assert result.interrupted and len(fetched) == 2
    assert result.rows == 2 * 2 * 5  # both fetched books were written
    assert {k[0] for k in p.writer.tables["order_book"]} == set(fetched)


@pytest.mark.parametrize("rank_by", ["quote_volume", "price_change"])
def test_universe_rank_is_stored(simulator_url, rank_by):
    p = make_producer(simulator_url, rank_by=rank_by)
    p.refresh_universe()
    p.klines()
    ranks = {r.symbol: r.rank for r in p.universe}
    for row in p.writer.tables["kline_data"].values():
        assert row["rank"] == ranks[row["symbol"]]


def test_retention_deletes_only_old_rows_and_keeps_the_heartbeat(simulator_url):
    producer = make_producer(simulator_url)
    writer = producer.writer
    producer.once()
    trades = writer.tables["recent_trades"]
    some_key = next(iter(trades))
    trades[some_key]["ingested_at"] -= timedelta(hours=25)  # older than the 24 h default
    total_before = sum(len(t) for t in writer.tables.values())
    result = producer.retention()
    assert result.rows == 1
    assert some_key not in trades
    assert sum(len(t) for t in writer.tables.values()) == total_before - 1
    assert writer.tables["heartbeat"]  # never pruned


def test_a_restarted_simulator_continues_above_the_trade_ids_it_issued():
    # The producer stores only ids above the last stored one, so ids must never go back,
    # even when the demo's simulator restarts with the same seed and its own history.
    start_ms = 1_795_000_000_000
    before = Market(symbol_count=4, seed=1, now_ms=start_ms, trade_rate=20.0)
    before.advance(start_ms + 10_000)
    restarted = Market(
        symbol_count=4, seed=1, now_ms=start_ms + 10_000, trade_rate=20.0, history_minutes=0
    )
    for symbol, state in before.symbols.items():
        assert restarted.symbols[symbol].next_trade_id > state.next_trade_id, symbol


def test_during_a_418_ban_the_heartbeat_runs_and_exchange_jobs_skip_quietly(simulator, caplog):
    caplog.set_level(logging.INFO, logger="capstock")
    p = make_producer(simulator.url)
    clock = FakeClock()
    p.exchange = ExchangeClient(p.settings.binance, sleeper=p.sleeper, clock=clock)
    p.refresh_universe()
    fetched = []
    original = p.exchange.order_book

    def ban_before_the_third(symbol, limit):
        fetched.append(symbol)
        if len(fetched) == 3:
            simulator.add_fault("418", count=1, retry_after=120)
        return original(symbol, limit)

    p.exchange.order_book = ban_before_the_third
    depth = p.depth()  # the books fetched before the ban are still written
    assert depth.banned and depth.symbols == 2 and depth.rows == 2 * 2 * 5
    assert p.sleeper.waits == []
    requests_in_ban = p.exchange.stats.requests
    for _ in range(3):  # every job, three times, while banned
        for name, job in p.jobs().items():
            assert job().banned == (name not in ("heartbeat", "retention")), name
    assert p.exchange.stats.requests == requests_in_ban
    assert [b for b in p.writer.batches if b[0] == "heartbeat"] == [("heartbeat", 1)] * 3
    assert caplog.text.count("exchange ban (HTTP 418) until") == 1
    assert "job=klines" not in caplog.text  # skipped runs log nothing
    beat = p.writer.tables["heartbeat"][("producer",)]  # the ban is in the stores too
    until = datetime.fromtimestamp(clock() + 120, UTC).isoformat(timespec="seconds")
    assert beat["exchange_error"] == f"banned (HTTP 418) until {until}"
    assert beat["exchange_error_since"] == datetime.fromtimestamp(clock(), UTC)

    clock.advance(120)
    assert not p.klines().banned
    p.trades()
    assert caplog.text.count("exchange ban over") == 1
    p.heartbeat()
    beat = p.writer.tables["heartbeat"][("producer",)]
    assert beat["exchange_error"] is None and beat["exchange_error_since"] is None


def test_jobs_without_a_universe_count_as_failed(caplog):
    """An exchange that cannot be reached leaves no universe: every per-symbol job then
    says failed, not `symbols=0 rows=0 failed=0`."""
    producer = make_producer("http://127.0.0.1:9/api")
    result = producer.trades()
    assert result.failed == ["*"] and result.symbols == 0
    assert "job=trades skipped: no universe yet" in caplog.text
    assert "failed=1" in result.line()
    assert producer.sleeper.waits == []  # the heartbeat is not kept waiting by retries


def _scripted_jobs(producer, **errors):
    """Replace every job of ``producer`` by one that records its run and raises
    ``errors[name]`` if given."""
    ran = []

    def scripted(name):
        def run():
            ran.append(name)
            if name in errors:
                raise errors[name]
            return JobResult(name)

        return run

    for name, job in producer.jobs().items():
        setattr(producer, job.__name__, scripted(name))
    return ran


def test_a_job_that_raises_is_logged_and_the_cycle_goes_on(caplog):
    producer = make_producer("http://127.0.0.1:9/api")
    ran = _scripted_jobs(producer, trades=RuntimeError("boom"))
    results = producer.once()
    assert ran == list(producer.jobs()), "every job ran once, in order"
    assert [r.job for r in results if r.crashed] == ["trades"]
    assert "job=trades failed" in caplog.text and "boom" in caplog.text


def test_a_shutdown_ends_the_cycle_without_counting_as_a_crash(caplog):
    producer = make_producer("http://127.0.0.1:9/api")

    def stop_during_depth():
        producer.sleeper.stop()
        raise Interrupted()

    ran = _scripted_jobs(producer)
    producer.depth = stop_during_depth
    results = producer.once()
    assert ran == ["ticker_24hr", "klines", "trades"]
    assert results[-1].job == "depth" and results[-1].interrupted
    assert not any(r.crashed for r in results)
    assert "job=depth stopped" in caplog.text


def test_jobs_and_intervals_follow_the_job_table():
    producer = make_producer("http://127.0.0.1:9/api")
    assert list(producer.jobs()) == [job.name for job in JOBS]
    assert producer.jobs()["ticker_24hr"] == producer.refresh_universe
    intervals = producer.intervals()
    assert list(intervals) == list(producer.jobs())
    assert intervals["heartbeat"] == producer.settings.jobs.heartbeat_seconds
