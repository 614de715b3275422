"""The single declaration of every table in the pipeline.

Each :class:`Table` says, once, what a row looks like in both stores: column names, the
Postgres type, the Cassandra type, the natural primary key (Postgres), the Cassandra
partition and clustering keys, the Cassandra TTL and how a repeated key is written in
Postgres. Everything else (Postgres DDL, Cassandra CQL, the sink mappings, the producer's
row checks) is derived from here, so adding a column is a one-line change.

Conventions shared by all tables:

* prices and quantities are exact decimals: Postgres ``numeric``, Cassandra ``decimal``;
* times are UTC with millisecond precision: Postgres ``timestamptz``, Cassandra ``timestamp``;
* every table carries the exchange's event time (its column named by ``event_time``) and
  ``ingested_at`` (when the producer wrote the row), so end-to-end lag can be charted;
* high-volume tables carry ``day`` (the UTC date of their event time) so Cassandra
  partitions are bounded to one symbol-day.

TTLs (Cassandra only; Postgres is a staging store kept small by a retention job):

=============  =========  ==========================================================
table          TTL        why
=============  =========  ==========================================================
kline_data     none       small (one row per symbol-interval-candle), the long history
recent_trades  30 days    every trade of every symbol: by far the largest table
order_book     14 days    N levels x 2 sides per snapshot; old books are rarely useful
top_24hr       365 days   one row per symbol per poll; a year of daily-ish context
latest_prices  90 days    one row per symbol per poll; klines cover the long term
heartbeat      none       one row per source, overwritten on every beat
=============  =========  ==========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from psycopg import sql

Order = Literal["ASC", "DESC"]
OnConflict = Literal["update", "ignore"]

DAY_SECONDS = 24 * 60 * 60
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class RowMismatch(ValueError):
    """A row whose keys are not its table's columns: a row builder and the registry disagree."""


@dataclass(frozen=True)
class Column:
    """One column, typed for both stores.

    ``nullable`` only matters in Postgres (primary-key columns are always NOT NULL);
    ``pg_default`` is a Postgres default expression, e.g. :data:`NOW_MS`. With
    ``keep_when_null``, an update that carries NULL keeps the stored value (a running
    total the writer does not know at that moment).
    """

    name: str
    pg_type: str
    cql_type: str
    nullable: bool = False
    pg_default: str | None = None
    keep_when_null: bool = False


@dataclass(frozen=True)
class Table:
    """One table: its columns, keys in both stores, TTL and conflict policy.

    ``on_conflict`` says what a second write of the same primary key does in Postgres:
    ``"update"`` overwrites the non-key columns (only when a value other than
    ``ingested_at`` actually changed, so unchanged re-fetches cause no WAL traffic and no
    change events); ``"ignore"`` keeps the first row (immutable facts such as trades).

    ``event_time`` names the column holding the time the row describes (a candle's open, a
    trade, a snapshot): what dashboards count and chart rows by.
    """

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    partition_key: tuple[str, ...]
    clustering_key: tuple[tuple[str, Order], ...]
    ttl_seconds: int | None
    on_conflict: OnConflict = "ignore"
    event_time: str | None = None
    # Whether the retention job deletes this table's old rows from Postgres (the
    # sink ignores those deletes, so Cassandra keeps the history).
    pruned: bool = True
    column_names: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        object.__setattr__(self, "column_names", names)
        for name in (self.name, *names):
            if not _NAME.match(name):
                raise ValueError(f"{self.name}: {name!r} is not a plain lower-case identifier")
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column names")
        keys = set(self.primary_key) | set(self.partition_key)
        keys |= {name for name, _ in self.clustering_key}
        unknown = keys - set(names)
        if unknown:
            raise ValueError(f"{self.name}: key columns {sorted(unknown)} are not declared")
        if self.event_time is not None:
            event = next((c for c in self.columns if c.name == self.event_time), None)
            if event is None or event.pg_type != "timestamptz" or event.nullable:
                raise ValueError(
                    f"{self.name}: event time {self.event_time!r} is not a declared NOT NULL time"
                )
        for name in self.primary_key:
            if self.column(name).nullable:
                raise ValueError(f"{self.name}: primary-key column {name} is nullable")
        if not self.partition_key:
            raise ValueError(f"{self.name}: a Cassandra partition key is required")
        if "ingested_at" not in names:
            raise ValueError(f"{self.name}: every table needs ingested_at")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def check_row(self, row: dict) -> None:
        """Raise :class:`RowMismatch`, naming the table and the keys, unless ``row`` has
        exactly this table's columns as keys."""
        missing = [name for name in self.column_names if name not in row]
        unknown = sorted(str(key) for key in row if key not in self.column_names)
        if missing or unknown:
            raise RowMismatch(
                f"a {self.name} row does not match the table's columns: "
                f"missing {missing or 'none'}, unknown {unknown or 'none'} "
                "(the columns are declared in capstock/model/tables.py)"
            )

    @property
    def cassandra_primary_key(self) -> tuple[str, ...]:
        """Partition columns followed by clustering columns."""
        return self.partition_key + tuple(name for name, _ in self.clustering_key)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Columns outside the Postgres primary key (what an upsert may overwrite)."""
        return tuple(n for n in self.column_names if n not in self.primary_key)


def _col(
    name: str,
    kind: str,
    *,
    nullable: bool = False,
    pg_default: str | None = None,
    keep_when_null: bool = False,
) -> Column:
    pg, cql = _KINDS[kind]
    return Column(
        name, pg, cql, nullable=nullable, pg_default=pg_default, keep_when_null=keep_when_null
    )


# Logical kinds -> (Postgres type, Cassandra type). Only these pairs are used.
_KINDS: dict[str, tuple[str, str]] = {
    "text": ("text", "text"),
    "decimal": ("numeric", "decimal"),
    "time": ("timestamptz", "timestamp"),
    "date": ("date", "date"),
    "bigint": ("bigint", "bigint"),
    "int": ("integer", "int"),
    "bool": ("boolean", "boolean"),
}

NOW_MS = "date_trunc('milliseconds', now())"
"""Postgres' current time at the precision both stores keep (Cassandra's ``timestamp`` has
milliseconds; a bare ``now()`` carries microseconds that Cassandra would drop)."""

_INGESTED_AT = _col("ingested_at", "time", pg_default=NOW_MS)

KLINE_DATA = Table(
    name="kline_data",
    columns=(
        _col("symbol", "text"),
        _col("interval", "text"),
        _col("open_time", "time"),
        _col("close_time", "time"),
        _col("open", "decimal"),
        _col("high", "decimal"),
        _col("low", "decimal"),
        _col("close", "decimal"),
        _col("volume", "decimal"),
        _col("quote_volume", "decimal"),
        _col("trade_count", "bigint"),
        _col("taker_buy_base_volume", "decimal"),
        _col("taker_buy_quote_volume", "decimal"),
        _col("is_closed", "bool"),
        _col("rank", "int", nullable=True),
        _INGESTED_AT,
    ),
    event_time="open_time",
    primary_key=("symbol", "interval", "open_time"),
    partition_key=("symbol", "interval"),
    clustering_key=(("open_time", "DESC"),),
    ttl_seconds=None,
    on_conflict="update",
)
"""Candles from GET /api/v3/klines; the open candle is updated until it closes."""

RECENT_TRADES = Table(
    name="recent_trades",
    columns=(
        _col("symbol", "text"),
        _col("trade_id", "bigint"),
        _col("price", "decimal"),
        _col("qty", "decimal"),
        _col("quote_qty", "decimal"),
        _col("trade_time", "time"),
        _col("is_buyer_maker", "bool"),
        _col("is_best_match", "bool"),
        _col("day", "date"),
        _INGESTED_AT,
    ),
    event_time="trade_time",
    primary_key=("symbol", "trade_id"),
    partition_key=("symbol", "day"),
    clustering_key=(("trade_id", "DESC"),),
    ttl_seconds=30 * DAY_SECONDS,
    on_conflict="ignore",
)
"""Trades from GET /api/v3/trades, deduplicated by trade id."""

ORDER_BOOK = Table(
    name="order_book",
    columns=(
        _col("symbol", "text"),
        _col("snapshot_time", "time"),
        _col("side", "text"),
        _col("price", "decimal"),
        _col("qty", "decimal"),
        _col("level", "int"),
        _col("last_update_id", "bigint"),
        _col("day", "date"),
        _INGESTED_AT,
    ),
    event_time="snapshot_time",
    primary_key=("symbol", "snapshot_time", "side", "price"),
    partition_key=("symbol", "day"),
    clustering_key=(("snapshot_time", "DESC"), ("side", "ASC"), ("price", "ASC")),
    ttl_seconds=14 * DAY_SECONDS,
    on_conflict="ignore",
)
"""Top-N levels per side from GET /api/v3/depth, one snapshot_time per fetch."""

TOP_24HR = Table(
    name="top_24hr",
    columns=(
        _col("symbol", "text"),
        _col("close_time", "time"),
        _col("open_time", "time"),
        _col("price_change", "decimal"),
        _col("price_change_percent", "decimal"),
        _col("weighted_avg_price", "decimal"),
        _col("prev_close_price", "decimal"),
        _col("last_price", "decimal"),
        _col("last_qty", "decimal"),
        _col("bid_price", "decimal"),
        _col("ask_price", "decimal"),
        _col("open_price", "decimal"),
        _col("high_price", "decimal"),
        _col("low_price", "decimal"),
        _col("volume", "decimal"),
        _col("quote_volume", "decimal"),
        _col("first_id", "bigint"),
        _col("last_id", "bigint"),
        _col("trade_count", "bigint"),
        _col("rank", "int"),
        _INGESTED_AT,
    ),
    event_time="close_time",
    primary_key=("symbol", "close_time"),
    partition_key=("symbol",),
    clustering_key=(("close_time", "DESC"),),
    ttl_seconds=365 * DAY_SECONDS,
    on_conflict="update",
)
"""Rolling 24h statistics from GET /api/v3/ticker/24hr for the ranked universe."""

LATEST_PRICES = Table(
    name="latest_prices",
    columns=(
        _col("symbol", "text"),
        _col("ts", "time"),
        _col("price", "decimal"),
        _col("day", "date"),
        _INGESTED_AT,
    ),
    event_time="ts",
    primary_key=("symbol", "ts"),
    partition_key=("symbol", "day"),
    clustering_key=(("ts", "DESC"),),
    ttl_seconds=90 * DAY_SECONDS,
    on_conflict="ignore",
)
"""GET /api/v3/ticker/price; the response has no time, so ts is the fetch time."""

HEARTBEAT = Table(
    name="heartbeat",
    columns=(
        _col("source", "text"),
        _col("beat_time", "time"),
        _col("weight_used_1m", "int", nullable=True),
        _col("trade_gaps_total", "bigint", nullable=True, keep_when_null=True),
        _INGESTED_AT,
        _col("exchange_error", "text", nullable=True),
        _col("exchange_error_since", "time", nullable=True),
        _col("trade_gaps_filled", "bigint", nullable=True, keep_when_null=True),
        _col("trade_gaps_open", "bigint", nullable=True),
        _col("ingest_mode", "text", nullable=True),
    ),
    event_time="beat_time",
    primary_key=("source",),
    partition_key=("source",),
    clustering_key=(),
    ttl_seconds=None,
    on_conflict="update",
    pruned=False,
)
"""One row per source, overwritten on every beat: 'producer' writes it on a timer, Debezium's
heartbeat action query writes 'debezium'. trade_gaps_total counts every trade-id gap any
producer run found (each run adds to the stored total). exchange_error says why the exchange
cannot be used (a ban, no connection, the streams down) and exchange_error_since since when;
both NULL while it answers. In stream mode (ingest_mode 'stream') trade_gaps_filled counts the
gaps filled from REST (persistent, like the total) and trade_gaps_open the gaps not filled yet
(now); the polling mode fills none and leaves both NULL.
"""

DEBEZIUM_HEARTBEAT_SOURCE = "debezium"


def debezium_heartbeat_query(table: Table = HEARTBEAT) -> str:
    """Debezium's ``heartbeat.action.query`` (register-postgres.json): upserts the
    ``debezium`` row of the heartbeat table, every time column at :data:`NOW_MS`, so the
    row is identical in Postgres and Cassandra. Runs every ``heartbeat.interval.ms`` as
    Debezium's role, and moves the slot forward while the tables are idle.
    """
    times = [c.name for c in table.columns if c.pg_type == "timestamptz" and not c.nullable]
    (key,) = table.primary_key
    columns = ", ".join([key, *times])
    values = ", ".join([f"'{DEBEZIUM_HEARTBEAT_SOURCE}'", *[NOW_MS] * len(times)])
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in times)
    return (
        f"INSERT INTO {table.name} ({columns}) VALUES ({values}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


TABLES: dict[str, Table] = {
    t.name: t for t in (KLINE_DATA, RECENT_TRADES, ORDER_BOOK, TOP_24HR, LATEST_PRICES, HEARTBEAT)
}


def _ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def postgres_ddl(table: Table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one table, derived from its declaration.

    Safe to run on every start-up: an existing table is left as it is.
    """
    lines = [f"    {_pg_column(table, c)}" for c in table.columns]
    pk = ", ".join(_ident(n) for n in table.primary_key)
    lines.append(f"    PRIMARY KEY ({pk})")
    body = ",\n".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {_ident(table.name)} (\n{body}\n);"


def _pg_column(table: Table, c: Column) -> str:
    line = f"{_ident(c.name)} {c.pg_type}"
    if not c.nullable or c.name in table.primary_key:
        line += " NOT NULL"
    if c.pg_default is not None:
        line += f" DEFAULT {c.pg_default}"
    return line


def postgres_added_columns(table: Table, existing: Iterable[str]) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN`` for each declared column an older table lacks.

    Columns are only ever appended, so a migrated table has the columns of a new one in
    the same order. A column added later must be nullable or have a default: the table
    may already hold rows.
    """
    have = set(existing)
    missing = [c for c in table.columns if c.name not in have]
    for c in missing:
        if not c.nullable and c.pg_default is None:
            raise ValueError(f"{table.name}.{c.name}: a column added later must be nullable")
    return [
        f"ALTER TABLE {_ident(table.name)} ADD COLUMN IF NOT EXISTS {_pg_column(table, c)}"
        for c in missing
    ]


def postgres_schema() -> str:
    """DDL for every table, in declaration order."""
    return "\n\n".join(postgres_ddl(t) for t in TABLES.values()) + "\n"


def publication_sql(publication: str, tables: Iterable[Table]) -> tuple[sql.Composed, sql.Composed]:
    """CREATE and ALTER (re-point) of the publication Debezium streams (pgoutput).

    The tables' owner creates it, so Debezium's role needs no ownership
    (register-postgres.json: publication.autocreate.mode=disabled).
    """
    names = sql.SQL(", ").join(sql.Identifier(t.name) for t in tables)
    name = sql.Identifier(publication)
    return (
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(name, names),
        sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(name, names),
    )


def grant_sql(
    tables: Iterable[Table], readers: Iterable[str], heartbeat_writer: str | None
) -> list[sql.Composable]:
    """SELECT on every table for the reading roles; Debezium also writes its heartbeat row."""
    tables = list(tables)
    names = sql.SQL(", ").join(sql.Identifier(t.name) for t in tables)
    statements: list[sql.Composable] = [
        sql.SQL("GRANT SELECT ON {} TO {}").format(names, sql.Identifier(role)) for role in readers
    ]
    if heartbeat_writer and HEARTBEAT in tables:
        statements.append(
            sql.SQL("GRANT INSERT, UPDATE ON {} TO {}").format(
                sql.Identifier(HEARTBEAT.name), sql.Identifier(heartbeat_writer)
            )
        )
    return statements
