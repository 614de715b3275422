"""``cap-stock backfill`` against a real Postgres (an empty database per test) and the
in-process simulator; the last test runs the command and follows the rows into Cassandra
through the CDC chain (the ``cdc_chain`` fixture)."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from capstock import cli
from capstock.backoff import Sleeper
from capstock.commands import EXIT_FAILED, EXIT_OK
from capstock.config import (
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
from capstock.model.tables import KLINE_DATA, RECENT_TRADES
from capstock.simulator import start_simulator
from capstock.staging.writer import PostgresWriter

from tests.support.cdc_harness import CdcHarness
from tests.support.clock import FakeClock, RecordingSleeper

pytestmark = pytest.mark.integration

NOW = 1_800_000_030.0
SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT"
CDC_TIMEOUT = 180.0


def _settings(url: str) -> Settings:
    return Settings(
        postgres=load(PostgresSettings),
        binance=load(BinanceSettings, api_url=url, weight_share=0.9),
        universe=load(UniverseSettings, size=3, min_quote_volume=Decimal(0)),
        jobs=load(JobSettings),
        log=load(LogSettings),
        spool=load(SpoolSettings),
    )


def _backfill(url, clock, writer, *argv, sleeper=None) -> int:
    sleeper = sleeper or RecordingSleeper(clock)
    settings = _settings(url)
    exchange = ExchangeClient(settings.binance, sleeper=sleeper, clock=clock, rng=lambda: 1.0)
    args = cli.build_parser().parse_args(["backfill", "--no-progress", *argv])
    return run_backfill(
        args,
        settings,
        writer=writer,
        sleeper=sleeper,
        exchange=exchange,
        clock=clock,
        stream=io.StringIO(),
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "")


@pytest.fixture
def market():
    clock = FakeClock(NOW)
    with start_simulator(symbols=4, seed=3, clock=clock, history_minutes=24 * 60) as sim:
        yield sim, clock


def _scalar(conninfo: str, query: str, *params):
    with psycopg.connect(conninfo) as conn:
        return conn.execute(query, params).fetchone()[0]


def test_a_day_of_klines_is_stored_once_and_a_second_run_changes_nothing(
    postgres_conninfo, market, caplog
):
    caplog.set_level(logging.INFO, logger="capstock.ingest.backfill")
    sim, clock = market
    writer = PostgresWriter(postgres_conninfo)
    writer.init_schema()
    window = ("--since", _iso(NOW - 86_400), "--symbols", SYMBOLS)
    assert _backfill(sim.url, clock, writer, *window) == EXIT_OK
    with psycopg.connect(postgres_conninfo) as conn:
        per_symbol = dict(
            conn.execute(
                "SELECT symbol, count(DISTINCT open_time) FROM kline_data GROUP BY symbol"
            ).fetchall()
        )
    assert per_symbol == {s: 1440 for s in SYMBOLS.split(",")}
    first = datetime.fromtimestamp(-(-int(NOW - 86_400) // 60) * 60, UTC)
    last = datetime.fromtimestamp(int(NOW) // 60 * 60, UTC)
    runs = writer.stored_kline_runs("BTCUSDT", "1m", first, last, timedelta(minutes=1))
    assert runs == [(first, last - timedelta(minutes=1))], "the open candle is not final"

    xmins = _scalar(postgres_conninfo, "SELECT sum(xmin::text::bigint) FROM kline_data")
    caplog.clear()
    assert _backfill(sim.url, clock, writer, *window) == EXIT_OK
    assert "stored=4317 missing=3 fetched=3 rows=3 changed=0" in caplog.text
    assert _scalar(postgres_conninfo, "SELECT sum(xmin::text::bigint) FROM kline_data") == xmins
    writer.close()


def test_an_interrupted_backfill_resumes_from_what_postgres_holds(postgres_conninfo, market):
    sim, clock = market
    sleeper = RecordingSleeper(clock)

    class StopAfterThree(PostgresWriter):
        writes = 0

        def write(self, table, rows):
            result = super().write(table, rows)
            StopAfterThree.writes += 1
            if StopAfterThree.writes == 3:
                sleeper.stop()  # what SIGINT/SIGTERM do
            return result

    writer = StopAfterThree(postgres_conninfo, sleeper=sleeper)
    writer.init_schema()
    until = NOW - 600
    window = ("--since", _iso(until - 23 * 3600), "--until", _iso(until), "--symbols", SYMBOLS)
    assert _backfill(sim.url, clock, writer, *window, sleeper=sleeper) == EXIT_FAILED
    assert _scalar(postgres_conninfo, "SELECT count(*) FROM kline_data") == 1380 + 1000
    pages = sim.requests["klines"]
    fresh = PostgresWriter(postgres_conninfo, sleeper=Sleeper())
    assert _backfill(sim.url, clock, fresh, *window) == EXIT_OK
    assert sim.requests["klines"] - pages == 3, "the rest of ETHUSDT, then SOLUSDT's two pages"
    assert _scalar(postgres_conninfo, "SELECT count(*) FROM kline_data") == 3 * 1380
    writer.close()
    fresh.close()


def test_trades_fill_every_id_of_the_range_and_only_the_holes(postgres_conninfo, market):
    sim, clock = market
    writer = PostgresWriter(postgres_conninfo)
    writer.init_schema()
    window = ("--since", _iso(NOW - 7200), "--until", _iso(NOW - 3600), "--datasets", "trades")
    assert _backfill(sim.url, clock, writer, *window, "--symbols", "BTCUSDT") == EXIT_OK
    expected = sim.market.trades_between(
        "BTCUSDT", int((NOW - 7200) * 1000), int((NOW - 3600) * 1000), 10**6
    )
    with psycopg.connect(postgres_conninfo) as conn:
        ids = [r[0] for r in conn.execute("SELECT trade_id FROM recent_trades ORDER BY 1")]
        assert ids == [t.id for t in expected]
        hole = ids[100:1600]
        conn.execute(
            "DELETE FROM recent_trades WHERE trade_id BETWEEN %s AND %s", (hole[0], hole[-1])
        )
    assert writer.stored_trade_id_runs("BTCUSDT", ids[0], ids[-1]) == [
        (ids[0], ids[99]),
        (ids[1600], ids[-1]),
    ]
    pages = sim.requests["historicalTrades"]
    assert _backfill(sim.url, clock, writer, *window, "--symbols", "BTCUSDT") == EXIT_OK
    assert sim.requests["historicalTrades"] - pages == 2  # 1,500 ids: two pages
    assert _scalar(postgres_conninfo, "SELECT count(*) FROM recent_trades") == len(ids)
    with psycopg.connect(postgres_conninfo) as conn:
        row = conn.execute(
            "SELECT price, qty, quote_qty, is_buyer_maker FROM recent_trades WHERE trade_id = %s",
            (hole[0],),
        ).fetchone()
    trade = next(t for t in expected if t.id == hole[0])
    assert row == (trade.price, trade.qty, trade.quote_qty, trade.is_buyer_maker)
    writer.close()


def test_backfilled_rows_reach_cassandra(cdc_chain: CdcHarness, cassandra_session):
    """The command itself (a subprocess, real settings) into the chain's database; the CDC
    chain carries every backfilled candle and trade to Cassandra unchanged."""
    with start_simulator(symbols=4, seed=5, history_minutes=180) as sim:
        proc = cdc_chain.run_producer(
            sim.url,
            "backfill",
            "--since",
            "2h",
            "--until",
            "1h",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--datasets",
            "klines,trades",
        )
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "backfill done" in proc.stderr and "klines: 100%" in proc.stderr
    candles = cdc_chain.postgres_rows(KLINE_DATA)
    assert len(candles) in (2 * 60, 2 * 61)  # an hour of candles: 61 opens if on the minute
    assert cdc_chain.postgres_rows(RECENT_TRADES)
    cdc_chain.wait_mirrored(cassandra_session, CDC_TIMEOUT)
