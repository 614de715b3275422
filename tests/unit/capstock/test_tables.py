"""The table registry and the Postgres DDL derived from it."""

import re

import pytest
from capstock.model.tables import TABLES, Column, RowMismatch, Table, postgres_ddl, postgres_schema

EXPECTED_KEYS = {
    "kline_data": (("symbol", "interval", "open_time"), ("symbol", "interval")),
    "recent_trades": (("symbol", "trade_id"), ("symbol", "day")),
    "order_book": (("symbol", "snapshot_time", "side", "price"), ("symbol", "day")),
    "top_24hr": (("symbol", "close_time"), ("symbol",)),
    "latest_prices": (("symbol", "ts"), ("symbol", "day")),
    "heartbeat": (("source",), ("source",)),
}


def test_registry_holds_the_six_tables_in_pipeline_order():
    assert list(TABLES) == [
        "kline_data",
        "recent_trades",
        "order_book",
        "top_24hr",
        "latest_prices",
        "heartbeat",
    ]


@pytest.mark.parametrize("name", list(EXPECTED_KEYS))
def test_natural_keys(name):
    table = TABLES[name]
    assert (table.primary_key, table.partition_key) == EXPECTED_KEYS[name]


@pytest.mark.parametrize("table", list(TABLES.values()), ids=list(TABLES))
def test_every_table_has_ingest_time_and_typed_columns(table):
    assert table.column("ingested_at").pg_type == "timestamptz"
    for column in table.columns:
        if column.pg_type == "numeric":
            assert column.cql_type == "decimal"
        if column.pg_type == "timestamptz":
            assert column.cql_type == "timestamp"


def test_prices_are_numeric_never_floating_point():
    types = {c.pg_type for t in TABLES.values() for c in t.columns}
    assert not types & {"real", "double precision", "float"}
    assert TABLES["recent_trades"].column("price").pg_type == "numeric"


def test_order_book_clustering_and_ttls():
    book = TABLES["order_book"]
    assert book.clustering_key == (("snapshot_time", "DESC"), ("side", "ASC"), ("price", "ASC"))
    assert book.cassandra_primary_key == ("symbol", "day", "snapshot_time", "side", "price")
    assert TABLES["recent_trades"].ttl_seconds == 30 * 86400
    assert TABLES["kline_data"].ttl_seconds is None


def test_ddl_is_derived_from_the_declaration():
    ddl = postgres_ddl(TABLES["kline_data"])
    assert ddl.startswith('CREATE TABLE IF NOT EXISTS "kline_data" (')
    assert '"open" numeric NOT NULL' in ddl
    assert '"trade_count" bigint NOT NULL' in ddl
    assert re.search(r'"rank" integer,', ddl), "rank is nullable"
    assert "\"ingested_at\" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())" in ddl
    assert ddl.rstrip().endswith('PRIMARY KEY ("symbol", "interval", "open_time")\n);')
    columns = re.findall(r'^\s+"(\w+)" ', ddl, re.M)
    assert tuple(columns) == TABLES["kline_data"].column_names


def test_schema_covers_every_table_once():
    schema = postgres_schema()
    for name in TABLES:
        assert schema.count(f'CREATE TABLE IF NOT EXISTS "{name}"') == 1


def test_declaration_rejects_unknown_key_columns():
    cols = (Column("a", "text", "text"), Column("ingested_at", "timestamptz", "timestamp"))
    with pytest.raises(ValueError, match="not declared"):
        Table("t", cols, ("b",), ("a",), (), None)
    with pytest.raises(ValueError, match="nullable"):
        Table("t", (Column("a", "text", "text", nullable=True), cols[1]), ("a",), ("a",), (), None)


def test_conflict_policies_in_the_upsert_sql():
    from capstock.staging.writer import conflict_clause

    trades = conflict_clause(TABLES["recent_trades"]).as_string(None)
    assert trades == 'ON CONFLICT ("symbol", "trade_id") DO NOTHING'
    klines = conflict_clause(TABLES["kline_data"]).as_string(None)
    assert klines.startswith('ON CONFLICT ("symbol", "interval", "open_time") DO UPDATE SET ')
    assert '"close" = EXCLUDED."close"' in klines
    assert '"ingested_at" = EXCLUDED."ingested_at"' in klines
    compared = klines.split(" WHERE ", 1)[1]
    assert '"kline_data"."is_closed"' in compared and "ingested_at" not in compared
    heartbeat = conflict_clause(TABLES["heartbeat"]).as_string(None)
    keep = 'COALESCE(EXCLUDED."trade_gaps_total", "heartbeat"."trade_gaps_total")'
    assert f'"trade_gaps_total" = {keep}' in heartbeat, "a NULL total keeps the stored one"
    compared = heartbeat.split(" WHERE ", 1)[1]
    assert f", {keep}, " in compared, "and compares what will be stored"
    assert '"weight_used_1m" = EXCLUDED."weight_used_1m"' in heartbeat
    keeping = [c.name for t in TABLES.values() for c in t.columns if c.keep_when_null]
    assert keeping == ["trade_gaps_total", "trade_gaps_filled"]


def test_batches_are_deduplicated_by_primary_key_last_wins():
    from capstock.staging.writer import dedupe

    base = {
        "source": "producer",
        "beat_time": 1,
        "weight_used_1m": 1,
        "trade_gaps_total": 0,
        "ingested_at": 1,
    }
    base |= {"exchange_error": None, "exchange_error_since": None}
    base |= {"trade_gaps_filled": 3, "trade_gaps_open": 0, "ingest_mode": "stream"}
    rows = dedupe(TABLES["heartbeat"], [base, {**base, "beat_time": 2}])
    assert rows == [("producer", 2, 1, 0, 1, None, None, 3, 0, "stream")]


def test_an_older_table_gets_the_columns_it_lacks_appended() -> None:
    from capstock.model.tables import HEARTBEAT, postgres_added_columns

    old = ["source", "beat_time", "weight_used_1m", "trade_gaps_total", "ingested_at"]
    assert postgres_added_columns(HEARTBEAT, old) == [
        'ALTER TABLE "heartbeat" ADD COLUMN IF NOT EXISTS "exchange_error" text',
        'ALTER TABLE "heartbeat" ADD COLUMN IF NOT EXISTS "exchange_error_since" timestamptz',
        'ALTER TABLE "heartbeat" ADD COLUMN IF NOT EXISTS "trade_gaps_filled" bigint',
        'ALTER TABLE "heartbeat" ADD COLUMN IF NOT EXISTS "trade_gaps_open" bigint',
        'ALTER TABLE "heartbeat" ADD COLUMN IF NOT EXISTS "ingest_mode" text',
    ]
    assert postgres_added_columns(HEARTBEAT, HEARTBEAT.column_names) == []


def test_a_not_null_column_without_default_cannot_be_added_later() -> None:
    from capstock.model.tables import HEARTBEAT, postgres_added_columns

    with pytest.raises(ValueError, match=r"heartbeat\.beat_time: a column added later"):
        postgres_added_columns(HEARTBEAT, ["source"])


def _beat(**changes):
    row = dict.fromkeys(TABLES["heartbeat"].column_names, 1) | {"source": "producer"}
    return row | changes


def test_a_row_without_a_column_is_an_error_not_null():
    from capstock.staging.writer import dedupe

    row = _beat()
    del row["exchange_error"]
    with pytest.raises(RowMismatch, match=r"heartbeat row .* missing \['exchange_error'\]"):
        dedupe(TABLES["heartbeat"], [_beat(), row])


def test_a_row_with_an_unknown_key_is_an_error():
    from capstock.staging.writer import dedupe

    with pytest.raises(RowMismatch, match=r"heartbeat row .* unknown \['weight'\]"):
        dedupe(TABLES["heartbeat"], [_beat(weight=5)])
    row = _beat(weight=5)
    del row["beat_time"]
    with pytest.raises(RowMismatch, match=r"missing \['beat_time'\], unknown \['weight'\]"):
        dedupe(TABLES["heartbeat"], [row])


def test_none_is_null_and_an_empty_batch_is_empty():
    from capstock.staging.writer import dedupe

    (values,) = dedupe(TABLES["heartbeat"], [_beat(exchange_error=None)])
    assert values[TABLES["heartbeat"].column_names.index("exchange_error")] is None
    assert dedupe(TABLES["heartbeat"], []) == []


def test_every_table_names_its_event_time():
    for table in TABLES.values():
        column = table.column(table.event_time)
        assert column.pg_type == "timestamptz" and not column.nullable, table.name
    assert TABLES["kline_data"].event_time == "open_time"
    assert TABLES["heartbeat"].event_time == "beat_time"


def test_an_event_time_must_be_a_declared_time():
    cols = (Column("a", "text", "text"), Column("ingested_at", "timestamptz", "timestamp"))
    with pytest.raises(ValueError, match="event time 'b' is not a declared NOT NULL time"):
        Table("t", cols, ("a",), ("a",), (), None, event_time="b")
    with pytest.raises(ValueError, match="event time 'a'"):
        Table("t", cols, ("a",), ("a",), (), None, event_time="a")
    assert Table("t", cols, ("a",), ("a",), (), None, event_time="ingested_at")
