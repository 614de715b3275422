"""Cassandra keyspace and tables, derived from the declarations in `capstock.model.tables`.

Applied idempotently by `cap-stock cassandra-setup` (CREATE ... IF NOT EXISTS):
partition and clustering keys come from each Table, clustering order is newest
first, TTL'd time series get time-window compaction with windows sized to the TTL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from capstock.config import CASSANDRA_DATACENTER, KEYSPACE
from capstock.model.tables import DAY_SECONDS, TABLES, Table

log = logging.getLogger(__name__)

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")

# Time-window compaction aims at roughly this many windows over a table's TTL, so
# whole sstables expire together and are dropped without compaction work.
TWCS_WINDOWS_PER_TTL = 30


@dataclass(frozen=True)
class KeyspaceOptions:
    name: str = KEYSPACE
    strategy: str = "SimpleStrategy"
    replication_factor: int = 1
    datacenter: str = CASSANDRA_DATACENTER

    def replication(self) -> str:
        if self.strategy == "NetworkTopologyStrategy":
            return (
                f"{{'class': 'NetworkTopologyStrategy', "
                f"'{self.datacenter}': {self.replication_factor}}}"
            )
        return f"{{'class': 'SimpleStrategy', 'replication_factor': {self.replication_factor}}}"


def checked_role(role: str) -> str:
    """Role names cannot be bound, so each is checked against a strict pattern instead."""
    if not ROLE_NAME.match(role):
        raise ValueError(f"role {role!r} is not allowed: use lower-case letters, digits and _")
    return role


def role_statements(role: str, superuser: bool = False) -> tuple[str, str]:
    """CQL to create a login role and to re-set its password and rank (password bound as %s).

    Used by the native stack and by compose's cassandra-init, so both create roles alike.
    """
    rank = f"SUPERUSER = {str(superuser).lower()} AND LOGIN = true"
    return (
        f"CREATE ROLE IF NOT EXISTS {checked_role(role)} WITH PASSWORD = %s AND {rank}",
        f"ALTER ROLE {checked_role(role)} WITH PASSWORD = %s AND {rank}",
    )


# What each login role may do on the pipeline's keyspace, and nothing else.
SINK_PERMISSIONS = ("SELECT", "MODIFY")
READER_PERMISSIONS = ("SELECT",)


def grant_statements(role: str, keyspace: str, permissions: tuple[str, ...]) -> list[str]:
    """Exactly `permissions` on `keyspace`: anything granted before is revoked first."""
    role = checked_role(role)
    return [
        f"REVOKE ALL PERMISSIONS ON KEYSPACE {keyspace} FROM {role}",
        *(f"GRANT {p} ON KEYSPACE {keyspace} TO {role}" for p in permissions),
    ]


def access_cql(keyspace: str, sink_role: str, reader_role: str) -> list[str]:
    """The sink may read and write `keyspace`, the reader (Grafana) only read it."""
    return [
        *grant_statements(sink_role, keyspace, SINK_PERMISSIONS),
        *grant_statements(reader_role, keyspace, READER_PERMISSIONS),
    ]


def keyspace_cql(options: KeyspaceOptions) -> str:
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {options.name} WITH replication = {options.replication()}"
    )


def _compaction(table: Table) -> str | None:
    if not table.ttl_seconds or not table.clustering_key:
        return None
    window_days = max(1, table.ttl_seconds // DAY_SECONDS // TWCS_WINDOWS_PER_TTL)
    return (
        "{'class': 'TimeWindowCompactionStrategy', "
        f"'compaction_window_unit': 'DAYS', 'compaction_window_size': {window_days}}}"
    )


def table_cql(table: Table, keyspace: str) -> str:
    """CREATE TABLE IF NOT EXISTS for one table."""
    columns = ",\n".join(f"    {c.name} {c.cql_type}" for c in table.columns)
    partition = ", ".join(table.partition_key)
    clustering = [name for name, _ in table.clustering_key]
    key = ", ".join([f"({partition})", *clustering])
    options = []
    if table.clustering_key:
        order = ", ".join(f"{name} {direction}" for name, direction in table.clustering_key)
        options.append(f"CLUSTERING ORDER BY ({order})")
    if table.ttl_seconds:
        options.append(f"default_time_to_live = {table.ttl_seconds}")
    compaction = _compaction(table)
    if compaction:
        options.append(f"compaction = {compaction}")
    with_clause = f"\nWITH {' AND '.join(options)}" if options else ""
    return (
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{table.name} (\n{columns},\n"
        f"    PRIMARY KEY ({key})\n){with_clause}"
    )


def schema_cql(options: KeyspaceOptions) -> list[str]:
    """Every statement, keyspace first."""
    return [keyspace_cql(options), *(table_cql(t, options.name) for t in TABLES.values())]


def added_columns_cql(table: Table, keyspace: str, existing: Iterable[str]) -> list[str]:
    """``ALTER TABLE ... ADD`` for each declared column an older table lacks (Cassandra
    columns carry no NOT NULL, so any column can be added to a table with rows)."""
    have = set(existing)
    return [
        f"ALTER TABLE {keyspace}.{table.name} ADD {c.name} {c.cql_type}"
        for c in table.columns
        if c.name not in have
    ]


def apply_schema(session, options: KeyspaceOptions) -> int:  # type: ignore[no-untyped-def]
    """Run every statement, then add the columns older tables lack; safe to repeat.
    Returns the number of statements run."""
    statements = schema_cql(options)
    for statement in statements:
        session.execute(statement, timeout=60)
    for table in TABLES.values():
        rows = session.execute(
            "SELECT column_name FROM system_schema.columns "
            "WHERE keyspace_name = %s AND table_name = %s",
            [options.name, table.name],
            timeout=60,
        )
        for statement in added_columns_cql(table, options.name, (r.column_name for r in rows)):
            log.info("cassandra-setup: %s", statement)
            session.execute(statement, timeout=60)
            statements.append(statement)
    log.info("cassandra-setup: keyspace %s and %d tables ready", options.name, len(TABLES))
    return len(statements)
