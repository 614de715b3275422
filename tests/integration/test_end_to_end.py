"""End to end on the native stack: simulator → producer → Postgres → Debezium → Kafka
→ sink → Cassandra, with the committed connector settings (see cdc_harness).

The tests run in file order on one isolated chain: fill, compare, re-run, update,
restart Connect, heartbeat, and retention last.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from capstock.model.tables import HEARTBEAT, KLINE_DATA, RECENT_TRADES, TABLES, TOP_24HR, Table
from capstock.simulator import Simulator, start_simulator
from capstock.staging.writer import PostgresWriter

from stack.services import Connect
from tests.support.cdc_harness import CdcHarness, wait_for

pytestmark = pytest.mark.integration

ARRIVAL_TIMEOUT = 90


@pytest.fixture(scope="module")
def exchange() -> Iterator[Simulator]:
    # Many trades per second so the open candle surely changes between two cycles.
    sim = start_simulator(symbols=8, seed=11, trade_rate=20.0, history_minutes=5)
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def chain(cdc_chain: CdcHarness) -> CdcHarness:
    return cdc_chain


# Sub-cent pairs (8-decimal prices, quantities in the hundreds of millions) next to
# five-digit ones.
SYMBOLS = "BTCUSDT,ETHUSDT,SHIBUSDT,PEPEUSDT"


def run_cycle(chain: CdcHarness, exchange: Simulator) -> None:
    result = chain.run_producer(exchange.url, UNIVERSE_SYMBOLS=SYMBOLS)
    assert result.returncode == 0, result.stderr[-3000:]


def assert_table_mirrored(chain: CdcHarness, session, table: Table) -> None:  # type: ignore[no-untyped-def]
    """The same keys, and every column equal, in both stores (waiting for arrival)."""
    expected = chain.postgres_rows(table)
    state: dict = {"actual": {}}

    def mirrored() -> bool:
        state["actual"] = chain.cassandra_rows(session, table)
        return state["actual"] == expected

    def difference() -> str:
        actual = state["actual"]
        missing = [k for k in expected if k not in actual][:3]
        extra = [k for k in actual if k not in expected][:3]
        differing = [
            (expected[k], actual[k]) for k in expected if k in actual and actual[k] != expected[k]
        ][:2]
        return (
            f"{table.name}: postgres {len(expected)} rows, cassandra {len(actual)}; "
            f"missing {missing}; extra {extra}; differing {differing}\n"
            f"sink log:\n{chain.sink_output()}"
        )

    wait_for(mirrored, ARRIVAL_TIMEOUT, difference)


def assert_cassandra_mirrors_postgres(chain: CdcHarness, session) -> None:  # type: ignore[no-untyped-def]
    for table in TABLES.values():
        assert_table_mirrored(chain, session, table)


def test_every_row_arrives_with_identical_values(chain, exchange, cassandra_session) -> None:
    run_cycle(chain, exchange)
    for table in TABLES.values():
        assert chain.postgres_rows(table), f"the cycle wrote no {table.name} rows"
    assert_cassandra_mirrors_postgres(chain, cassandra_session)

    # The comparison covered the hard cases: sub-cent prices with 8 decimals and
    # volumes far beyond a double's exact range.
    trades = chain.cassandra_rows(cassandra_session, RECENT_TRADES).values()
    assert any(
        Decimal(t["price"]) < Decimal("0.001") and len(t["price"].split(".")[1]) == 8
        for t in trades
    )
    # More than 15 significant digits: a double could not have carried these exactly.
    volumes = [row["volume"] for row in chain.cassandra_rows(cassandra_session, TOP_24HR).values()]
    assert any(len(Decimal(v).as_tuple().digits) > 15 for v in volumes), volumes


def test_second_cycle_adds_no_duplicates(chain, exchange, cassandra_session) -> None:
    run_cycle(chain, exchange)
    assert_cassandra_mirrors_postgres(chain, cassandra_session)
    # Each stored trade produced exactly one change event: nothing was sent twice.
    assert chain.kafka_end_offsets(RECENT_TRADES) == len(chain.postgres_rows(RECENT_TRADES))


def test_open_kline_update_arrives_as_an_update(chain, exchange, cassandra_session) -> None:
    open_before = {
        k: row for k, row in chain.postgres_rows(KLINE_DATA).items() if not row["is_closed"]
    }
    assert open_before, "expected an open candle"
    events_before = chain.kafka_end_offsets(KLINE_DATA)
    exchange.market.advance(exchange.market.now_ms + 3_000)
    run_cycle(chain, exchange)
    after = chain.postgres_rows(KLINE_DATA)
    changed = [k for k, row in open_before.items() if after[k] != row]
    assert changed, "no open candle changed between cycles"
    assert chain.kafka_end_offsets(KLINE_DATA) > events_before
    assert_cassandra_mirrors_postgres(chain, cassandra_session)
    cassandra = chain.cassandra_rows(cassandra_session, KLINE_DATA)
    for key in changed:
        assert cassandra[key] == after[key]  # the new values, in the one row for that candle


def test_connect_restart_mid_stream_loses_and_duplicates_nothing(
    chain, exchange, cassandra_session, native_stack
) -> None:
    connect = Connect(native_stack)
    connect.stop()
    try:
        # Rows written while Connect is down wait in the replication slot.
        exchange.market.advance(exchange.market.now_ms + 2_000)
        run_cycle(chain, exchange)
    finally:
        connect.start()
    assert_cassandra_mirrors_postgres(chain, cassandra_session)


def test_heartbeats_reach_cassandra_and_give_freshness(chain, exchange, cassandra_session) -> None:
    run_cycle(chain, exchange)
    producer_beat = chain.postgres_rows(HEARTBEAT)[("producer",)]

    def debezium_beat_arrived() -> bool:
        return ("debezium",) in chain.cassandra_rows(cassandra_session, HEARTBEAT)

    # Debezium's heartbeat action query writes its own row every 10 s.
    wait_for(debezium_beat_arrived, ARRIVAL_TIMEOUT, lambda: chain.sink_output())
    assert_cassandra_mirrors_postgres(chain, cassandra_session)
    in_cassandra = chain.cassandra_rows(cassandra_session, HEARTBEAT)[("producer",)]
    assert in_cassandra["beat_time"] == producer_beat["beat_time"]
    freshness = datetime.now(UTC).replace(tzinfo=None) - in_cassandra["beat_time"]
    assert timedelta(0) <= freshness
    # Debezium's own row is written at millisecond precision (the comparison above
    # normalises both stores to milliseconds, so read Postgres' raw value here).
    with psycopg.connect(chain.conninfo) as conn:
        times = conn.execute(
            "SELECT beat_time, ingested_at FROM heartbeat WHERE source = 'debezium'"
        ).fetchone()
    assert times is not None
    assert [t.microsecond % 1000 for t in times] == [0, 0], times


def test_the_exchange_error_is_set_and_cleared_in_both_stores(
    chain, exchange, cassandra_session
) -> None:
    """The heartbeat says why the exchange cannot be used, and says nothing once it
    answers again: the NULL must reach Cassandra too, not leave the old text there."""
    chain.run_producer("http://127.0.0.1:9/api", UNIVERSE_SYMBOLS=SYMBOLS)  # nothing listens
    beat = chain.postgres_rows(HEARTBEAT)[("producer",)]
    assert beat["exchange_error"].startswith("unreachable: ConnectionRefusedError"), beat
    assert beat["exchange_error_since"] is not None
    assert_table_mirrored(chain, cassandra_session, HEARTBEAT)
    run_cycle(chain, exchange)
    beat = chain.postgres_rows(HEARTBEAT)[("producer",)]
    assert beat["exchange_error"] is None and beat["exchange_error_since"] is None
    assert_table_mirrored(chain, cassandra_session, HEARTBEAT)


def test_retention_delete_leaves_history_in_cassandra(chain, cassandra_session) -> None:
    trades_in_cassandra = chain.cassandra_rows(cassandra_session, RECENT_TRADES)
    events_before = chain.kafka_end_offsets(RECENT_TRADES)
    writer = PostgresWriter(chain.conninfo)
    try:
        deleted = writer.delete_older_than(
            RECENT_TRADES, datetime.now(UTC) + timedelta(hours=1), batch=100
        )
    finally:
        writer.close()
    assert deleted == len(trades_in_cassandra)
    assert chain.postgres_rows(RECENT_TRADES) == {}
    # A row committed after the deletes: once it is in Cassandra, Debezium has read past
    # the deletes (it streams the WAL in commit order).
    with psycopg.connect(chain.conninfo) as conn:
        conn.execute("INSERT INTO heartbeat (source, beat_time) VALUES ('retention-mark', now())")
    wait_for(
        lambda: ("retention-mark",) in chain.cassandra_rows(cassandra_session, HEARTBEAT),
        ARRIVAL_TIMEOUT,
        chain.sink_output,
    )
    # The source dropped the deletes: no event reached the topic, nothing left Cassandra.
    assert chain.kafka_end_offsets(RECENT_TRADES) == events_before
    assert chain.cassandra_rows(cassandra_session, RECENT_TRADES) == trades_in_cassandra
