"""Cassandra CQL derived from the table declarations."""

from __future__ import annotations

from capstock.history.schema import KeyspaceOptions, keyspace_cql, schema_cql, table_cql
from capstock.model.tables import HEARTBEAT, RECENT_TRADES, TABLES


def test_trades_are_bucketed_by_symbol_and_day_newest_first_with_ttl_and_twcs() -> None:
    cql = table_cql(RECENT_TRADES, "cap_stock")
    assert "PRIMARY KEY ((symbol, day), trade_id)" in cql
    assert "CLUSTERING ORDER BY (trade_id DESC)" in cql
    assert "default_time_to_live = 2592000" in cql
    assert "'class': 'TimeWindowCompactionStrategy'" in cql
    assert "'compaction_window_size': 1" in cql
    assert "price decimal" in cql
    assert "trade_time timestamp" in cql


def test_table_without_ttl_or_clustering_has_no_options() -> None:
    cql = table_cql(HEARTBEAT, "ks")
    assert cql.startswith("CREATE TABLE IF NOT EXISTS ks.heartbeat")
    assert "PRIMARY KEY ((source))" in cql
    assert "WITH" not in cql


def test_keyspace_replication_is_configurable() -> None:
    simple = keyspace_cql(KeyspaceOptions())
    assert "IF NOT EXISTS cap_stock" in simple
    assert "'replication_factor': 1" in simple
    nts = keyspace_cql(KeyspaceOptions("h", "NetworkTopologyStrategy", 3, "dc-eu"))
    assert "{'class': 'NetworkTopologyStrategy', 'dc-eu': 3}" in nts


def test_every_declared_column_and_key_appears() -> None:
    statements = schema_cql(KeyspaceOptions())
    assert len(statements) == 1 + len(TABLES)
    for table, cql in zip(TABLES.values(), statements[1:], strict=True):
        for column in table.columns:
            assert f"    {column.name} {column.cql_type}" in cql


def test_an_older_cassandra_table_gets_the_columns_it_lacks() -> None:
    from capstock.history.schema import added_columns_cql
    from capstock.model.tables import HEARTBEAT

    old = ["source", "beat_time", "weight_used_1m", "trade_gaps_total", "ingested_at"]
    assert added_columns_cql(HEARTBEAT, "ks", old) == [
        "ALTER TABLE ks.heartbeat ADD exchange_error text",
        "ALTER TABLE ks.heartbeat ADD exchange_error_since timestamp",
        "ALTER TABLE ks.heartbeat ADD trade_gaps_filled bigint",
        "ALTER TABLE ks.heartbeat ADD trade_gaps_open bigint",
        "ALTER TABLE ks.heartbeat ADD ingest_mode text",
    ]
    assert added_columns_cql(HEARTBEAT, "ks", HEARTBEAT.column_names) == []
