"""Prepared, idempotent Cassandra writes for each table mapping.

A record becomes one upsert (INSERT of every mapped column) or, with deletesEnabled and
every mapped non-key field null, a DELETE by primary key: the engine's rule. A null
non-key value is bound as "unset" (nullToUnset, the default) so it never overwrites a
column with a tombstone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent
from cassandra.policies import DCAwareRoundRobinPolicy
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement, Statement

from cassandra_sink.codecs import CQL_TYPES, DEFAULT_CODECS, Codecs, Rejected, convert
from cassandra_sink.config import SinkConfig, SinkConfigError, TableMapping
from cassandra_sink.records import BadRecord, Record

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
    codecs: Codecs = DEFAULT_CODECS

    @property
    def name(self) -> str:
        return f"{self.mapping.keyspace}.{self.mapping.table}"

    @property
    def key_positions(self) -> list[int]:
        """Where each primary-key column sits in the upsert's values."""
        columns = list(self.mapping.columns)
        return [columns.index(c) for c in self.key_columns]

    @property
    def partition_positions(self) -> list[int]:
        """Where each partition-key column sits in the upsert's values."""
        columns = list(self.mapping.columns)
        return [columns.index(c) for c in self.partition_columns]

    def _field(self, record: Record, column: str) -> Any:
        part, name = self.mapping.columns[column]
        source = record.value if part == "value" else record.key
        if name not in source:
            raise BadRecord(f"{part}.{name} (mapped to column {column}) is missing")
        return source[name]

    def _convert(self, column: str, raw: Any) -> Any:
        try:
            value = convert(raw, self.column_types[column], self.codecs)
        except Rejected as err:
            raise BadRecord(f"column {column}: {err}") from None
        if column in self.key_columns:
            if value is None:
                raise BadRecord(f"primary key column {column} cannot be null")
            if value == "" and self.partition_columns == [column]:
                # An empty partition key: Cassandra refuses the write ("Key may not be
                # empty"). One empty column of a composite partition key is fine.
                raise BadRecord(f"partition key column {column} cannot be empty")
        elif value is None and self.mapping.null_to_unset:
            return UNSET_VALUE
        return value

    def bind(self, record: Record) -> tuple[PreparedStatement, list[Any]]:
        """The upsert and its values in mapping order or, when the engine would delete
        (deletesEnabled, every mapped non-key field null), the delete and the primary key.
        Raises BadRecord."""
        fields = {column: self._field(record, column) for column in self.mapping.columns}
        others = [c for c in fields if c not in self.key_columns]
        if self.delete is not None and others and all(fields[c] is None for c in others):
            return self.delete, [self._convert(c, fields[c]) for c in self.key_columns]
        return self.upsert, [self._convert(c, raw) for c, raw in fields.items()]


def _quote(identifier: str) -> str:
    # The engine treats unquoted mapping names as exact (case-sensitive) identifiers.
    return '"' + identifier.replace('"', '""') + '"'


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


def prepare(
    session: Session, mapping: TableMapping, codecs: Codecs = DEFAULT_CODECS
) -> PreparedTable:
    """Prepare the upsert (and delete) for one mapping, checking it against the live schema."""
    where = f"mapping for {mapping.keyspace}.{mapping.table}"
    keyspace_meta = session.cluster.metadata.keyspaces.get(mapping.keyspace)
    table_meta = keyspace_meta.tables.get(mapping.table) if keyspace_meta else None
    if table_meta is None:
        raise SinkConfigError(
            f"table {mapping.keyspace}.{mapping.table} does not exist in Cassandra; "
            "apply the schema first (cap-stock cassandra-setup)"
        )
    unknown = sorted(set(mapping.columns) - set(table_meta.columns))
    if unknown:
        raise SinkConfigError(f"{where} names unknown columns {unknown}")
    key_columns = [c.name for c in table_meta.primary_key]
    missing_keys = [c for c in key_columns if c not in mapping.columns]
    if missing_keys:
        raise SinkConfigError(f"{where} misses primary key columns {missing_keys}")
    types = {name: str(col.cql_type) for name, col in table_meta.columns.items()}
    unsupported = {c: types[c] for c in mapping.columns if types[c] not in CQL_TYPES}
    if unsupported:
        raise SinkConfigError(
            f"{where}: cap-stock-sink converts only {', '.join(CQL_TYPES)} columns, "
            f"not {unsupported}"
        )
    columns = list(mapping.columns)
    target = f"{_quote(mapping.keyspace)}.{_quote(mapping.table)}"
    ttl = f" USING TTL {mapping.ttl_seconds}" if mapping.ttl_seconds else ""
    upsert = session.prepare(
        f"INSERT INTO {target} ({', '.join(map(_quote, columns))}) "
        f"VALUES ({', '.join('?' for _ in columns)}){ttl}"
    )
    delete = None
    if mapping.deletes_enabled:
        condition = " AND ".join(f"{_quote(c)} = ?" for c in key_columns)
        delete = session.prepare(f"DELETE FROM {target} WHERE {condition}")
    consistency = ConsistencyLevel.name_to_value[mapping.consistency_level]
    for statement in (upsert, delete):
        if statement is not None:
            statement.consistency_level = consistency
    partition_columns = [c.name for c in table_meta.partition_key]
    return PreparedTable(mapping, types, upsert, delete, key_columns, partition_columns, codecs)


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
            batch = BatchStatement(
                batch_type=BatchType.UNLOGGED,
                consistency_level=getattr(statement, "consistency_level", None),
            )
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
