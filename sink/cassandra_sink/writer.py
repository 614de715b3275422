"""Prepared, idempotent Cassandra writes for each table mapping."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, Statement

from cassandra_sink.config import SinkConfig, SinkConfigError, TableMapping
from cassandra_sink.records import BadRecord, Change, convert

log = logging.getLogger(__name__)

# Rows per single-partition unlogged batch (about 10 KiB for a trade row).
MAX_BATCH_ROWS = 50


@dataclass
class PreparedTable:
    mapping: TableMapping
    column_types: dict[str, str]
    upsert: PreparedStatement
    delete: PreparedStatement | None
    key_columns: list[str]
    partition_columns: list[str]

    @property
    def key_positions(self) -> list[int]:
        """Where each primary-key column sits in row_values()."""
        columns = list(self.mapping.columns)
        return [columns.index(c) for c in self.key_columns]

    @property
    def partition_positions(self) -> list[int]:
        """Where each partition-key column sits in row_values()."""
        columns = list(self.mapping.columns)
        return [columns.index(c) for c in self.partition_columns]

    def row_values(self, change: Change) -> list[Any]:
        assert change.row is not None
        values = []
        for column, (part, name) in self.mapping.columns.items():
            source = change.row if part == "value" else change.key
            if name not in source:
                raise BadRecord(f"{part}.{name} (for column {column}) is not in the record")
            values.append(convert(source[name], self.column_types[column], column))
        return values

    def key_values(self, change: Change) -> list[Any]:
        values = []
        for column in self.key_columns:
            _part, name = self.mapping.columns[column]
            source = change.key if change.key and name in change.key else (change.row or {})
            if name not in source:
                raise BadRecord(f"delete without key field {name}")
            values.append(convert(source[name], self.column_types[column], column))
        return values


def connect(config: SinkConfig) -> tuple[Cluster, Session]:
    auth = (
        PlainTextAuthProvider(config.username, config.password or "") if config.username else None
    )
    cluster = Cluster(
        config.contact_points,
        port=config.port,
        auth_provider=auth,
        protocol_version=5,
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=config.local_dc),
        connect_timeout=10,
    )
    return cluster, cluster.connect()


def prepare(session: Session, mapping: TableMapping) -> PreparedTable:
    """Prepare the upsert (and delete) for one mapping, checking it against the live schema."""
    keyspace_meta = session.cluster.metadata.keyspaces.get(mapping.keyspace)
    table_meta = keyspace_meta.tables.get(mapping.table) if keyspace_meta else None
    if table_meta is None:
        raise SinkConfigError(
            f"table {mapping.keyspace}.{mapping.table} does not exist in Cassandra; "
            "apply the schema first (cap-stock cassandra-setup)"
        )
    unknown = sorted(set(mapping.columns) - set(table_meta.columns))
    if unknown:
        raise SinkConfigError(
            f"mapping for {mapping.keyspace}.{mapping.table} names unknown columns {unknown}"
        )
    key_columns = [c.name for c in table_meta.primary_key]
    missing_keys = [c for c in key_columns if c not in mapping.columns]
    if missing_keys:
        raise SinkConfigError(
            f"mapping for {mapping.keyspace}.{mapping.table} "
            f"misses primary key columns {missing_keys}"
        )
    types = {name: str(col.cql_type) for name, col in table_meta.columns.items()}
    columns = list(mapping.columns)
    target = f'"{mapping.keyspace}"."{mapping.table}"'
    ttl = f" USING TTL {mapping.ttl_seconds}" if mapping.ttl_seconds else ""
    upsert = session.prepare(
        f"INSERT INTO {target} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}){ttl}"
    )
    delete = None
    if mapping.deletes_enabled:
        where = " AND ".join(f"{c} = ?" for c in key_columns)
        delete = session.prepare(f"DELETE FROM {target} WHERE {where}")
    partition_columns = [c.name for c in table_meta.partition_key]
    return PreparedTable(mapping, types, upsert, delete, key_columns, partition_columns)


def plan_requests(
    statement: PreparedStatement | str, rows: list[list[Any]], partition_positions: list[int]
) -> list[tuple[Statement | PreparedStatement | str, Any]]:
    """Group rows by partition into unlogged batches of up to MAX_BATCH_ROWS.

    A single-partition batch is one mutation for Cassandra and one request for us,
    which is what lets one Python process keep up with Debezium.
    """
    by_partition: dict[tuple, list[list[Any]]] = defaultdict(list)
    for row in rows:
        by_partition[tuple(row[i] for i in partition_positions)].append(row)
    requests: list[tuple[Statement | PreparedStatement | str, Any]] = []
    for partition_rows in by_partition.values():
        for start in range(0, len(partition_rows), MAX_BATCH_ROWS):
            chunk = partition_rows[start : start + MAX_BATCH_ROWS]
            if len(chunk) == 1:
                requests.append((statement, chunk[0]))
                continue
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for row in chunk:
                batch.add(statement, row)
            requests.append((batch, None))
    return requests


def write(
    session: Session,
    statement: PreparedStatement,
    rows: list[list[Any]],
    partition_positions: list[int],
    concurrency: int,
) -> None:
    """Run every row; raise on the first failure so the batch's offsets stay uncommitted."""
    requests = plan_requests(statement, rows, partition_positions)
    if requests:
        execute_concurrent(session, requests, concurrency=concurrency, raise_on_first_error=True)
