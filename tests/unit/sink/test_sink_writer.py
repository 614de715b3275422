"""The sink binds one statement per record, groups rows into single-partition batches,
and, when Cassandra refuses a batch as invalid, isolates the record at fault.

The Cassandra session is a fake that refuses any request carrying a poisoned value (as
Cassandra refuses an out-of-range or oversized value with InvalidRequest) or fails the
next N requests with a timeout; the planning, fallback and classification are the real
ones."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from cassandra import InvalidRequest, OperationTimedOut, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionShutdown
from cassandra.protocol import SyntaxException
from cassandra.query import UNSET_VALUE, BatchStatement
from cassandra_sink import writer
from cassandra_sink.codecs import Codecs
from cassandra_sink.config import SinkConfig, TableMapping
from cassandra_sink.records import BadRecord, Record
from cassandra_sink.writer import (
    MAX_BATCH_ROWS,
    PreparedTable,
    Row,
    Source,
    TransientWriteError,
    is_record_error,
    plan_requests,
    write_rows,
)

from tests.support.sink_fakes import POISON, FakeSession

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


# --- batches, and what happens when Cassandra refuses one ------------------------------------

INSERT = "INSERT %s %s %s"  # symbol, day, id; a plain string so the fake can read the values


def _trade_table() -> PreparedTable:
    mapping = TableMapping(
        topic="t",
        keyspace="ks",
        table="t",
        columns={c: ("value", c) for c in ("symbol", "day", "id")},
        deletes_enabled=False,
    )
    return PreparedTable(
        mapping=mapping,
        column_types={"symbol": "text", "day": "int", "id": "bigint"},
        upsert=INSERT,  # type: ignore[arg-type]
        delete=None,
        key_columns=["symbol", "day", "id"],
        partition_columns=["symbol", "day"],
    )


TABLE = _trade_table()


def row(*images: list[Any]) -> Row:
    """A row merged from one record per image (the last image wins here)."""
    sources = [
        Source(origin=f"record {i}", statement=INSERT, values=v) for i, v in enumerate(images)
    ]
    return Row(TABLE, INSERT, images[-1], sources)


def test_rows_of_one_partition_share_a_batch_and_lone_rows_go_alone() -> None:
    rows = [row(["BTC", 1, 1]), row(["BTC", 1, 2]), row(["ETH", 1, 3]), row(["BTC", 2, 4])]
    requests = plan_requests(rows)
    batches = [r for r in requests if isinstance(r.statement, BatchStatement)]
    singles = [r.values for r in requests if not isinstance(r.statement, BatchStatement)]
    assert len(batches) == 1
    assert len(batches[0].statement._statements_and_parameters) == 2
    assert [r.values for r in batches[0].rows] == [["BTC", 1, 1], ["BTC", 1, 2]]
    assert sorted(singles) == [["BTC", 2, 4], ["ETH", 1, 3]]


def test_large_partitions_are_split_and_no_row_is_lost() -> None:
    rows = [row(["BTC", 1, i]) for i in range(MAX_BATCH_ROWS * 2 + 1)]
    sizes = sorted(len(r.rows) for r in plan_requests(rows))
    assert sizes == [1, MAX_BATCH_ROWS, MAX_BATCH_ROWS]


def test_rows_are_written_in_one_request_per_partition() -> None:
    session = FakeSession()
    rows = [row(["BTC", 1, 1]), row(["BTC", 1, 2]), row(["ETH", 1, 3])]
    assert write_rows(session, rows, concurrency=4) == []  # type: ignore[arg-type]
    assert len(session.requests) == 2
    assert sorted(session.stored) == ["INSERT 'BTC' 1 1", "INSERT 'BTC' 1 2", "INSERT 'ETH' 1 3"]


def test_a_refused_batch_is_written_row_by_row_and_only_the_bad_record_is_refused() -> None:
    session = FakeSession()
    bad = row(["BTC", 1, POISON])
    rows = [row(["BTC", 1, 1]), bad, row(["BTC", 1, 3]), row(["ETH", 1, 4])]
    refusals = write_rows(session, rows, concurrency=4)  # type: ignore[arg-type]
    assert [(r.source, r.table) for r in refusals] == [(bad.sources[0], TABLE)]
    assert isinstance(refusals[0].error, InvalidRequest)
    assert sorted(session.stored) == [
        "INSERT 'BTC' 1 1",
        "INSERT 'BTC' 1 3",
        "INSERT 'ETH' 1 4",
    ]
    # The batch of three, ETH alone, then the batch's rows one by one.
    assert sorted(len(r) for r in session.requests) == [1, 1, 1, 1, 3]


def test_a_refused_row_merged_from_several_records_is_written_record_by_record() -> None:
    # Two images of one key in the batch: the older is fine, the newer is poisoned.
    session = FakeSession()
    merged = row(["BTC", 1, 7], ["BTC", 1, POISON])
    refusals = write_rows(session, [merged], concurrency=4)  # type: ignore[arg-type]
    assert [r.source.origin for r in refusals] == ["record 1"]
    assert session.stored == ["INSERT 'BTC' 1 7"]


def test_a_refused_lone_row_is_not_sent_again() -> None:
    session = FakeSession()
    refusals = write_rows(session, [row(["ETH", 1, POISON])], concurrency=4)  # type: ignore[arg-type]
    assert len(refusals) == 1
    assert len(session.requests) == 1


@pytest.mark.parametrize(
    "transient",
    [
        OperationTimedOut("no answer"),
        WriteTimeout("timeout", write_type=0),
        Unavailable("down", consistency=1, required_replicas=1, alive_replicas=0),
        NoHostAvailable("no host", {}),
        ConnectionShutdown("gone"),
    ],
)
def test_a_transient_failure_is_raised_for_a_retry_and_refuses_nothing(
    transient: BaseException,
) -> None:
    # Even with a poisoned row in the batch: refusals count only from a complete attempt.
    session = FakeSession(transient_failures=1, transient=transient)
    rows = [row(["BTC", 1, 1]), row(["ETH", 1, POISON])]
    with pytest.raises(TransientWriteError, match=type(transient).__name__):
        write_rows(session, rows, concurrency=1)  # type: ignore[arg-type]
    refusals = write_rows(session, rows, concurrency=1)  # type: ignore[arg-type]
    assert [r.source.values for r in refusals] == [["ETH", 1, POISON]]


def test_a_transient_failure_while_isolating_the_bad_record_is_retried_too() -> None:
    session = FakeSession()
    rows = [row(["BTC", 1, 1]), row(["BTC", 1, POISON])]
    original = session.execute_async

    def timeout_on_the_row_by_row_pass(statement, params, execution_profile=None):  # type: ignore[no-untyped-def]
        if len(session.requests) == 1:  # the batch went; the rows alone now time out
            session.transient_failures = 1
        return original(statement, params, execution_profile)

    session.execute_async = timeout_on_the_row_by_row_pass  # type: ignore[method-assign]
    with pytest.raises(TransientWriteError):
        write_rows(session, rows, concurrency=1)  # type: ignore[arg-type]


class Unencodable:
    """A value the driver's encoder fails on, before anything is sent."""

    def __str__(self) -> str:
        raise ValueError("cannot encode")


def test_a_value_the_driver_cannot_encode_refuses_only_its_row() -> None:
    session = FakeSession()
    bad = row(["BTC", 1, Unencodable()])
    refusals = write_rows(session, [row(["BTC", 1, 1]), bad], concurrency=4)  # type: ignore[arg-type]
    assert [r.source for r in refusals] == [bad.sources[0]]
    assert isinstance(refusals[0].error, ValueError)
    assert session.stored == ["INSERT 'BTC' 1 1"]


@pytest.mark.parametrize(
    ("error", "record_error"),
    [
        (InvalidRequest("Key length of 70000 is longer than maximum of 65535"), True),
        (SyntaxException(0x2000, "line 1:0 no viable alternative", None), True),
        (TypeError("Received an argument of invalid type"), True),
        (OperationTimedOut("no answer"), False),
        (NoHostAvailable("no host", {}), False),
        (ConnectionShutdown("gone"), False),
        (RuntimeError("anything unknown"), False),  # retried, as the Connect adapter does
    ],
)
def test_only_refusals_cassandra_would_repeat_are_record_errors(
    error: BaseException, record_error: bool
) -> None:
    assert is_record_error(error) is record_error


class FakeCluster:
    """Records how writer.connect builds its Cluster; Cassandra is away."""

    built: ClassVar[list[FakeCluster]] = []

    def __init__(self, contact_points: list[str], **settings: Any) -> None:
        self.settings = settings
        self.shut_down = False
        FakeCluster.built.append(self)

    def connect(self) -> None:
        raise NoHostAvailable("Unable to connect to any servers", {"127.0.0.1:9042": OSError()})

    def shutdown(self) -> None:
        self.shut_down = True


def test_the_driver_retries_a_lost_node_every_two_seconds_for_ever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cassandra.cluster.Cluster", FakeCluster)  # capstock.history.connection
    with pytest.raises(NoHostAvailable):
        writer.connect(SinkConfig(name="s", topics=["t"], mappings={}))
    cluster = FakeCluster.built[-1]
    policy = cluster.settings["reconnection_policy"]
    delays = list(itertools.islice(policy.new_schedule(), 200))
    assert len(delays) == 200  # no give-up after 64 attempts
    assert max(delays) <= 2.0 * 1.15  # the policy adds up to 15 % jitter
    assert cluster.shut_down  # a failed attempt leaves no driver threads behind
