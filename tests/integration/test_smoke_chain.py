"""Smoke test of the real chain: Postgres → Debezium (in Connect) → Kafka → the DataStax
sink engine (in Connect) → Cassandra.

A small table of its own, its own connectors, slot, publication, topic prefix
and consumer group, so it never touches the pipeline's data.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from capstock.cdc.connectors import SINK_CLASS
from capstock.history.schema import access_cql

from stack.connect_api import delete_connector, put_connector, request, wait_running
from tests.support.cdc_harness import delete_topics, drop_slot

pytestmark = pytest.mark.integration

ROWS = [
    (
        1,
        Decimal("0.00001234"),
        Decimal("123456789012.12345678"),
        "2026-11-21 10:15:30.123+00",
        True,
    ),
    (2, Decimal("67012.5"), Decimal("0.001"), "2026-11-21 10:15:31.001+00", False),
    (3, Decimal("1.10"), Decimal("42"), "2026-11-21 10:15:32.999+00", True),
]


def _debezium_config(table: str, prefix: str, slot: str, dbname: str) -> dict[str, str]:
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": "${env:POSTGRES_HOST}",
        "database.port": "${env:POSTGRES_PORT}",
        "database.user": "${env:POSTGRES_CDC_USER}",
        "database.password": "${env:POSTGRES_CDC_PASSWORD}",
        "database.dbname": dbname,  # the test's own database, not the pipeline's
        "topic.prefix": prefix,
        "table.include.list": f"public.{table}",
        "slot.name": slot,
        "slot.drop.on.stop": "true",
        "publication.name": f"{slot}_pub",
        "publication.autocreate.mode": "disabled",  # the owner creates it, as init-db does
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive_time_microseconds",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        # Flat rows in the topic; deletes never leave the source.
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "drop",
    }


def _sink_config(topic: str, table: str, keyspace: str) -> dict[str, str]:
    columns = ["id", "price", "qty", "at", "flag", "note"]
    return {
        "connector.class": SINK_CLASS,
        "topics": topic,
        "contactPoints": "${env:CASSANDRA_HOST}",
        "port": "${env:CASSANDRA_PORT}",
        "loadBalancing.localDc": "${env:CASSANDRA_DATACENTER}",
        "auth.username": "${env:CASSANDRA_USER}",
        "auth.password": "${env:CASSANDRA_PASSWORD}",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        f"topic.{topic}.{keyspace}.{table}.mapping": ", ".join(f"{c}=value.{c}" for c in columns),
        f"topic.{topic}.{keyspace}.{table}.deletesEnabled": "false",
    }


def _wait_for(predicate, timeout: float, what) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"within {timeout:.0f}s: {what()}")


def test_rows_and_an_update_travel_from_postgres_to_cassandra(
    native_stack, cassandra_session, postgres_conninfo: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    table, prefix, slot = f"smoke_{suffix}", f"smoke_{suffix}", f"smoke_{suffix}"
    topic = f"{prefix}.public.{table}"
    connector, sink_name = f"smoke-source-{suffix}", f"smoke-sink-{suffix}"
    conninfo = postgres_conninfo
    dbname = conninfo.split("dbname=")[1].split()[0]
    keyspace = table  # its own keyspace, dropped afterwards

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, price numeric NOT NULL, "
            "qty numeric NOT NULL, at timestamptz NOT NULL, flag boolean NOT NULL, note text)"
        )
        conn.execute(f"CREATE PUBLICATION {slot}_pub FOR TABLE {table}")
        conn.execute(f"GRANT SELECT ON {table} TO {native_stack.postgres_cdc_user}")
    cassandra_session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} "
        "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cassandra_session.execute(
        f"CREATE TABLE {keyspace}.{table} (id bigint PRIMARY KEY, price decimal, qty decimal, "
        "at timestamp, flag boolean, note text)"
    )
    for statement in access_cql(
        keyspace, native_stack.cassandra_user, native_stack.cassandra_reader_user
    ):
        cassandra_session.execute(statement)

    try:
        put_connector(native_stack.connect_url, sink_name, _sink_config(topic, table, keyspace))
        wait_running(native_stack.connect_url, sink_name)
        source = _debezium_config(table, prefix, slot, dbname)
        put_connector(native_stack.connect_url, connector, source)
        wait_running(native_stack.connect_url, connector)

        with psycopg.connect(conninfo) as conn:
            conn.cursor().executemany(
                f"INSERT INTO {table} (id, price, qty, at, flag) VALUES (%s, %s, %s, %s, %s)", ROWS
            )
        with psycopg.connect(conninfo) as conn:
            conn.execute(
                f"UPDATE {table} SET price = %s, note = %s WHERE id = 2",
                [Decimal("67013.00000001"), "updated"],
            )
            conn.execute(f"DELETE FROM {table} WHERE id = 3")
            expected = {
                r[0]: r[1:]
                for r in conn.execute(f"SELECT id, price, qty, at, flag, note FROM {table}")
            }
        expected[3] = (
            ROWS[2][1],
            ROWS[2][2],
            datetime(2026, 11, 21, 10, 15, 32, 999000, UTC),
            True,
            None,
        )  # the delete is ignored: history stays in Cassandra

        seen: dict = {}

        def cassandra_matches() -> bool:
            rows = cassandra_session.execute(
                f"SELECT id, price, qty, at, flag, note FROM {keyspace}.{table}"
            )
            seen.clear()
            seen.update(
                {r.id: (r.price, r.qty, r.at.replace(tzinfo=UTC), r.flag, r.note) for r in rows}
            )
            return seen == expected

        def mismatch() -> str:
            status = request("GET", f"{native_stack.connect_url}/connectors/{sink_name}/status")
            return f"expected {expected}, Cassandra has {seen}; sink status {status}"

        _wait_for(cassandra_matches, 90, mismatch)
        price = (
            cassandra_session.execute(f"SELECT price FROM {keyspace}.{table} WHERE id = 1")
            .one()
            .price
        )
        assert str(price) == "0.00001234"  # same digits and scale as Postgres sent
    finally:
        delete_connector(native_stack.connect_url, sink_name)
        delete_connector(native_stack.connect_url, connector)
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        drop_slot(native_stack, slot)
        delete_topics(native_stack.kafka_bootstrap, [topic, f"__debezium-heartbeat.{prefix}"])
