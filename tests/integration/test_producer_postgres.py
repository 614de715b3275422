"""The producer against a real Postgres (an empty database per test) and the simulator.

Needs the ``postgres_conninfo`` fixture (tests/integration/conftest.py: a fresh database
owned by cap_stock). The simulator runs in this process on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from capstock.backoff import Sleeper
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
from capstock.ingest.jobs import Producer
from capstock.model.tables import RECENT_TRADES, TABLES
from capstock.simulator import start_simulator
from capstock.staging.writer import PostgresWriter
from capstock.transform.rows import heartbeat_row
from psycopg.conninfo import conninfo_to_dict

from tests.support.clock import FakeClock, RecordingSleeper
from tests.support.simulator_fixtures import simulator, simulator_url  # noqa: F401

pytestmark = pytest.mark.integration

START = 1_799_999_940.0  # the start of a minute


def _settings(url: str, **universe) -> Settings:
    return Settings(
        postgres=load(PostgresSettings),
        binance=load(BinanceSettings, api_url=url, weight_share=0.9),
        universe=load(UniverseSettings, **{"size": 4, "min_quote_volume": Decimal(0), **universe}),
        jobs=load(JobSettings, trades_limit=1000, depth_levels=10, kline_limit=3),
        log=load(LogSettings),
        spool=load(SpoolSettings),
    )


def _producer(conninfo: str, url: str, clock=None, sleeper=None, **universe) -> Producer:
    settings = _settings(url, **universe)
    sleeper = sleeper or Sleeper()
    exchange = ExchangeClient(settings.binance, sleeper=sleeper)
    writer = PostgresWriter(conninfo, sleeper=sleeper)
    writer.init_schema()
    return Producer(settings, exchange, writer, sleeper=sleeper, clock=clock)


def _counts(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        return {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in TABLES
        }


def _env(conninfo: str, url: str, spool: Path) -> dict[str, str]:
    info = conninfo_to_dict(conninfo)
    return {
        **os.environ,
        "POSTGRES_HOST": str(info.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(info.get("port", "5432")),
        "POSTGRES_DB": str(info["dbname"]),
        "POSTGRES_USER": str(info["user"]),
        "POSTGRES_PASSWORD": str(info.get("password", "")),
        "BINANCE_API_URL": url,
        "UNIVERSE_SIZE": "3",
        "UNIVERSE_MIN_QUOTE_VOLUME": "0",
        "JOB_HEARTBEAT_SECONDS": "1",
        # Its own spool: the stack's belongs to the service user.
        "PRODUCER_SPOOL_DIR": str(spool),
    }


@pytest.fixture
def frozen_market():
    """A simulator whose clock only moves when the test says so."""
    clock = FakeClock(START + 30)
    with start_simulator(symbols=7, seed=3, clock=clock, history_minutes=5) as sim:
        yield sim, clock


def test_init_db_is_idempotent(postgres_conninfo):
    writer = PostgresWriter(postgres_conninfo)
    writer.init_schema()
    writer.init_schema()
    writer.close()
    with psycopg.connect(postgres_conninfo) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema='public'"
            )
        }
    assert names == set(TABLES)


def test_init_db_adds_the_columns_an_older_table_lacks(postgres_conninfo):
    """A heartbeat table from before exchange_error existed, with a row: init-db appends
    the new columns, keeps the row, and the table then matches a freshly created one."""
    with psycopg.connect(postgres_conninfo) as conn:
        conn.execute(
            "CREATE TABLE heartbeat (source text PRIMARY KEY, beat_time timestamptz NOT NULL, "
            "weight_used_1m int, trade_gaps_total bigint, ingested_at timestamptz NOT NULL)"
        )
        conn.execute("INSERT INTO heartbeat VALUES ('producer', now(), 5, 7, now())")
    writer = PostgresWriter(postgres_conninfo)
    writer.init_schema()
    writer.close()
    with psycopg.connect(postgres_conninfo) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'heartbeat' ORDER BY ordinal_position"
            )
        ]
        kept = conn.execute("SELECT trade_gaps_total, exchange_error FROM heartbeat").fetchall()
    assert columns == list(TABLES["heartbeat"].column_names)
    assert kept == [(7, None)]


def test_two_identical_cycles_write_no_duplicates(postgres_conninfo, frozen_market):
    sim, clock = frozen_market
    p = _producer(postgres_conninfo, sim.url, clock=clock)
    first = {r.job: r for r in p.once()}
    after_first = _counts(postgres_conninfo)
    assert all(after_first[name] > 0 for name in TABLES), after_first
    assert after_first["kline_data"] == 12 and after_first["order_book"] == 4 * 2 * 10
    assert first["trades"].changed == after_first["recent_trades"]

    # Same market, same clock: a second producer (a restart) fetches the same data.
    p2 = _producer(postgres_conninfo, sim.url, clock=clock)
    second = {r.job: r for r in p2.once()}
    assert _counts(postgres_conninfo) == after_first
    data_jobs = [job for job in second if job != "heartbeat"]  # heartbeat reports new weight
    assert {job: second[job].changed for job in data_jobs} == dict.fromkeys(data_jobs, 0)
    # the trades job resumed from the stored last id, so it wrote nothing at all
    assert second["trades"].rows == 0 and second["trades"].gaps == 0


def test_values_are_exact(postgres_conninfo, frozen_market):
    sim, clock = frozen_market
    p = _producer(postgres_conninfo, sim.url, clock=clock, symbols=["SHIBUSDT", "BTCUSDT"])
    p.once()
    raw = p.exchange.recent_trades("SHIBUSDT", 1)[0]
    with psycopg.connect(postgres_conninfo) as conn:
        price, qty, quote_qty, trade_time = conn.execute(
            "SELECT price::text, qty::text, quote_qty::text, trade_time FROM recent_trades "
            "WHERE symbol = 'SHIBUSDT' AND trade_id = %s",
            (raw["id"],),
        ).fetchone()
    assert (price, qty, quote_qty) == (raw["price"], raw["qty"], raw["quoteQty"])
    assert int(trade_time.timestamp() * 1000) == raw["time"]


def test_open_kline_is_updated_not_duplicated(postgres_conninfo, frozen_market):
    sim, clock = frozen_market
    p = _producer(postgres_conninfo, sim.url, clock=clock, symbols=["BTCUSDT"])
    p.refresh_universe()
    open_time_sql = (
        "SELECT open_time, volume, trade_count, is_closed FROM kline_data "
        "WHERE symbol = 'BTCUSDT' ORDER BY open_time DESC LIMIT 1"
    )
    p.klines()
    with psycopg.connect(postgres_conninfo) as conn:
        before = conn.execute(open_time_sql).fetchone()
    assert before[3] is False
    clock.advance(20)  # same minute, more trades
    p.klines()
    with psycopg.connect(postgres_conninfo) as conn:
        during = conn.execute(open_time_sql).fetchone()
        rows = conn.execute("SELECT count(*) FROM kline_data").fetchone()[0]
    assert during[0] == before[0] and during[2] > before[2] and during[1] > before[1]
    assert rows == 3
    clock.advance(15)  # the candle closes, a new one opens
    p.klines()
    with psycopg.connect(postgres_conninfo) as conn:
        closed = conn.execute(
            "SELECT is_closed, count(*) OVER () FROM kline_data WHERE open_time = %s",
            (before[0],),
        ).fetchone()
        total = conn.execute("SELECT count(*) FROM kline_data").fetchone()[0]
    assert closed == (True, 1)
    assert total == 4


def test_trade_id_gap_is_counted(postgres_conninfo, frozen_market):
    sim, clock = frozen_market
    p = _producer(postgres_conninfo, sim.url, clock=clock, symbols=["ETHUSDT"])
    p.once()
    sim.skip_trade_ids("ETHUSDT", 3)
    clock.advance(30)
    result = p.trades()
    p.heartbeat()
    assert result.gaps == 1
    with psycopg.connect(postgres_conninfo) as conn:
        gaps = conn.execute(
            "SELECT trade_gaps_total FROM heartbeat WHERE source = 'producer'"
        ).fetchone()[0]
        ids = [r[0] for r in conn.execute("SELECT trade_id FROM recent_trades ORDER BY 1")]
    assert gaps == 1
    missing = [b for a, b in itertools.pairwise(ids) if b != a + 1]
    assert len(missing) == 1


def test_trade_gap_total_adds_across_producer_runs(postgres_conninfo, frozen_market):
    sim, clock = frozen_market

    def stored() -> int | None:
        with psycopg.connect(postgres_conninfo) as conn:
            return conn.execute(
                "SELECT trade_gaps_total FROM heartbeat WHERE source = 'producer'"
            ).fetchone()[0]

    first = _producer(postgres_conninfo, sim.url, clock=clock, symbols=["ETHUSDT"])
    first.once()
    sim.skip_trade_ids("ETHUSDT", 3)
    clock.advance(30)
    assert first.trades().gaps == 1
    first.heartbeat()
    first.writer.close()
    assert stored() == 1
    # The next run (`cap-stock once`, a restart) adds to the stored total, not from 0.
    second = _producer(postgres_conninfo, sim.url, clock=clock, symbols=["ETHUSDT"])
    second.once()
    assert stored() == 1
    sim.skip_trade_ids("ETHUSDT", 2)
    clock.advance(30)
    assert second.trades().gaps == 1
    second.heartbeat()
    assert stored() == 2
    # A beat that does not know the total (Postgres was away for the read) writes NULL,
    # and the upsert keeps the stored total.
    now = datetime.now(UTC)
    row = heartbeat_row(
        "producer", beat_time=now, weight_used_1m=None, trade_gaps_total=None, ingested_at=now
    )
    second.writer.write(TABLES["heartbeat"], [row])
    second.writer.close()
    assert stored() == 2


def _terminate_writer_backends(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND usename = current_user"
        ).fetchone()[0]


def test_connection_loss_mid_run_loses_nothing(postgres_conninfo, frozen_market):
    sim, clock = frozen_market
    p = _producer(postgres_conninfo, sim.url, clock=clock)
    p.refresh_universe()
    fetched: list[int] = []
    original = p.exchange.recent_trades
    calls = 0

    def fetch(symbol, limit):
        nonlocal calls
        calls += 1
        trades = original(symbol, limit)
        fetched.extend(t["id"] for t in trades)
        if calls == len(p.universe):  # everything fetched, nothing written yet
            assert _terminate_writer_backends(postgres_conninfo) >= 1
        return trades

    p.exchange.recent_trades = fetch
    result = p.trades()
    assert p.writer.reconnects >= 1
    with psycopg.connect(postgres_conninfo) as conn:
        stored = {r[0] for r in conn.execute("SELECT trade_id FROM recent_trades")}
    assert stored == set(fetched)
    assert result.rows == len(fetched)

    # And again while the server keeps killing connections for a moment.
    clock.advance(10)
    for _ in range(3):
        _terminate_writer_backends(postgres_conninfo)
    p.exchange.recent_trades = original
    p.klines()
    assert _counts(postgres_conninfo)["kline_data"] >= 4


def test_a_failing_batch_is_never_half_written(postgres_conninfo):
    writer = PostgresWriter(postgres_conninfo, sleeper=RecordingSleeper())
    writer.init_schema()
    good = {
        "symbol": "BTCUSDT",
        "trade_id": 1,
        "price": Decimal("1.5"),
        "qty": Decimal("2"),
        "quote_qty": Decimal("3.0"),
        "trade_time": None,
        "is_buyer_maker": True,
        "is_best_match": True,
        "day": None,
        "ingested_at": None,
    }
    from datetime import UTC, datetime

    now = datetime(2026, 11, 21, tzinfo=UTC)
    rows = [
        {**good, "trade_id": i, "trade_time": now, "day": now.date(), "ingested_at": now}
        for i in range(1, 1001)
    ]
    rows[700]["price"] = None  # NOT NULL violation deep inside the batch
    with pytest.raises(psycopg.errors.NotNullViolation):
        writer.write(RECENT_TRADES, rows)
    assert _counts(postgres_conninfo)["recent_trades"] == 0
    rows[700]["price"] = Decimal("1.5")
    assert writer.write(RECENT_TRADES, rows).changed == 1000
    assert writer.write(RECENT_TRADES, rows).changed == 0
    writer.close()


def test_cli_once_twice_then_run_stops_cleanly_on_sigterm(
    postgres_conninfo,
    simulator_url,  # noqa: F811
    tmp_path,
):
    env = _env(postgres_conninfo, simulator_url, tmp_path / "spool")
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "capstock.cli", "once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "job=heartbeat" in proc.stderr
    counts = _counts(postgres_conninfo)
    assert all(counts[name] > 0 for name in TABLES), counts

    run = subprocess.Popen(
        [sys.executable, "-m", "capstock.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(postgres_conninfo, autocommit=True) as conn:
            first = conn.execute("SELECT beat_time FROM heartbeat WHERE source='producer'")
            beat0 = first.fetchone()[0]
            while time.monotonic() < deadline:
                beat = conn.execute(
                    "SELECT beat_time FROM heartbeat WHERE source='producer'"
                ).fetchone()[0]
                if beat > beat0:
                    break
                time.sleep(0.2)
            else:
                pytest.fail("cap-stock run never wrote a heartbeat")
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out
    assert "signal=SIGTERM received" in out and "producer stopped" in out
    assert "Traceback" not in out
