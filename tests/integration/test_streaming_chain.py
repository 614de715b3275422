"""Stream mode end to end on the native stack: simulator streams → `cap-stock run`
(INGEST_MODE=stream) → Postgres → Debezium → Kafka → sink → Cassandra, with every stream
fault injected and a producer restart in the window. Every trade id the simulator made in
the window is in both stores exactly once, with REST's values; every table is filled.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from capstock.simulator import Simulator, start_simulator
from psycopg import sql

from tests.support.cdc_harness import CdcHarness, wait_for
from tests.support.stream_checks import assert_every_trade_once, last_trade_id
from tests.support.stream_checks import postgres_trades as stored_trades

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SHIBUSDT"]
MIRROR_TIMEOUT = 120
FAULTS = [
    {"kind": "ws_skip", "count": 3, "paths": ["btcusdt@trade", "ethusdt@trade"]},
    {"kind": "ws_drop", "count": 1},
    {"kind": "ws_stall", "count": 1},
    {"kind": "ws_rollover", "count": 1},
    {"kind": "ws_skip", "count": 1, "paths": ["btcusdt@depth"]},
]


@pytest.fixture(scope="module")
def exchange() -> Iterator[Simulator]:
    sim = start_simulator(symbols=8, seed=13, trade_rate=15.0, history_minutes=5)
    yield sim
    sim.close()


def stream_env(exchange: Simulator) -> dict[str, str]:
    return {
        "INGEST_MODE": "stream",
        "INGEST_STREAM_URL": exchange.ws_url,
        "INGEST_STALL_SECONDS": "2",
        "UNIVERSE_SYMBOLS": ",".join(SYMBOLS),
        "JOB_DEPTH_SECONDS": "2",
        "JOB_TICKER_SECONDS": "2",
        "JOB_PRICES_SECONDS": "2",
        "JOB_HEARTBEAT_SECONDS": "1",
    }


def stop(producer: subprocess.Popen, log_file: Path) -> None:
    producer.send_signal(signal.SIGTERM)
    try:
        assert producer.wait(timeout=60) == 0, log_file.read_text()[-4000:]
    finally:
        if producer.poll() is None:
            producer.kill()


def postgres_trades(chain: CdcHarness, symbol: str):  # type: ignore[no-untyped-def]
    return stored_trades(chain.conninfo, symbol)


def heartbeat(chain: CdcHarness) -> dict:
    with psycopg.connect(chain.conninfo) as conn:
        cur = conn.execute("SELECT * FROM heartbeat WHERE source = 'producer'")
        names = [c.name for c in cur.description or []]
        row = cur.fetchone()
    return dict(zip(names, row, strict=True)) if row else {}


def test_every_trade_id_once_in_both_stores_through_faults_and_a_restart(
    cdc_chain: CdcHarness, cassandra_session, exchange: Simulator, tmp_path: Path
) -> None:
    log_file = tmp_path / "producer.log"
    env = stream_env(exchange)
    producer = cdc_chain.start_producer(exchange.url, log_file, **env)
    try:
        first = {}
        for symbol in SYMBOLS:
            first[symbol] = assert_every_trade_once(
                exchange.url, symbol, postgres_trades(cdc_chain, symbol), timeout=60
            )[0]
        for fault in FAULTS:
            exchange.add_fault(**fault)
            wait_for(
                lambda: not exchange.faults.snapshot(), 30, lambda: str(exchange.faults.snapshot())
            )
            time.sleep(3)  # the watchdog (2 s), reconnects, fills
        stop(producer, log_file)
        stopped_at = {s: last_trade_id(exchange.url, s) for s in SYMBOLS}
        wait_for(
            lambda: all(last_trade_id(exchange.url, s) > stopped_at[s] + 10 for s in SYMBOLS),
            30,
            lambda: "the market did not trade while the producer was away",
        )
        producer = cdc_chain.start_producer(exchange.url, log_file, **env)
        for symbol in SYMBOLS:
            assert_every_trade_once(
                exchange.url,
                symbol,
                postgres_trades(cdc_chain, symbol),
                since=first[symbol],
                timeout=90,
            )
        wait_for(
            lambda: heartbeat(cdc_chain).get("trade_gaps_open") == 0,
            30,
            lambda: f"heartbeat: {heartbeat(cdc_chain)}",
        )
    finally:
        stop(producer, log_file)

    text = log_file.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert "stream connection c1 silent" in text, "the watchdog reopened the stalled stream"
    assert "order book gap symbol=BTCUSDT" in text, "the skipped depth event resynced the book"
    beat = heartbeat(cdc_chain)
    assert beat["ingest_mode"] == "stream" and beat["trade_gaps_open"] == 0
    assert beat["trade_gaps_filled"] >= len(SYMBOLS), "the restart's gaps at least"
    assert beat["trade_gaps_total"] >= beat["trade_gaps_filled"]

    for table in ("kline_data", "order_book", "top_24hr", "latest_prices"):
        with psycopg.connect(cdc_chain.conninfo) as conn:
            symbols = {
                r[0]
                for r in conn.execute(
                    sql.SQL("SELECT DISTINCT symbol FROM {}").format(sql.Identifier(table))
                )
            }
        assert symbols == set(SYMBOLS), f"{table} is filled from the streams"

    cdc_chain.wait_mirrored(cassandra_session, MIRROR_TIMEOUT)
    rows = cassandra_session.execute(
        f"SELECT symbol, trade_id FROM {cdc_chain.name}.recent_trades", timeout=60
    )
    in_cassandra = Counter((r.symbol, r.trade_id) for r in rows)
    assert max(in_cassandra.values()) == 1, "no trade id twice in Cassandra"
    for symbol in SYMBOLS:
        ids = sorted(i for s, i in in_cassandra if s == symbol)
        assert ids == list(range(ids[0], ids[-1] + 1)), f"{symbol}: a hole in Cassandra"
        assert ids[0] <= first[symbol]
        assert set(ids) == set(postgres_trades(cdc_chain, symbol)())
