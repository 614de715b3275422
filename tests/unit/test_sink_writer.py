"""The sink binds one statement per record and groups rows into single-partition batches."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from cassandra.query import UNSET_VALUE, BatchStatement
from cassandra_sink.codecs import Codecs
from cassandra_sink.config import TableMapping
from cassandra_sink.records import BadRecord, Record
from cassandra_sink.writer import MAX_BATCH_ROWS, PreparedTable, plan_requests

INSERT = "INSERT INTO ks.t (symbol, day, id) VALUES (%s, %s, %s)"


def test_rows_of_one_partition_share_a_batch_and_lone_rows_go_alone() -> None:
    rows = [["BTC", 1, 1], ["BTC", 1, 2], ["ETH", 1, 3], ["BTC", 2, 4]]
    requests = plan_requests(INSERT, rows, [0, 1])
    batches = [r for r, _ in requests if isinstance(r, BatchStatement)]
    singles = [params for r, params in requests if not isinstance(r, BatchStatement)]
    assert len(batches) == 1
    assert len(batches[0]._statements_and_parameters) == 2
    assert sorted(singles) == [["BTC", 2, 4], ["ETH", 1, 3]]


def test_large_partitions_are_split_and_no_row_is_lost() -> None:
    rows = [["BTC", 1, i] for i in range(MAX_BATCH_ROWS * 2 + 1)]
    requests = plan_requests(INSERT, rows, [0, 1])
    sizes = sorted(
        len(r._statements_and_parameters) if isinstance(r, BatchStatement) else 1
        for r, _ in requests
    )
    assert sizes == [1, MAX_BATCH_ROWS, MAX_BATCH_ROWS]


# --- one record, one statement ------------------------------------------------------------

TYPES = {
    "symbol": "text",
    "day": "date",
    "trade_id": "bigint",
    "price": "decimal",
    "trade_time": "timestamp",
    "is_buyer_maker": "boolean",
}
MAPPING = {c: ("value", c) for c in TYPES}


def _table(
    deletes: bool = False, null_to_unset: bool = True, columns: dict | None = None
) -> PreparedTable:
    mapping = TableMapping(
        topic="t",
        keyspace="ks",
        table="trades",
        columns=columns or MAPPING,
        deletes_enabled=deletes,
        null_to_unset=null_to_unset,
    )
    return PreparedTable(
        mapping=mapping,
        column_types=TYPES,
        upsert="INSERT",  # type: ignore[arg-type]
        delete="DELETE" if deletes else None,  # type: ignore[arg-type]
        key_columns=["symbol", "day", "trade_id"],
        partition_columns=["symbol", "day"],
        codecs=Codecs(date="ISO_DATE"),
    )


def _row(**changes: object) -> Record:
    value = {
        "symbol": "PEPEUSDT",
        "day": "2026-11-21Z",
        "trade_id": 42,
        "price": "0.00001234",
        "trade_time": "2026-11-21T10:15:30.123Z",
        "is_buyer_maker": True,
        **changes,
    }
    return Record(key={}, value={k: v for k, v in value.items() if v is not MISSING})


MISSING = object()


def test_a_row_binds_every_mapped_column_in_mapping_order() -> None:
    statement, values = _table().bind(_row())
    assert statement == "INSERT"
    assert values == [
        "PEPEUSDT",
        date(2026, 11, 21),
        42,
        Decimal("0.00001234"),
        1795256130123,  # 2026-11-21T10:15:30.123Z in epoch milliseconds
        True,
    ]


def test_a_null_non_key_column_is_left_unset() -> None:
    _statement, values = _table().bind(_row(price=None))
    assert values[3] is UNSET_VALUE


def test_with_null_to_unset_false_a_null_is_written() -> None:
    _statement, values = _table(null_to_unset=False).bind(_row(price=None))
    assert values[3] is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"trade_id": None}, "primary key column trade_id cannot be null"),
        ({"trade_id": ""}, "primary key column trade_id cannot be null"),
        ({"price": MISSING}, r"value\.price \(mapped to column price\) is missing"),
        ({"price": "abc"}, "column price: cannot read 'abc' as a number"),
        ({"day": "2026-11-21T10:00Z"}, "column day: cannot read"),
    ],
)
def test_unmappable_records_are_bad(changes: dict, reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        _table().bind(_row(**changes))


def test_an_empty_text_key_is_bad_only_as_the_whole_partition_key() -> None:
    # (symbol, day) serialises to a non-empty partition key even with symbol "".
    assert _table().bind(_row(symbol=""))[1][0] == ""
    table = _table()
    table.partition_columns = ["symbol"]
    with pytest.raises(BadRecord, match="partition key column symbol cannot be empty"):
        table.bind(_row(symbol=""))


def test_deletes_enabled_and_every_non_key_field_null_is_a_delete() -> None:
    row = _row(price=None, trade_time=None, is_buyer_maker=None)
    statement, values = _table(deletes=True).bind(row)
    assert statement == "DELETE"
    assert values == ["PEPEUSDT", date(2026, 11, 21), 42]
    # One non-null non-key field, or deletes disabled: an upsert.
    assert _table(deletes=True).bind(_row(price=None, trade_time=None))[0] == "INSERT"
    assert _table(deletes=False).bind(row)[0] == "INSERT"


def test_a_mapping_of_key_columns_only_never_deletes() -> None:
    columns = {c: MAPPING[c] for c in ("symbol", "day", "trade_id")}
    assert _table(deletes=True, columns=columns).bind(_row())[0] == "INSERT"


def test_key_fields_come_from_the_record_key() -> None:
    columns = {**MAPPING, "trade_id": ("key", "id")}
    record = Record(key={"id": 7}, value=_row(trade_id=MISSING).value)
    assert _table(columns=columns).bind(record)[1][2] == 7
    with pytest.raises(BadRecord, match=r"key\.id"):
        _table(columns=columns).bind(_row())
