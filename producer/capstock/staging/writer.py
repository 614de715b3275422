"""Stage 3: bulk, idempotent writes into Postgres.

Guarantee: :meth:`PostgresWriter.write` applies a batch in one transaction, so it is
either fully written or not at all. Rows are keyed by each table's natural primary key,
so writing the same batch twice changes nothing (``ON CONFLICT``). If the connection is
lost (server restart, ``pg_terminate_backend``, network), the writer reconnects with
backoff and writes the same batch again; the caller keeps its rows until ``write``
returns. After a shutdown request it keeps trying for :data:`SHUTDOWN_GRACE_SECONDS`
and then raises :class:`WriteAbandoned`. With a ``patience`` (seconds), every operation
gives up sooner, raising :class:`DatabaseUnavailable` once the database has been
unreachable that long (``0``: a single attempt); :class:`capstock.staging.spool.SpoolingWriter`
uses that to keep the batch on disk instead.

Two strategies, same SQL semantics:

* ``copy`` (default): binary ``COPY`` into a per-connection temporary staging table
  (``ON COMMIT DELETE ROWS``), then one ``INSERT … SELECT … ON CONFLICT``;
* ``executemany``: ``INSERT … VALUES … ON CONFLICT`` through psycopg's pipelined
  ``executemany``.

``bench/bench_postgres_writes.py`` measures both against naive baselines.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, Literal, TypeVar

import psycopg
from psycopg import sql

from capstock.backoff import Backoff, Interrupted, Sleeper
from capstock.model.tables import (
    HEARTBEAT,
    TABLES,
    Table,
    grant_sql,
    postgres_added_columns,
    postgres_ddl,
    publication_sql,
)

log = logging.getLogger(__name__)

RECONNECT_BASE_SECONDS = 0.5
RECONNECT_CAP_SECONDS = 15.0
SHUTDOWN_GRACE_SECONDS = 20.0
"""After SIGTERM, how long a batch in hand may keep waiting for the database."""

Strategy = Literal["copy", "executemany"]
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for the writer's patience: nothing was written."""


class WriteAbandoned(DatabaseUnavailable):
    """Shutdown was requested and the database stayed unreachable: the batch was not written."""


@dataclass(frozen=True)
class WriteResult:
    table: str
    rows: int
    """Distinct rows in the batch (duplicates of one key inside a batch count once)."""
    changed: int
    """Rows inserted or updated; ``rows - changed`` were already present and unchanged."""
    spooled: int = 0
    """Rows kept in the local spool instead (Postgres unreachable); they count in ``rows``."""


def dedupe(table: Table, rows: Iterable[dict]) -> list[tuple]:
    """Rows as tuples in column order, one per primary key (the last occurrence wins).

    ``ON CONFLICT DO UPDATE`` refuses to touch one row twice in a statement, so a batch
    must not repeat a key. Every row must have exactly the table's columns as keys (a
    ``None`` value is NULL); otherwise :class:`capstock.model.tables.RowMismatch` names them.
    """
    cols = table.column_names
    width = len(cols)
    values_of = _getter(cols)
    key_of = _getter([cols.index(k) for k in table.primary_key])
    out: dict[tuple, tuple] = {}
    row: dict = {}
    try:
        for row in rows:
            values = values_of(row)
            if len(row) != width:
                raise KeyError
            out[key_of(values)] = values
    except KeyError:
        table.check_row(row)
        raise
    return list(out.values())


def _getter(keys: Sequence) -> Callable[[Any], tuple]:
    """``itemgetter`` that always returns a tuple (it returns a bare value for one key)."""
    if len(keys) == 1:
        (key,) = keys
        return lambda item: (item[key],)
    return itemgetter(*keys)


def _idents(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def conflict_clause(table: Table) -> sql.Composable:
    """``ON CONFLICT`` for the table's policy; updates skip rows whose values are unchanged,
    and a NULL for a ``keep_when_null`` column keeps the stored value."""
    pk = _idents(table.primary_key)
    if table.on_conflict == "ignore" or not table.value_columns:
        return sql.SQL("ON CONFLICT ({}) DO NOTHING").format(pk)
    target = sql.Identifier(table.name)

    def new_value(name: str) -> sql.Composable:
        column = sql.Identifier(name)
        if table.column(name).keep_when_null:
            return sql.SQL("COALESCE(EXCLUDED.{c}, {t}.{c})").format(c=column, t=target)
        return sql.SQL("EXCLUDED.{}").format(column)

    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), new_value(c)) for c in table.value_columns
    )
    compared = [c for c in table.value_columns if c != "ingested_at"]
    mine = sql.SQL(", ").join(sql.SQL("{}.{}").format(target, sql.Identifier(c)) for c in compared)
    theirs = sql.SQL(", ").join(new_value(c) for c in compared)
    return sql.SQL(
        "ON CONFLICT ({pk}) DO UPDATE SET {sets} WHERE ({mine}) IS DISTINCT FROM ({theirs})"
    ).format(pk=pk, sets=sets, mine=mine, theirs=theirs)


def stage_name(table: Table) -> str:
    return f"_stage_{table.name}"


def error_line(error: BaseException) -> str:
    """The first line of a driver error (libpq messages run over several lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass(frozen=True)
class Access:
    """Who else uses the tables: Debezium (its publication and role) and Grafana."""

    publication: str
    cdc_role: str
    reader_role: str


def grant_access(cur: psycopg.Cursor, access: Access, tables: list[Table]) -> None:
    """The publication over `tables`, and SELECT for the roles that exist (others are warned)."""
    create, repoint = publication_sql(access.publication, tables)
    cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", [access.publication])
    cur.execute(repoint if cur.fetchone() else create)
    roles = [access.cdc_role, access.reader_role]
    cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [roles])
    present = {row[0] for row in cur.fetchall()}
    for missing in sorted(set(roles) - present):
        log.warning("init-db: role %s does not exist; no privileges granted to it", missing)
    writer = access.cdc_role if access.cdc_role in present else None
    for statement in grant_sql(tables, sorted(present), heartbeat_writer=writer):
        cur.execute(statement)


class PostgresWriter:
    """Writes row batches; owns one connection, replaced whenever it breaks."""

    def __init__(
        self,
        conninfo: str,
        *,
        sleeper: Sleeper | None = None,
        strategy: Strategy = "copy",
        backoff: Callable[[], Backoff] | None = None,
        clock: Callable[[], float] = time.monotonic,
        patience: float | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.patience = patience
        """Seconds of unreachability before giving up; None retries until shutdown."""
        self.sleeper = sleeper or Sleeper()
        self.strategy = strategy
        self._backoff = backoff or (
            lambda: Backoff(
                base=RECONNECT_BASE_SECONDS, cap=RECONNECT_CAP_SECONDS, max_attempts=None
            )
        )
        self._clock = clock
        self._conn: psycopg.Connection | None = None
        self._staged: set[str] = set()
        self.reconnects = 0

    # -- connection ------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
            self._staged = set()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
        self._staged = set()

    def close(self) -> None:
        self._drop_connection()

    @contextlib.contextmanager
    def patience_of(self, seconds: float | None) -> Iterator[None]:
        """Use another :attr:`patience` for the operations inside the ``with`` block."""
        saved, self.patience = self.patience, seconds
        try:
            yield
        finally:
            self.patience = saved

    def _with_retry(self, what: str, fn: Callable[[psycopg.Connection], T]) -> T:
        """Run ``fn(conn)``; on connection errors reconnect with backoff and run it again,
        until :attr:`patience` runs out (:class:`DatabaseUnavailable`) or a shutdown's
        grace period ends (:class:`WriteAbandoned`)."""
        backoff = self._backoff()
        attempts = 0
        grace_deadline: float | None = None
        first_failure: float | None = None
        while True:
            attempts += 1
            try:
                return fn(self._connection())
            except CONNECTION_ERRORS as e:
                self._drop_connection()
                self.reconnects += 1
                error = error_line(e)
                now = self._clock()
                if first_failure is None:
                    first_failure = now
                if self.patience is not None and now - first_failure >= self.patience:
                    raise DatabaseUnavailable(f"{what}: {error}") from e
                delay = backoff.next_delay()
                if self.patience is not None:
                    delay = min(delay, first_failure + self.patience - now)
                log.warning(
                    "postgres unavailable during %s attempt=%d retry_in=%.2fs error=%s",
                    what,
                    attempts,
                    delay,
                    error,
                )
                if self.sleeper.stopped:
                    now = self._clock()
                    grace_deadline = grace_deadline or now + SHUTDOWN_GRACE_SECONDS
                    if now >= grace_deadline:
                        raise WriteAbandoned(f"{what}: database unreachable at shutdown") from e
                    self.sleeper.sleep_through(min(delay, grace_deadline - now))
                else:
                    try:
                        self.sleeper.sleep(delay)
                    except Interrupted:
                        grace_deadline = self._clock() + SHUTDOWN_GRACE_SECONDS

    # -- schema ----------------------------------------------------------------------------

    def init_schema(
        self, tables: Iterable[Table] | None = None, access: Access | None = None
    ) -> None:
        """Create every declared table that does not exist yet (idempotent); with `access`,
        the publication Debezium reads and the other roles' privileges too."""
        chosen = list(tables or TABLES.values())
        ddl = [postgres_ddl(t) for t in chosen]

        def apply(conn: psycopg.Connection) -> None:
            with conn.transaction(), conn.cursor() as cur:
                for statement in ddl:
                    cur.execute(statement)
                for table in chosen:
                    cur.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = %s",
                        [table.name],
                    )
                    for statement in postgres_added_columns(table, (r[0] for r in cur)):
                        log.info("init-db: %s", statement)
                        cur.execute(statement)
                if access is not None:
                    grant_access(cur, access, chosen)

        self._with_retry("init-db", apply)

    # -- writes ----------------------------------------------------------------------------

    def write(self, table: Table, rows: Iterable[dict]) -> WriteResult:
        """Upsert ``rows`` into ``table`` in one transaction (see the module docstring)."""
        values = dedupe(table, rows)
        if not values:
            return WriteResult(table.name, 0, 0)
        write_batch = self._copy_upsert if self.strategy == "copy" else self._executemany_upsert
        changed = self._with_retry(
            f"write {table.name}", lambda conn: write_batch(conn, table, values)
        )
        return WriteResult(table.name, len(values), changed)

    def _copy_upsert(self, conn: psycopg.Connection, table: Table, values: list[tuple]) -> int:
        stage = sql.Identifier(stage_name(table))
        cols = _idents(table.column_names)
        created = False
        with conn.transaction(), conn.cursor() as cur:
            if table.name not in self._staged:
                cur.execute(
                    sql.SQL(
                        "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                        "ON COMMIT DELETE ROWS"
                    ).format(stage, sql.Identifier(table.name))
                )
                created = True
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(stage, cols)
            with cur.copy(copy_sql) as copy:
                copy.set_types([c.pg_type for c in table.columns])
                for v in values:
                    copy.write_row(v)
            cur.execute(
                sql.SQL("INSERT INTO {t} ({cols}) SELECT {cols} FROM {stage} {conflict}").format(
                    t=sql.Identifier(table.name),
                    cols=cols,
                    stage=stage,
                    conflict=conflict_clause(table),
                )
            )
            changed = cur.rowcount
        if created:
            self._staged.add(table.name)
        return changed

    def _executemany_upsert(
        self, conn: psycopg.Connection, table: Table, values: list[tuple]
    ) -> int:
        query = sql.SQL("INSERT INTO {t} ({cols}) VALUES ({params}) {conflict}").format(
            t=sql.Identifier(table.name),
            cols=_idents(table.column_names),
            params=sql.SQL(", ").join(sql.Placeholder() * len(table.columns)),
            conflict=conflict_clause(table),
        )
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(query, values)
            return cur.rowcount

    # -- reads -----------------------------------------------------------------------------

    def delete_older_than(self, table: Table, cutoff: datetime, batch: int) -> int:
        """Delete rows ingested before ``cutoff`` in batches of ``batch``, one transaction
        each, so locks stay short and the WAL (and Debezium) see small transactions.
        Stops early on shutdown; returns the number of rows deleted."""
        statement = sql.SQL(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM {t} WHERE {col} < %s LIMIT %s))"
        ).format(t=sql.Identifier(table.name), col=sql.Identifier("ingested_at"))

        def delete_batch(conn: psycopg.Connection) -> int:
            with conn.transaction():
                return conn.execute(statement, (cutoff, batch)).rowcount

        deleted = 0
        while not self.sleeper.stopped:
            count = self._with_retry(f"retention {table.name}", delete_batch)
            deleted += count
            if count < batch:
                break
        return deleted

    def last_trade_id(self, symbol: str) -> int | None:
        """The highest stored trade id of ``symbol`` (resumes gap detection after a restart)."""

        def query(conn: psycopg.Connection) -> int | None:
            row = conn.execute(
                sql.SQL("SELECT max({}) FROM {} WHERE {} = %s").format(
                    sql.Identifier("trade_id"),
                    sql.Identifier("recent_trades"),
                    sql.Identifier("symbol"),
                ),
                (symbol,),
            ).fetchone()
            return row[0] if row else None

        return self._with_retry("read last trade id", query)

    def last_closed_kline(self, symbol: str, interval: str) -> datetime | None:
        """The open time of the newest closed candle stored for ``symbol`` and ``interval``
        (where stream mode's catch-up of candles missed while away starts)."""

        def query(conn: psycopg.Connection) -> datetime | None:
            row = conn.execute(
                sql.SQL("SELECT max({}) FROM {} WHERE {} = %s AND {} = %s AND {}").format(
                    sql.Identifier("open_time"),
                    sql.Identifier("kline_data"),
                    sql.Identifier("symbol"),
                    sql.Identifier("interval"),
                    sql.Identifier("is_closed"),
                ),
                (symbol, interval),
            ).fetchone()
            return row[0] if row else None

        return self._with_retry("read last closed kline", query)

    def stored_kline_runs(
        self, symbol: str, interval: str, first: datetime, last: datetime, step: timedelta
    ) -> list[tuple[datetime, datetime]]:
        """Runs of consecutive *closed* candles stored for ``symbol`` and ``interval``
        with open times from ``first`` to ``last``: (first open, last open) each, oldest
        first. What ``cap-stock backfill`` does not fetch again (an open candle is)."""
        t = sql.Identifier("open_time")
        query = sql.SQL(
            "SELECT min({t}), max({t}) FROM ("
            "SELECT {t}, {t} - %s::interval * row_number() OVER (ORDER BY {t}) AS run "
            "FROM {table} "
            "WHERE {symbol} = %s AND {interval} = %s AND {closed} AND {t} BETWEEN %s AND %s"
            ") candles GROUP BY run ORDER BY 1"
        ).format(
            t=t,
            table=sql.Identifier("kline_data"),
            symbol=sql.Identifier("symbol"),
            interval=sql.Identifier("interval"),
            closed=sql.Identifier("is_closed"),
        )
        params = (step, symbol, interval, first, last)
        return self._with_retry(
            "read stored klines", lambda conn: [tuple(r) for r in conn.execute(query, params)]
        )

    def stored_trade_id_runs(
        self, symbol: str, first_id: int, last_id: int
    ) -> list[tuple[int, int]]:
        """Runs of consecutive trade ids stored for ``symbol`` from ``first_id`` to
        ``last_id``: (first id, last id) each, lowest first (the holes are between)."""
        i = sql.Identifier("trade_id")
        query = sql.SQL(
            "SELECT min({i}), max({i}) FROM ("
            "SELECT {i}, {i} - row_number() OVER (ORDER BY {i}) AS run FROM {table} "
            "WHERE {symbol} = %s AND {i} BETWEEN %s AND %s"
            ") trades GROUP BY run ORDER BY 1"
        ).format(i=i, table=sql.Identifier("recent_trades"), symbol=sql.Identifier("symbol"))
        params = (symbol, first_id, last_id)
        return self._with_retry(
            "read stored trade ids", lambda conn: [tuple(r) for r in conn.execute(query, params)]
        )

    def trade_gaps_total(self, source: str) -> int:
        """The trade-gap total stored in ``source``'s heartbeat row (0 when there is none):
        what every earlier producer run counted, so this one adds to it."""
        return self._heartbeat_count(source, "trade_gaps_total")

    def trade_gaps_filled(self, source: str) -> int:
        """The total of trade-id gaps filled from REST stored in ``source``'s heartbeat row
        (0 when there is none), added to as :meth:`trade_gaps_total` is."""
        return self._heartbeat_count(source, "trade_gaps_filled")

    def _heartbeat_count(self, source: str, column: str) -> int:
        def query(conn: psycopg.Connection) -> int:
            row = conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
                    sql.Identifier(column),
                    sql.Identifier(HEARTBEAT.name),
                    sql.Identifier("source"),
                ),
                (source,),
            ).fetchone()
            return row[0] if row and row[0] is not None else 0

        return self._with_retry(f"read heartbeat {column}", query)
