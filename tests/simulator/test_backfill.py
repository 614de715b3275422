"""``cap-stock backfill`` against the in-process simulator, into the in-memory writer."""

from __future__ import annotations

import io
import logging
import os
import signal
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from binance.client import Client
from capstock import cli
from capstock.commands import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from capstock.config import (
    MARKET_DATA_API_URL,
    BinanceSettings,
    JobSettings,
    LogSettings,
    PostgresSettings,
    Settings,
    SpoolSettings,
    UniverseSettings,
    load,
)
from capstock.exchange.client import ExchangeClient
from capstock.ingest.backfill_cli import run_backfill
from capstock.ingest.runner import install_signal_handlers
from capstock.simulator import start_simulator
from capstock.transform.rows import kline_row, ms_to_utc, trade_row

from tests.support.clock import FakeClock, RecordingSleeper
from tests.support.producer_fakes import MemoryWriter

NOW = 1_800_000_030.0  # 30 s into a minute
DAY = timedelta(days=1)
UNIVERSE = 20


def settings_for(url: str, **binance) -> Settings:
    return Settings(
        postgres=load(PostgresSettings),
        binance=load(BinanceSettings, api_url=url, **binance),
        universe=load(UniverseSettings, size=UNIVERSE, min_quote_volume=Decimal(0)),
        jobs=load(JobSettings),
        log=load(LogSettings),
        spool=load(SpoolSettings),
    )


def args_for(*argv: str):
    return cli.build_parser().parse_args(["backfill", *argv])


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "")


class Run:
    """One simulator on a fake clock, and backfills against it that share a writer."""

    def __init__(self, sim, clock: FakeClock, **binance) -> None:
        self.sim = sim
        self.clock = clock
        self.writer = MemoryWriter()
        self.settings = settings_for(sim.url, **binance)
        self.stderr = io.StringIO()
        self.exchange: ExchangeClient | None = None

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def __call__(self, *argv: str, sleeper=None, writer=None) -> int:
        sleeper = sleeper or RecordingSleeper(self.clock)
        self.exchange = ExchangeClient(
            self.settings.binance, sleeper=sleeper, clock=self.clock, rng=lambda: 1.0
        )
        return run_backfill(
            args_for(*argv),
            self.settings,
            writer=writer or self.writer,
            sleeper=sleeper,
            exchange=self.exchange,
            clock=self.clock,
            stream=self.stderr,
        )


@pytest.fixture(scope="module")
def day_market():
    clock = FakeClock(NOW)
    with start_simulator(symbols=UNIVERSE, seed=1, clock=clock, history_minutes=24 * 60) as sim:
        yield sim, clock


def rest_klines(url: str, symbol: str, start_ms: int, end_ms: int) -> list[list]:
    client = Client(ping=False, requests_params={"timeout": 10})
    client.API_URL = url
    out = []
    while start_ms <= end_ms:
        page = client.get_klines(
            symbol=symbol, interval="1m", startTime=start_ms, endTime=end_ms, limit=1000
        )
        if not page:
            break
        out += page
        start_ms = page[-1][0] + 60_000
    return out


def without_ingested_at(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "ingested_at"}


def test_a_day_of_one_minute_klines_for_the_universe(day_market):
    sim, clock = day_market
    run = Run(sim, clock)
    since = run.now - DAY
    assert run("--since", iso(since)) == EXIT_OK

    rows = run.writer.tables["kline_data"]
    symbols = {key[0] for key in rows}
    assert len(symbols) == UNIVERSE and all(s.endswith("USDT") for s in symbols)
    first_open = -(-int(since.timestamp()) // 60) * 60 * 1000
    last_open = int(NOW) // 60 * 60 * 1000
    expected = [ms_to_utc(ms) for ms in range(first_open, last_open + 1, 60_000)]
    assert len(expected) == 24 * 60
    for symbol in symbols:
        opens = sorted(key[2] for key in rows if key[0] == symbol)
        assert opens == expected, symbol
    # exactly once: every row written went to a distinct key
    assert sum(n for table, n in run.writer.batches if table == "kline_data") == len(rows)

    # the values are what the exchange's REST API answers, parsed as the live jobs parse them
    now = run.now
    for symbol in sorted(symbols)[:5]:
        rest = rest_klines(sim.url, symbol, first_open, last_open)
        rank = rows[(symbol, "1m", expected[0])]["rank"]
        want = [kline_row(symbol, "1m", k, now=now, rank=rank, ingested_at=now) for k in rest]
        got = [rows[(symbol, "1m", ms_to_utc(k[0]))] for k in rest]
        assert [without_ingested_at(r) for r in got] == [without_ingested_at(r) for r in want]
    assert {r["is_closed"] for r in rows.values() if r["open_time"] < expected[-1]} == {True}

    # the bar: done/total, rate and ETA, on stderr
    text = run.stderr.getvalue()
    assert "klines: 100%" in text and "28.8k/28.8k" in text and "kline/s" in text
    assert " weight=" in text


def test_a_second_run_fetches_nothing_and_changes_nothing(day_market, caplog):
    caplog.set_level(logging.INFO, logger="capstock.ingest.backfill")
    sim, clock = day_market
    run = Run(sim, clock)
    since = iso(run.now - timedelta(hours=3))
    assert run("--since", since, "--symbols", "BTCUSDT,SOLUSDT") == EXIT_OK
    before = {k: without_ingested_at(v) for k, v in run.writer.tables["kline_data"].items()}
    assert len(before) == 2 * 180
    pages = sim.requests["klines"]
    caplog.clear()
    assert run("--since", since, "--symbols", "BTCUSDT,SOLUSDT") == EXIT_OK
    # Only the open candle is not final: asked for again (one page per symbol), unchanged.
    assert sim.requests["klines"] - pages == 2
    assert run.writer.batches[-2:] == [("kline_data", 1), ("kline_data", 1)]
    assert "stored=358 missing=2 fetched=2 rows=2 changed=0" in caplog.text
    after = {k: without_ingested_at(v) for k, v in run.writer.tables["kline_data"].items()}
    assert after == before


def test_an_interrupted_run_continues_where_it_stopped(day_market, caplog):
    """SIGINT during the fifth page: that page is written, the run exits 1, and the next
    run asks only for the pages not yet written: no page twice. (The range ends before now,
    so every candle is closed: an open one is asked for again by every run.)"""
    caplog.set_level(logging.INFO, logger="capstock.ingest.backfill")
    sim, clock = day_market
    run = Run(sim, clock)
    until = run.now - timedelta(minutes=5)
    window = ("--since", iso(until - timedelta(hours=23)), "--until", iso(until))
    symbols = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT,XRPUSDT"
    sleeper = RecordingSleeper(clock)
    writes = []

    class Interrupting(MemoryWriter):
        def write(self, table, rows):
            result = super().write(table, rows)
            writes.append(len(rows))
            if len(writes) == 5:
                os.kill(os.getpid(), signal.SIGINT)
            return result

    writer = Interrupting()
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    install_signal_handlers(sleeper)
    try:
        pages = sim.requests["klines"]
        assert run(*window, "--symbols", symbols, sleeper=sleeper, writer=writer) == (EXIT_FAILED)
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
    assert len(writes) == 5, "stopped after the page in hand"
    assert writes == [1000, 380, 1000, 380, 1000]
    assert len(writer.tables["kline_data"]) == 2 * 1380 + 1000
    assert sim.requests["klines"] - pages == 5
    assert "backfill stopped (interrupted)" in caplog.text
    assert "run the same command again to continue (exit 1)" in caplog.text

    assert run(*window, "--symbols", symbols, writer=writer) == EXIT_OK
    assert sim.requests["klines"] - pages == 5 * 2, "two pages per symbol, each asked once"
    assert writes[5:] == [380, 1000, 380, 1000, 380]
    assert len(writer.tables["kline_data"]) == 5 * 1380
    assert "wanted=6900 stored=3760 missing=3140 fetched=3140 rows=3140 changed=3140" in (
        caplog.text
    )


def test_trades_by_id_every_trade_of_the_range_within_the_weight_budget():
    """A budget of 300 weight a minute (600 x 0.5) for pages of 25: the pacer waits, the
    exchange never answers 429, and every trade id of the range is stored once."""
    clock = FakeClock(NOW)
    with start_simulator(
        symbols=3, seed=2, clock=clock, history_minutes=300, weight_limit=600
    ) as sim:
        run = Run(sim, clock, weight_limit=600, weight_share=0.5)
        until = run.now - timedelta(minutes=40)
        since = until - timedelta(hours=3)
        status = run(
            "--since",
            iso(since),
            "--until",
            iso(until),
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--datasets",
            "trades",
        )
        assert status == EXIT_OK
        assert run.exchange is not None
        assert run.exchange.stats.rate_limited == 0
        assert run.exchange.pacer.waited_seconds > 60, "it had to wait for weight"
        assert 0 < sim.ledger.max_used() <= 300
        assert sim.requests["historicalTrades"] >= 20

        rows = run.writer.tables["recent_trades"]
        for symbol in ("BTCUSDT", "ETHUSDT"):
            market = sim.market.trades_between(
                symbol, int(since.timestamp() * 1000), int(until.timestamp() * 1000), 10**6
            )
            ids = sorted(key[1] for key in rows if key[0] == symbol)
            assert ids == [t.id for t in market]
            assert ids == list(range(ids[0], ids[-1] + 1))
            for trade in market[:: len(market) // 50]:
                row = rows[(symbol, trade.id)]
                assert (row["price"], row["qty"], row["quote_qty"]) == (
                    trade.price,
                    trade.qty,
                    trade.quote_qty,
                )
                assert row["trade_time"] == ms_to_utc(trade.time_ms)
                assert row["is_buyer_maker"] is trade.is_buyer_maker


def test_trades_fill_only_the_holes_the_live_job_left(caplog):
    caplog.set_level(logging.INFO, logger="capstock.ingest.backfill")
    from tests.support.producer_fakes import make_producer

    clock = FakeClock(NOW)
    with start_simulator(symbols=3, seed=4, clock=clock, history_minutes=90) as sim:
        producer = make_producer(sim.url, clock=clock, symbols=["BTCUSDT"])
        producer.trades()  # the newest 1,000 trades, as the live job stores them
        stored = set(producer.writer.tables["recent_trades"])
        assert len(stored) == 1000
        run = Run(sim, clock)
        status = run(
            "--since",
            "60m",
            "--symbols",
            "BTCUSDT",
            "--datasets",
            "trades",
            "--no-progress",
            writer=producer.writer,
        )
        assert status == EXIT_OK
        client = Client(ping=False, requests_params={"timeout": 5})
        client.API_URL = sim.url
        rows = producer.writer.tables["recent_trades"]
        ids = sorted(k[1] for k in rows)
        page = client.get_historical_trades(symbol="BTCUSDT", fromId=ids[0], limit=30)
    assert ids == list(range(ids[0], ids[-1] + 1))
    assert stored <= set(rows)
    assert f"stored=1000 missing={len(ids) - 1000} fetched={len(ids) - 1000}" in caplog.text
    now = run.now
    want = [trade_row("BTCUSDT", t, ingested_at=now) for t in page]
    assert [without_ingested_at(rows[("BTCUSDT", r["trade_id"])]) for r in want] == [
        without_ingested_at(r) for r in want
    ]
    assert run.stderr.getvalue() == ""  # --no-progress: no bar


def test_klines_the_exchange_does_not_have_are_counted_and_the_run_succeeds(caplog):
    caplog.set_level(logging.INFO, logger="capstock.ingest.backfill")
    clock = FakeClock(NOW)
    with start_simulator(symbols=3, seed=1, clock=clock, history_minutes=60) as sim:
        run = Run(sim, clock)
        status = run("--since", "2h", "--symbols", "BTCUSDT", "--no-progress")
    assert status == EXIT_OK
    assert "wanted=120 stored=0 missing=120 fetched=120 rows=61 changed=61 absent=59" in (
        caplog.text
    )
    assert len(run.writer.tables["kline_data"]) == 61


# -- usage errors: exit 2 and a line naming the problem ------------------------------------


def test_a_bad_time_or_dataset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["backfill", "--since", "yesterday-ish"])
    assert exit_.value.code == EXIT_CONFIG
    assert "argument --since: 'yesterday-ish' is not a time" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["backfill", "--since", "1d", "--datasets", "klines,candles"])
    assert exit_.value.code == EXIT_CONFIG
    assert "unknown dataset 'candles': choose from klines, trades" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["backfill", "--since", "1d", "--symbols", "BTC-USDT"])
    assert exit_.value.code == EXIT_CONFIG
    with pytest.raises(SystemExit) as exit_:
        cli.main(["backfill", "--until", "1d"])
    assert exit_.value.code == EXIT_CONFIG
    assert "--since" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--since", "2026-11-21", "--until", "2026-11-20"), "is not before --until 2026-11-20"),
        (("--since", "1d", "--interval", "1M"), "--interval=1M: '1M' cannot be paged by time"),
        (("--since", "1d", "--symbols", "NOPEUSDT,BTCUSDT"), "NOPEUSDT (code -1121: Invalid"),
    ],
)
def test_usage_errors_found_before_any_fetch(simulator, argv, message):
    stream = io.StringIO()
    status = run_backfill(
        args_for(*argv), settings_for(simulator.url), writer=MemoryWriter(), stream=stream
    )
    assert status == EXIT_CONFIG
    assert stream.getvalue().startswith("cap-stock backfill: ")
    assert message in stream.getvalue()
    assert simulator.requests["klines"] == 0


def test_the_trades_dataset_needs_an_exchange_that_serves_historical_trades():
    stream = io.StringIO()
    status = run_backfill(
        args_for("--since", "1d", "--datasets", "trades"),
        settings_for(MARKET_DATA_API_URL),
        writer=MemoryWriter(),
        stream=stream,
    )
    assert status == EXIT_CONFIG
    assert "does not serve /api/v3/historicalTrades" in stream.getvalue()


def test_the_command_line_reaches_the_backfill(simulator, monkeypatch, capsys):
    monkeypatch.setenv("POSTGRES_PASSWORD", "x")
    monkeypatch.setenv("BINANCE_API_URL", simulator.url)
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(["backfill", "--since", "2h", "--until", "3h"]) == EXIT_CONFIG
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
    assert "is not before --until 3h" in capsys.readouterr().err


def test_a_failing_symbol_does_not_stop_the_others(caplog, monkeypatch):
    from capstock.backoff import RetriesExhausted

    caplog.set_level(logging.INFO, logger="capstock.ingest.backfill")
    real = ExchangeClient.klines

    def klines(self, symbol, *args, **kwargs):
        if symbol == "ETHUSDT":
            raise RetriesExhausted("klines: HTTP 503 six times")
        return real(self, symbol, *args, **kwargs)

    monkeypatch.setattr(ExchangeClient, "klines", klines)
    clock = FakeClock(NOW)
    with start_simulator(symbols=3, seed=1, clock=clock, history_minutes=60) as sim:
        run = Run(sim, clock)
        status = run("--since", "30m", "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT")
    assert status == EXIT_FAILED
    assert {k[0] for k in run.writer.tables["kline_data"]} == {"BTCUSDT", "SOLUSDT"}
    assert "symbol=ETHUSDT dataset=klines failed: klines: HTTP 503 six times" in caplog.text
    assert "failed: ETHUSDT (run again to retry them) (exit 1)" in caplog.text


def test_an_exchange_without_historical_trades_is_a_usage_error(monkeypatch):
    from capstock.exchange.client import SymbolRejected

    def not_found(self, symbol, from_id, limit=1000):
        raise SymbolRejected(symbol, "historicalTrades", 404, None, "Not Found")

    monkeypatch.setattr(ExchangeClient, "trades_from_id", not_found)
    clock = FakeClock(NOW)
    with start_simulator(symbols=3, seed=1, clock=clock, history_minutes=60) as sim:
        run = Run(sim, clock)
        status = run("--since", "30m", "--symbols", "BTCUSDT", "--datasets", "trades")
    assert status == EXIT_CONFIG
    assert f"{sim.url} does not serve /api/v3/historicalTrades (HTTP 404)" in (
        run.stderr.getvalue()
    )
