"""Prepared, idempotent Cassandra writes for each table mapping.

A record becomes one upsert (INSERT of every mapped column) or, with deletesEnabled and
every mapped non-key field null, a DELETE by primary key: the engine's rule. A null
non-key value is bound as "unset" (nullToUnset, the default) so it never overwrites a
column with a tombstone.

A batch's rows are written in single-partition unlogged batches (`write_rows`). Failures
are of two kinds: Cassandra away or slow (retried by the caller, never skipped) and
Cassandra refusing a statement as invalid (that record alone is refused; see
`write_rows` for how it is isolated from the rows batched with it).
"""

from __future__ import annotations

import logging
import struct
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from capstock.history import connection as history_connection
from cassandra import ConsistencyLevel, InvalidRequest
from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent
from cassandra.protocol import SyntaxException
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

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
    """A session as the connector's ``auth.username`` (capstock's one connection helper)."""
    return history_connection.connect(
        config.contact_points,
        config.username,
        config.password,
        port=config.port,
        datacenter=config.local_dc,
    )


def hosts_up(cluster: Cluster) -> bool:
    """Whether the driver holds a connection to any Cassandra node."""
    return any(host.is_up for host in cluster.metadata.all_hosts())


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


# --- writing a batch's rows -----------------------------------------------------------------

# Cassandra refuses the statement itself (a value out of range, a key too long, a batch
# too large) and will refuse it again: the write is bad, not late. InvalidRequest and
# SyntaxException are what the Connect adapter treats as non-transient too; the others are
# the driver failing to encode a value, which the conversion should already have prevented.
RECORD_ERRORS: tuple[type[BaseException], ...] = (
    InvalidRequest,
    SyntaxException,
    TypeError,
    ValueError,
    OverflowError,
    struct.error,
)


def is_record_error(error: BaseException) -> bool:
    """True when retrying cannot help; everything else (Unavailable, timeouts,
    NoHostAvailable, connection errors, overload) is retried."""
    return isinstance(error, RECORD_ERRORS)


class TransientWriteError(RuntimeError):
    """Cassandra could not take a write now (down, restarting, overloaded, slow)."""


@dataclass
class Source:
    """One Kafka record's own image of a row: what writing that record alone means."""

    origin: Any  # the Kafka message
    statement: Any
    values: list[Any]


@dataclass
class Row:
    """The write for one primary key: every image of it in the batch, merged (runner.py)."""

    table: PreparedTable
    statement: Any
    values: list[Any]
    sources: list[Source]

    @property
    def partition(self) -> tuple:
        # A delete binds the key only, partition columns first.
        positions = (
            self.table.partition_positions
            if self.statement is self.table.upsert
            else range(len(self.table.partition_columns))
        )
        return tuple(self.values[i] for i in positions)


@dataclass(frozen=True)
class Request:
    """One request to Cassandra: a statement and its values, or a batch (values None)."""

    statement: Any
    values: list[Any] | None
    rows: list[Row]


@dataclass(frozen=True)
class Refusal:
    """A record Cassandra refused for good, and its error."""

    source: Source
    table: PreparedTable
    error: BaseException


def plan_requests(rows: list[Row]) -> list[Request]:
    """Group rows by statement and partition into unlogged batches of up to MAX_BATCH_ROWS.

    A single-partition batch is one mutation for Cassandra and one request for us,
    which is what lets one Python process keep up with Debezium.
    """
    groups: dict[tuple[Any, tuple], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.statement, row.partition)].append(row)
    requests: list[Request] = []
    for (statement, _partition), group in groups.items():
        for start in range(0, len(group), MAX_BATCH_ROWS):
            requests.extend(_batch(statement, group[start : start + MAX_BATCH_ROWS]))
    return requests


def _batch(statement: Any, rows: list[Row]) -> list[Request]:
    if len(rows) == 1:
        return [Request(statement, rows[0].values, rows)]
    batch = BatchStatement(
        batch_type=BatchType.UNLOGGED,
        consistency_level=getattr(statement, "consistency_level", None),
    )
    try:
        for row in rows:
            batch.add(statement, row.values)
    except RECORD_ERRORS:
        # The driver cannot encode one of the values: send each row alone so that only
        # its own request fails.
        return [Request(statement, row.values, [row]) for row in rows]
    return [Request(batch, None, rows)]


def _run(
    session: Session, requests: list[Request], concurrency: int
) -> list[tuple[Request, BaseException]]:
    """Run the requests; the refused ones with their errors. Raises TransientWriteError
    when any failed for a passing reason, leaving the whole write to be retried."""
    if not requests:
        return []
    results = execute_concurrent(
        session,
        [(r.statement, r.values) for r in requests],
        concurrency=concurrency,
        raise_on_first_error=False,
    )
    refused = [
        (request, result.result_or_exc)
        for request, result in zip(requests, results, strict=True)
        if not result.success
    ]
    for _request, error in refused:
        if not is_record_error(error):
            raise TransientWriteError(f"{type(error).__name__}: {error}") from error
    return refused


def write_rows(session: Session, rows: list[Row], concurrency: int) -> list[Refusal]:
    """Write every row; return the records Cassandra refused for good.

    Rows go in single-partition batches. A batch Cassandra refuses as invalid is written
    again row by row, and a refused row merged from several records record by record, in
    their order, so only the bad record is refused and its neighbours are stored.

    Raises TransientWriteError when a write failed for a passing reason; the caller then
    writes all the rows again (upserts by primary key: rewriting a stored row changes
    nothing), so a refusal is only reported from an attempt that ran to its end.
    """
    refused = _run(session, plan_requests(rows), concurrency)
    refused_rows = [(r.rows[0], error) for r, error in refused if len(r.rows) == 1]
    split = [
        Request(row.statement, row.values, [row])
        for r, _error in refused
        if len(r.rows) > 1
        for row in r.rows
    ]
    refused_rows += [(r.rows[0], error) for r, error in _run(session, split, concurrency)]
    refusals: list[Refusal] = []
    for row, error in refused_rows:
        refusals.extend(_write_records_alone(session, row, error))
    return refusals


def _write_records_alone(session: Session, row: Row, error: BaseException) -> list[Refusal]:
    """A refused row's records written one at a time, oldest first (they share a key, so
    their order matters); those Cassandra refuses too."""
    if len(row.sources) == 1:
        return [Refusal(row.sources[0], row.table, error)]
    refusals: list[Refusal] = []
    for source in row.sources:
        request = Request(source.statement, source.values, [row])
        for _request, source_error in _run(session, [request], 1):
            refusals.append(Refusal(source, row.table, source_error))
    return refusals
