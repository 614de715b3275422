"""Cassandra keyspace and tables, derived from the declarations in `capstock.tables`.

Applied idempotently by `cap-stock cassandra-setup` (CREATE ... IF NOT EXISTS):
partition and clustering keys come from each Table, clustering order is newest
first, TTL'd time series get time-window compaction with windows sized to the TTL.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from capstock.tables import DAY_SECONDS, TABLES, Table

log = logging.getLogger(__name__)

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")

# Time-window compaction aims at roughly this many windows over a table's TTL, so
# whole sstables expire together and are dropped without compaction work.
TWCS_WINDOWS_PER_TTL = 30


@dataclass(frozen=True)
class KeyspaceOptions:
    name: str = "cap_stock"
    strategy: str = "SimpleStrategy"
    replication_factor: int = 1
    datacenter: str = "datacenter1"

    def replication(self) -> str:
        if self.strategy == "NetworkTopologyStrategy":
            return (
                f"{{'class': 'NetworkTopologyStrategy', "
                f"'{self.datacenter}': {self.replication_factor}}}"
            )
        return f"{{'class': 'SimpleStrategy', 'replication_factor': {self.replication_factor}}}"


def role_statements(role: str) -> tuple[str, str]:
    """CQL to create the pipeline's login role and to re-set its password (bound as %s).

    Role names cannot be bound, so the name is checked against a strict pattern instead.
    Used by the native stack and by compose's cassandra-init, so both create it alike.
    """
    if not ROLE_NAME.match(role):
        raise ValueError(
            f"CASSANDRA_USER={role!r} is not allowed: use lower-case letters, digits and _"
        )
    return (
        f"CREATE ROLE IF NOT EXISTS {role} WITH PASSWORD = %s AND LOGIN = true",
        f"ALTER ROLE {role} WITH PASSWORD = %s",
    )


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


def apply_schema(session, options: KeyspaceOptions) -> int:  # type: ignore[no-untyped-def]
    """Run every statement; safe to repeat. Returns the number of statements run."""
    statements = schema_cql(options)
    for statement in statements:
        session.execute(statement, timeout=60)
    log.info("cassandra-setup: keyspace %s and %d tables ready", options.name, len(TABLES))
    return len(statements)
