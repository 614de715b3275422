"""Stream mode into a real Postgres (an empty database per test), in this process, against
the in-process simulator: stream faults and a restart leave every trade id stored exactly
once (one run of consecutive ids, each row REST's), and the heartbeat's gap columns."""

from __future__ import annotations

import psycopg
import pytest
from capstock.simulator import start_simulator
from capstock.staging.writer import PostgresWriter

from tests.support.producer_fakes import make_producer
from tests.support.stream_checks import (
    assert_every_trade_once,
    last_trade_id,
    postgres_trades,
    streaming,
    wait_until,
)

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def stream_producer(sim, writer):
    ingest = {"mode": "stream", "stream_url": sim.ws_url, "stall_seconds": 1.5}
    return make_producer(sim.url, writer=writer, ingest=ingest, symbols=",".join(SYMBOLS))


def test_faults_and_a_restart_leave_one_run_of_trade_ids_in_postgres(postgres_conninfo):
    writer = PostgresWriter(postgres_conninfo)
    writer.init_schema()
    with start_simulator(symbols=3, seed=5, trade_rate=20, history_minutes=1) as sim:
        p = stream_producer(sim, writer)
        with streaming(p) as ingest:
            first = {
                s: assert_every_trade_once(sim.url, s, postgres_trades(postgres_conninfo, s))[0]
                for s in SYMBOLS
            }
            for kind, options in (
                ("ws_skip", {"count": 2, "paths": ["btcusdt@trade"]}),
                ("ws_drop", {"count": 1}),
                ("ws_stall", {"count": 1, "pongs": False}),
            ):
                sim.add_fault(kind, **options)
                wait_until(lambda: not sim.faults.snapshot(), lambda: str(sim.faults.snapshot()))
            for s in SYMBOLS:
                assert_every_trade_once(
                    sim.url, s, postgres_trades(postgres_conninfo, s), since=first[s]
                )
            p.heartbeat()
        stopped = last_trade_id(sim.url, "BTCUSDT")
        wait_until(lambda: last_trade_id(sim.url, "BTCUSDT") > stopped + 20, lambda: "no trades")
        restarted = stream_producer(sim, writer)
        with streaming(restarted) as ingest:
            for s in SYMBOLS:
                _, last = assert_every_trade_once(
                    sim.url, s, postgres_trades(postgres_conninfo, s), since=first[s]
                )
                runs = ingest.writer.call(
                    lambda s=s, last=last: writer.stored_trade_id_runs(s, first[s], last)
                )
                assert runs == [(first[s], last)]
            wait_until(lambda: ingest.open_gaps() == 0, lambda: "gaps still open")
            restarted.heartbeat()
    with psycopg.connect(postgres_conninfo) as conn:
        total, filled, open_, mode = conn.execute(
            "SELECT trade_gaps_total, trade_gaps_filled, trade_gaps_open, ingest_mode "
            "FROM heartbeat WHERE source = 'producer'"
        ).fetchone()
    assert mode == "stream" and open_ == 0
    assert filled >= 3 and total >= filled, "faults, then the restart, added to the totals"
