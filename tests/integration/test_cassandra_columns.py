"""cassandra-setup on a keyspace created by an older version of the table registry."""

from __future__ import annotations

import uuid

from capstock.history.schema import KeyspaceOptions, apply_schema
from capstock.model.tables import TABLES


def test_setup_adds_the_columns_an_older_table_lacks(cassandra_session) -> None:  # type: ignore[no-untyped-def]
    keyspace = f"test_{uuid.uuid4().hex[:10]}"
    session = cassandra_session
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        timeout=60,
    )
    try:
        session.execute(
            f"CREATE TABLE {keyspace}.heartbeat (source text PRIMARY KEY, beat_time timestamp, "
            "weight_used_1m int, trade_gaps_total bigint, ingested_at timestamp)",
            timeout=60,
        )
        session.execute(
            f"INSERT INTO {keyspace}.heartbeat (source, trade_gaps_total) VALUES ('producer', 7)"
        )
        apply_schema(session, KeyspaceOptions(name=keyspace))
        apply_schema(session, KeyspaceOptions(name=keyspace))  # and again: nothing to add
        columns = {
            r.column_name
            for r in session.execute(
                "SELECT column_name FROM system_schema.columns "
                "WHERE keyspace_name = %s AND table_name = 'heartbeat'",
                [keyspace],
            )
        }
        row = session.execute(
            f"SELECT trade_gaps_total, exchange_error FROM {keyspace}.heartbeat "
            "WHERE source = 'producer'"
        ).one()
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    assert columns == set(TABLES["heartbeat"].column_names)
    assert (row.trade_gaps_total, row.exchange_error) == (7, None)
