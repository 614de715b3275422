"""The sink groups rows into single-partition batches."""

from __future__ import annotations

from cassandra.query import BatchStatement
from cassandra_sink.writer import MAX_BATCH_ROWS, plan_requests

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
