"""Fixtures on the real native stack (Postgres, Kafka, Connect, Cassandra).

`native_stack` starts whatever is not already running and, at the end of the
session, stops only what it started: the stack is left as the fixture found it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql

from stack import __main__ as stack_cli
from stack.services import Cassandra, Component, Postgres, all_components
from stack.settings import REPO_ROOT, StackSettings
from tests.support.cdc_harness import CdcHarness
from tests.support.simulator_fixtures import simulator, simulator_url  # noqa: F401


def _is_healthy(component: Component) -> bool:
    try:
        return bool(component.pid()) and component.healthy()
    except Exception:
        return False


@pytest.fixture(scope="session")
def native_stack() -> Iterator[StackSettings]:
    settings = StackSettings()
    components = all_components(settings)
    already_up = {c.name for c in components if _is_healthy(c)}
    if len(already_up) < len(components):
        assert stack_cli.up(settings) == 0, "the native stack did not start (see output above)"
    yield settings
    for component in reversed(components):
        if component.name not in already_up:
            component.stop()


PIPELINE = {
    json.loads(path.read_text())["name"]
    for path in (REPO_ROOT / "register-postgres.json", REPO_ROOT / "register_cassandra.json")
}


def footprint(settings: StackSettings) -> dict[str, set[str]]:
    """What tests could leave behind in the shared stack."""
    from confluent_kafka.admin import AdminClient

    from stack.connect_api import request

    with Postgres(settings).superuser_connection() as conn:
        slots = {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots")}
        databases = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    cluster, session = Cassandra(settings).admin_session()
    try:
        keyspaces = {
            r.keyspace_name
            for r in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
        }
    finally:
        cluster.shutdown()
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    return {
        "replication slots": slots,
        "databases": databases,
        # The pipeline's own connectors come back from Connect's config topic on their own
        # (a stack started by this session lists them a moment after it is healthy).
        "connectors": set(request("GET", f"{settings.connect_url}/connectors")) - PIPELINE,
        "keyspaces": keyspaces,
        "topics": set(admin.list_topics(timeout=10).topics),
    }


@pytest.fixture(scope="session", autouse=True)
def leaves_no_trace(native_stack: StackSettings) -> Iterator[None]:
    """The suite leaves the shared stack as it found it: no slot, database, connector,
    keyspace or topic of its own remains (a running pipeline's are never touched)."""
    before = footprint(native_stack)
    yield
    after = footprint(native_stack)
    left = {kind: sorted(after[kind] - before[kind]) for kind in after}
    assert not any(left.values()), (
        f"the tests left these behind: { {k: v for k, v in left.items() if v} }"
    )


@pytest.fixture
def postgres_conninfo(native_stack: StackSettings) -> Iterator[str]:
    """A fresh, empty database owned by the pipeline role, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:10]}"
    owner = sql.Identifier(native_stack.postgres_user)
    with Postgres(native_stack).superuser_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), owner))
    yield native_stack.postgres_conninfo(dbname=name)
    with Postgres(native_stack).superuser_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def cassandra_session(native_stack: StackSettings):  # type: ignore[no-untyped-def]
    """A CQL session as the administrator: tests create and drop their own keyspaces
    (the pipeline's role may not)."""
    cluster, session = Cassandra(native_stack).admin_session()
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def cdc_chain(native_stack: StackSettings, cassandra_session, tmp_path_factory):  # type: ignore[no-untyped-def]
    """An isolated copy of the pipeline's CDC chain for one test module (see cdc_harness):
    its own database and keyspace with the pipeline's tables, the committed connector
    settings registered under their own names, and a running sink."""
    harness = CdcHarness(native_stack, work_dir=tmp_path_factory.mktemp("cdc"))
    harness.create_stores(cassandra_session)
    try:
        harness.register_source()
        harness.start_sink()
        yield harness
    finally:
        harness.teardown(cassandra_session)
