"""A poison record never stalls the sink: it is parked, counted and logged once.

Records are produced straight into the isolated chain's trade topic (what a buggy
producer or a hand-written test message would do), between good ones, and the
default sink (the DataStax sink engine in Connect, committed register_cassandra.json)
must write every good row, park every bad record in the dead-letter topic with its
origin in the headers, and commit past them.
"""

from __future__ import annotations

import json

import pytest
from capstock.model.tables import RECENT_TRADES

from stack.connect_api import request
from tests.support.cdc_harness import wait_for

pytestmark = pytest.mark.integration

SYMBOL = "POISONUSDT"
GOOD = {
    "symbol": SYMBOL,
    "trade_id": 1,
    "price": "0.00001234",
    "qty": "1000",
    "quote_qty": "0.01234",
    "trade_time": "2026-11-21T10:15:30.123Z",
    "is_buyer_maker": True,
    "is_best_match": True,
    "day": "2026-11-21Z",
    "ingested_at": "2026-11-21T10:15:30.456789Z",
}


def good(trade_id: int) -> bytes:
    return json.dumps({**GOOD, "trade_id": trade_id}).encode()


def without(column: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD.items() if k != column}).encode()


BAD = {
    "not JSON": b"{not json",
    "trade_id is text": json.dumps({**GOOD, "trade_id": "abc"}).encode(),
    "trade_id beyond bigint": json.dumps({**GOOD, "trade_id": 2**70}).encode(),
    "null key column": json.dumps({**GOOD, "symbol": None}).encode(),
    "missing column": without("price"),
    "price is not a number": json.dumps({**GOOD, "trade_id": 7, "price": "NaN"}).encode(),
}


def test_bad_records_are_parked_and_the_rest_keeps_flowing(cdc_chain, cassandra_session) -> None:
    values = [good(1), *BAD.values(), good(2), good(3)]
    offsets = cdc_chain.produce(RECENT_TRADES, values)
    bad_offsets = offsets[1 : 1 + len(BAD)]
    topic = cdc_chain.topic(RECENT_TRADES)

    def good_rows_arrived() -> bool:
        rows = cdc_chain.cassandra_rows(cassandra_session, RECENT_TRADES)
        return {key[-1] for key in rows if key[0] == SYMBOL} == {1, 2, 3}

    wait_for(good_rows_arrived, 90, cdc_chain.sink_output)
    stored = cdc_chain.cassandra_rows(cassandra_session, RECENT_TRADES)
    assert {key[-1] for key in stored if key[0] == SYMBOL} == {1, 2, 3}  # no bad row stored

    wait_for(
        lambda: len(cdc_chain.dead_letters(cdc_chain.dead_letter_topic)) == len(BAD),
        60,
        lambda: str(cdc_chain.dead_letters(cdc_chain.dead_letter_topic)),
    )
    parked = cdc_chain.dead_letters(cdc_chain.dead_letter_topic)
    assert [p["__connect.errors.topic"] for p in parked] == [topic] * len(BAD)
    assert sorted(int(p["__connect.errors.offset"]) for p in parked) == bad_offsets
    assert {p["value"] for p in parked} == {v.decode(errors="replace") for v in BAD.values()}

    # The sink committed past the bad records and is still running.
    wait_for(
        lambda: cdc_chain.sink_committed(RECENT_TRADES) == offsets[-1] + 1,
        60,
        lambda: f"committed {cdc_chain.sink_committed(RECENT_TRADES)}, end {offsets[-1] + 1}",
    )
    status = request(
        "GET", f"{cdc_chain.settings.connect_url}/connectors/{cdc_chain.sink_name}/status"
    )
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]

    # Each bad record is logged once, with where it sits.
    log = (cdc_chain.settings.log_dir / "connect.log").read_text(errors="replace")
    for offset in bad_offsets:
        assert log.count(f"Rejected record {topic}[0]@{offset} ") == 1, offset
