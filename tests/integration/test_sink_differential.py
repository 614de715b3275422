"""Both Cassandra sinks, fed the same topics, store the same rows and reject the same records.

The default sink (the DataStax sink engine in Connect) writes the isolated chain's
keyspace; `cap-stock-sink` (the Python alternative) reads the same topics with its own
consumer group into a second keyspace. The topics get a real producer cycle plus
hand-made trade records that probe every conversion of our column types: values both
must accept, values both must reject, and the doubtful ones in between. The engine is
the reference: every table must hold identical rows in both keyspaces, and both
dead-letter topics the same (topic, offset) pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from capstock.model.tables import RECENT_TRADES, TABLES, Table
from capstock.simulator import Simulator, start_simulator
from cassandra_sink.codecs import TEXT_MAX_CHARS

from tests.support.cdc_harness import CdcHarness, wait_for

pytestmark = pytest.mark.integration

SYMBOL = "DIFFUSDT"
BASE = {
    "symbol": SYMBOL,
    "price": "0.00001234",
    "qty": "1000.5",
    "quote_qty": "0.01234617",
    "trade_time": "2026-11-21T10:15:30.123Z",
    "is_buyer_maker": True,
    "is_best_match": False,
    "day": "2026-11-21Z",
    "ingested_at": "2026-11-21T10:15:30.456789Z",
}

# One trade per probe, each with a trade id of its own so no two rows collide.
PROBES: list[dict] = [
    {},
    {"extra_field": "ignored"},
    {"qty": None},  # a null non-key column is left unset
    *(
        {"is_buyer_maker": v}
        for v in ("false", "true", "1", "0", "yes", "maybe", 0, 1, 2, "False", "FALSE", "f")
    ),
    *({"is_buyer_maker": v} for v in ("no", "N", " false", "false ", "off", [], {})),
    *(
        {"price": v}
        for v in (1500.5, "1.5e3", "1,234.56", "NaN", 0.00001234, True, " 12.5 ", "", "0x1F")
    ),
    *(
        {"trade_time": v}
        for v in (
            "2026-11-21 10:15:30.123",
            "2026-11-21T10:15:30.123456789Z",
            "2026-11-21T10:15:30.1239Z",
            "2026-11-21",
            "2026-11-21T10:15:30+0200",
            "2026-11-21T10:15:30+01:00[Europe/Paris]",
            "Sat, 21 Nov 2026 10:15:30 GMT",
            1763720130123,
            "1763720130123",
        )
    ),
    *({"day": v} for v in ("2026-11-21", "2026-11-21+01:00", 20778, "20261121", "2026-11-32Z")),
    *({"symbol": v} for v in (42, 1.50, True, ["a"], {"a": 1}, "", "X" * 2000, None)),
    # The text bound, a deliberate difference from the stock engine (the Connect adapter
    # applies the same TEXT_MAX_CHARS), counted in code points.
    *({"symbol": v} for v in ("X" * TEXT_MAX_CHARS, "X" * (TEXT_MAX_CHARS + 1))),
    {"symbol": "😀" * TEXT_MAX_CHARS},
    {"day": None},  # a null partition-key column
    {"ingested_at": None},
    {"missing": "trade_time"},
]
# Probes of the trade id itself (the row's key): each value yields a distinct id if kept.
TRADE_ID_PROBES = [
    "12.0", 13.0, 14.5, "1,015", "1e2", 2**70, "abc", True, "2026-11-21T10:15:30Z",
    2**63 - 1, -(2**63), 2**63, str(2**63), -(2**63) - 1, None, "", [7],
]  # fmt: skip
NOT_OBJECTS = [b"[1, 2]", b'"text"', b"42", b"{not json", b"null"]


def probe_records() -> list[bytes]:
    records = []
    for n, probe in enumerate(PROBES):
        row = {**BASE, "trade_id": 5000 + n, **probe}
        if "missing" in probe:
            del row["missing"], row[probe["missing"]]
        records.append(json.dumps(row).encode())
    for value in TRADE_ID_PROBES:
        records.append(json.dumps({**BASE, "trade_id": value}).encode())
    return records + NOT_OBJECTS


@pytest.fixture(scope="module")
def exchange() -> Iterator[Simulator]:
    sim = start_simulator(symbols=4, seed=5, trade_rate=10.0, history_minutes=3)
    yield sim
    sim.close()


def drained(chain: CdcHarness, table: Table, group: str) -> bool:
    return chain.sink_committed(table, group) == chain.kafka_end_offsets(table)


def test_both_sinks_store_the_same_rows_and_reject_the_same_records(
    cdc_chain: CdcHarness, cassandra_session, exchange: Simulator
) -> None:
    python_keyspace = f"{cdc_chain.name}_python"
    cdc_chain.start_python_sink(python_keyspace, cassandra_session)
    result = cdc_chain.run_producer(exchange.url, UNIVERSE_SYMBOLS="BTCUSDT,PEPEUSDT")
    assert result.returncode == 0, result.stderr[-3000:]
    probe_offsets = cdc_chain.produce(RECENT_TRADES, probe_records())

    groups = (cdc_chain.sink_group, cdc_chain.python_sink_group)
    for table in TABLES.values():
        if cdc_chain.kafka_end_offsets(table):
            wait_for(
                lambda t=table: all(drained(cdc_chain, t, g) for g in groups),
                120,
                lambda t=table: (
                    f"{t.name}: {[cdc_chain.sink_committed(t, g) for g in groups]} "
                    f"of {cdc_chain.kafka_end_offsets(t)}\n{cdc_chain.sink_output()}"
                ),
            )

    for table in TABLES.values():
        engine = cdc_chain.cassandra_rows(cassandra_session, table)
        python = cdc_chain.cassandra_rows(cassandra_session, table, keyspace=python_keyspace)
        only_engine = {k: engine[k] for k in engine.keys() - python.keys()}
        only_python = {k: python[k] for k in python.keys() - engine.keys()}
        differing = {
            k: (engine[k], python[k])
            for k in engine.keys() & python.keys()
            if engine[k] != python[k]
        }
        assert (only_engine, only_python, differing) == ({}, {}, {}), table.name

    def parked(topic: str) -> set[tuple[str, int]]:
        return {
            (p["__connect.errors.topic"], int(p["__connect.errors.offset"]))
            for p in cdc_chain.dead_letters(topic)
        }

    engine_parked = parked(cdc_chain.dead_letter_topic)
    python_parked = parked(cdc_chain.python_dead_letter_topic)
    assert engine_parked == python_parked

    # The probes were not all accepted nor all rejected: the comparison saw both sides.
    topic = cdc_chain.topic(RECENT_TRADES)
    rejected = {offset for t, offset in engine_parked if t == topic}
    assert rejected < set(probe_offsets)
    # At least "abc", 2**70, 2**63, NaN, null keys, "off", a text over TEXT_MAX_CHARS.
    assert len(rejected) >= len(NOT_OBJECTS) + 8
    stored = cdc_chain.cassandra_rows(cassandra_session, RECENT_TRADES)
    assert (SYMBOL, 5000 + 0) in {(k[0], k[-1]) for k in stored}  # the plain probe
