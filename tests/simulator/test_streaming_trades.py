"""Stream mode against the in-process simulator: every trade id exactly once, whatever the
streams do (a skipped message, a dropped connection, a silent one, a rollover, a restart of
the producer), checked against the simulator's REST history. Rows go to an in-memory
writer through the stream writer thread."""

import logging
from dataclasses import replace

import pytest
from capstock.simulator import start_simulator

from tests.support.producer_fakes import MemoryWriter, make_producer
from tests.support.stream_checks import (
    assert_every_trade_once,
    last_trade_id,
    streaming,
    wait_until,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture
def sim():
    """A simulator on the real clock trading 20 times a second per symbol."""
    with start_simulator(symbols=3, seed=7, trade_rate=20, history_minutes=1) as s:
        yield s


def stream_producer(sim, writer=None, symbols=SYMBOLS, **ingest):
    options = {"stream_url": sim.ws_url, "stall_seconds": 1.5, "flush_ms": 50, **ingest}
    return make_producer(
        sim.url, writer=writer, ingest={"mode": "stream", **options}, symbols=",".join(symbols)
    )


def stored_trades(ingest, writer, symbol):
    """Trade id → row of ``symbol``, read in the writer thread (it owns the writer)."""
    return lambda: ingest.writer.call(
        lambda: {k[1]: row for k, row in writer.tables["recent_trades"].items() if k[0] == symbol}
    )


def settle(ingest):
    wait_until(
        lambda: ingest.open_gaps() == 0 and ingest.worker.idle(),
        lambda: f"open gaps {ingest.open_gaps()}",
    )


def test_streamed_trades_are_the_rest_trades_each_once(sim):
    writer = MemoryWriter()
    p = stream_producer(sim, writer)
    with streaming(p) as ingest:
        btc = stored_trades(ingest, writer, "BTCUSDT")
        wait_until(lambda: len(btc()) > 40, lambda: f"{len(btc())} BTCUSDT trades")
        for symbol in SYMBOLS:
            first, last = assert_every_trade_once(
                sim.url, symbol, stored_trades(ingest, writer, symbol)
            )
            assert last - first > 10
        assert ingest.counters.trades > 30
        assert sum(c.stats.connects for c in ingest.connections) == 1, "12 streams, one connection"
    assert ingest.counters.filled_rows == 0 and p.trade_gaps_total == 0, "nothing missed"


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "ws_skip", "count": 3, "paths": ["btcusdt@trade"]},
        {"kind": "ws_drop", "count": 1},
        {"kind": "ws_stall", "count": 1},
        {"kind": "ws_stall", "count": 1, "pongs": False},
        {"kind": "ws_rollover", "count": 1},
    ],
    ids=["skip", "drop", "stall", "stall-no-pongs", "rollover"],
)
def test_a_stream_fault_leaves_no_trade_id_out(sim, fault, caplog):
    caplog.set_level(logging.INFO)
    writer = MemoryWriter()
    p = stream_producer(sim, writer)
    with streaming(p) as ingest:
        first = {
            s: assert_every_trade_once(sim.url, s, stored_trades(ingest, writer, s))[0]
            for s in SYMBOLS
        }
        kind = fault.pop("kind")
        sim.add_fault(kind, **fault)
        faults_hit = lambda: not sim.faults.snapshot()  # noqa: E731
        wait_until(faults_hit, lambda: f"faults left: {sim.faults.snapshot()}")
        if kind != "ws_skip":
            wait_until(
                lambda: sum(c.stats.reconnects for c in ingest.connections) >= 1,
                lambda: "no reconnect",
            )
        for symbol in SYMBOLS:
            assert_every_trade_once(
                sim.url, symbol, stored_trades(ingest, writer, symbol), since=first[symbol]
            )
        settle(ingest)
        stats = ingest.connections[0].stats
        beat = p.heartbeat()
    assert ingest.counters.filled_rows >= 1, "the missing ids came from REST"
    if kind == "ws_stall":
        assert stats.stalls == 1, "the watchdog reopened the silent connection"
    row = writer.tables["heartbeat"][("producer",)]
    assert beat.rows == 1 and row["ingest_mode"] == "stream"
    assert row["trade_gaps_total"] >= 1
    assert row["trade_gaps_filled"] == row["trade_gaps_total"]
    assert row["trade_gaps_open"] == 0
    assert "trade gap filled symbol=" in caplog.text


def test_a_restart_fills_what_happened_while_the_producer_was_away(sim):
    writer = MemoryWriter()
    with streaming(stream_producer(sim, writer)) as ingest:
        first = assert_every_trade_once(
            sim.url, "BTCUSDT", stored_trades(ingest, writer, "BTCUSDT")
        )[0]
    stopped_at = max(k[1] for k in writer.tables["recent_trades"] if k[0] == "BTCUSDT")
    wait_until(
        lambda: last_trade_id(sim.url, "BTCUSDT") > stopped_at + 20,
        lambda: "the market did not trade",
    )
    p = stream_producer(sim, writer)
    with streaming(p) as ingest:
        assert ingest.ledgers["BTCUSDT"].high is not None
        assert_every_trade_once(
            sim.url, "BTCUSDT", stored_trades(ingest, writer, "BTCUSDT"), since=first
        )
        settle(ingest)
    assert p.trade_gaps_filled_unsaved >= 1 and ingest.counters.filled_rows > 20


def test_a_planned_rollover_overlaps_the_connections_and_needs_no_fill(sim):
    writer = MemoryWriter()
    p = stream_producer(sim, writer, rollover_seconds=2)
    with streaming(p) as ingest:
        first = assert_every_trade_once(
            sim.url, "ETHUSDT", stored_trades(ingest, writer, "ETHUSDT")
        )[0]
        wait_until(
            lambda: ingest.connections[0].stats.rollovers >= 2,
            lambda: f"rollovers: {ingest.connections[0].stats}",
        )
        for symbol in SYMBOLS:
            assert_every_trade_once(sim.url, symbol, stored_trades(ingest, writer, symbol))
        assert_every_trade_once(
            sim.url, "ETHUSDT", stored_trades(ingest, writer, "ETHUSDT"), since=first
        )
        stats = ingest.connections[0].stats
        wait_until(
            lambda: sim.streams.state()["connections"] == 1,
            lambda: f"{sim.streams.state()['connections']} connections open",
            timeout=5,
        )
    assert stats.reconnects == 0, "replaced, never lost"
    assert ingest.counters.duplicates >= 0


def test_symbols_share_connections_up_to_the_limit(sim):
    writer = MemoryWriter()
    p = stream_producer(sim, writer, streams_per_connection=8)
    with streaming(p) as ingest:
        assert [len(c.streams) for c in ingest.connections] == [8, 4], "2 symbols, then 1"
        for symbol in SYMBOLS:
            assert_every_trade_once(sim.url, symbol, stored_trades(ingest, writer, symbol))
    assert sim.streams.state()["counts"]["opened"] == 2


def test_a_universe_change_subscribes_and_unsubscribes_on_the_open_connection(sim):
    writer = MemoryWriter()
    p = stream_producer(sim, writer, symbols=["BTCUSDT", "ETHUSDT"])
    with streaming(p) as ingest:
        assert_every_trade_once(sim.url, "ETHUSDT", stored_trades(ingest, writer, "ETHUSDT"))
        btc = next(r for r in p.universe if r.symbol == "BTCUSDT")
        ingest.apply_universe([btc, replace(btc, symbol="SOLUSDT", rank=3)])
        (conn,) = ingest.connections
        wait_until(
            lambda: sim.streams.state()["streams"] == sorted(conn.streams),
            lambda: f"the simulator serves {sim.streams.state()['streams']}",
        )
        assert "ETHUSDT" not in ingest.ledgers and "solusdt@trade" in conn.streams
        assert_every_trade_once(sim.url, "SOLUSDT", stored_trades(ingest, writer, "SOLUSDT"))
        assert ingest.ranks == {"BTCUSDT": btc.rank, "SOLUSDT": 3}
    assert conn.stats.control_sent == 2 and conn.stats.connects == 1, "no reconnect needed"
    assert conn.stats.errors == []


def test_a_stream_that_cannot_connect_is_the_heartbeats_exchange_error(sim):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    writer = MemoryWriter()
    p = stream_producer(sim, writer, stream_url=f"ws://127.0.0.1:{closed}")
    with streaming(p) as ingest:
        wait_until(
            lambda: ingest.connections[0].last_error is not None,
            lambda: "never tried to connect",
        )
        p.heartbeat()
    row = writer.tables["heartbeat"][("producer",)]
    assert row["exchange_error"].startswith("stream connection c1 down: ")
    assert "Connect" in row["exchange_error"] and row["exchange_error_since"] is not None
