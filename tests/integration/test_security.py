"""Least privilege on the running native stack, tried the way an intruder would.

Each refusal is paired with the same action succeeding for the role that should have it,
so a test cannot pass because the server is simply unreachable.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import psycopg
import pytest
from capstock.history.connection import connect
from cassandra import Unauthorized
from cassandra.cluster import NoHostAvailable

from stack.roles import CASSANDRA_BUILTIN_SUPERUSER
from stack.services import Cassandra, Postgres, all_components
from stack.settings import StackSettings
from tests.support.cdc_harness import CdcHarness

STRANGER = "nobody"  # a local OS user with no business in the pipeline


@pytest.fixture(scope="module")
def cassandra(native_stack: StackSettings) -> Cassandra:
    return Cassandra(native_stack)


@pytest.fixture(scope="module")
def stores(native_stack: StackSettings, cassandra_session, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A database and a keyspace of the pipeline's tables with the grants init-db and
    cassandra-setup give, so the roles are tried on real tables on a fresh stack too."""
    harness = CdcHarness(native_stack, work_dir=tmp_path_factory.mktemp("security"))
    harness.create_stores(cassandra_session)
    try:
        yield harness
    finally:
        harness.teardown(cassandra_session)


def login_fails(port: int, user: str, password: str) -> str:
    with pytest.raises(NoHostAvailable) as refused:
        connect("127.0.0.1", user, password, port=port, connect_timeout=5)
    return str(refused.value)


# -- Cassandra -----------------------------------------------------------------------------


def test_the_builtin_cassandra_superuser_cannot_log_in(cassandra: Cassandra) -> None:
    why = login_fails(cassandra.port, *CASSANDRA_BUILTIN_SUPERUSER)
    assert "Provided username cassandra and/or password are incorrect" in why
    cluster, session = cassandra.admin_session()  # the replacement superuser can
    try:
        assert session.execute("SELECT release_version FROM system.local").one()
    finally:
        cluster.shutdown()


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE KEYSPACE intruder WITH replication = "
        "{{'class': 'SimpleStrategy', 'replication_factor': 1}}",
        "DROP KEYSPACE {keyspace}",
        "CREATE ROLE intruder WITH PASSWORD = 'x' AND LOGIN = true",
        "ALTER ROLE {admin} WITH PASSWORD = 'taken-over'",
        "SELECT salted_hash FROM system_auth.roles",
        "GRANT ALL PERMISSIONS ON ALL KEYSPACES TO {user}",
    ],
)
def test_the_pipeline_role_is_refused_outside_its_keyspace(
    cassandra: Cassandra, native_stack: StackSettings, stores: CdcHarness, statement: str
) -> None:
    s = native_stack
    cql = statement.format(
        keyspace=stores.name, admin=s.cassandra_admin_user, user=s.cassandra_user
    )
    cluster, session = cassandra.session(s.cassandra_user, s.cassandra_password.get_secret_value())
    try:
        with pytest.raises(Unauthorized):
            session.execute(cql, timeout=10)
    finally:
        cluster.shutdown()


def test_the_pipeline_role_writes_its_keyspace_and_the_reader_only_reads(
    cassandra: Cassandra, native_stack: StackSettings, stores: CdcHarness
) -> None:
    s = native_stack
    table = f"{stores.name}.latest_prices"
    key = "symbol = 'SECTESTUSDT' AND day = '2026-01-01'"
    row = (
        f"INSERT INTO {table} (symbol, day, ts, price) VALUES ('SECTESTUSDT', '2026-01-01', 0, 1.5)"
    )
    read = f"SELECT price FROM {table} WHERE {key}"
    cluster, session = cassandra.session(s.cassandra_user, s.cassandra_password.get_secret_value())
    try:
        session.execute(row, timeout=10)
        assert session.execute(read, timeout=10).one()
    finally:
        cluster.shutdown()
    cluster, session = cassandra.session(
        s.cassandra_reader_user, s.cassandra_reader_password.get_secret_value()
    )
    try:
        assert session.execute(read, timeout=10).one()
        with pytest.raises(Unauthorized):
            session.execute(f"DELETE FROM {table} WHERE {key}", timeout=10)
    finally:
        cluster.shutdown()
    cluster, session = cassandra.admin_session()
    try:
        session.execute(f"DELETE FROM {table} WHERE {key}", timeout=10)
    finally:
        cluster.shutdown()


def test_jmx_needs_its_login(cassandra: Cassandra) -> None:
    anonymous = cassandra.nodetool("version", login=False)
    assert anonymous.returncode != 0
    assert "Credentials required" in anonymous.stdout + anonymous.stderr
    assert cassandra.nodetool("version").returncode == 0


# -- Postgres ------------------------------------------------------------------------------


def as_stranger(*argv: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv as an unprivileged local user, with no password file or cached login."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PGCONNECT_TIMEOUT": "5"}
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        list(argv), user=STRANGER, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="module")
def psql(native_stack: StackSettings) -> str:
    if os.geteuid() != 0:
        pytest.fail("the security tests switch to a local OS user: run them as root (CI does)")
    pwd.getpwnam(STRANGER)
    return str(native_stack.postgres_bin / "psql")


def test_no_trust_line_in_the_rendered_pg_hba(native_stack: StackSettings) -> None:
    postgres = Postgres(native_stack)
    rules = [
        line.split()
        for line in (postgres.data / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert rules and all(rule[-1] != "trust" and "trust" not in rule for rule in rules)
    assert postgres.socket_dir.stat().st_mode & 0o077 == 0


def test_a_local_user_cannot_reach_the_private_socket(
    psql: str, native_stack: StackSettings
) -> None:
    socket_dir = str(Postgres(native_stack).socket_dir)
    port = str(native_stack.postgres_port)
    done = as_stranger(psql, "-h", socket_dir, "-p", port, "-U", "postgres", "-c", "SELECT 1")
    assert done.returncode != 0
    assert "Permission denied" in done.stderr or "No such file" in done.stderr, done.stderr


@pytest.mark.parametrize("role", ["postgres", "postgres_user", "postgres_cdc_user"])
def test_a_local_user_cannot_log_in_over_tcp_without_the_password(
    psql: str, native_stack: StackSettings, role: str
) -> None:
    user = role if role == "postgres" else getattr(native_stack, role)
    base = [psql, "-h", "127.0.0.1", "-p", str(native_stack.postgres_port), "-U", user]
    command = [*base, "-d", native_stack.postgres_db, "-w", "-c", "SELECT 1"]
    for password in (None, "postgres", user):
        done = as_stranger(*command, password=password)
        assert done.returncode != 0, (user, password)
        assert (
            "password authentication failed" in done.stderr or "no password supplied" in done.stderr
        ), done.stderr


def test_the_pipeline_role_logs_in_but_is_no_superuser(native_stack: StackSettings) -> None:
    with psycopg.connect(native_stack.postgres_conninfo(), autocommit=True) as conn:
        assert conn.execute("SELECT current_setting('is_superuser')").fetchone() == ("off",)
        for statement in (
            "COPY (SELECT 1) TO PROGRAM 'id'",
            "CREATE ROLE intruder LOGIN PASSWORD 'x'",
            "ALTER SYSTEM SET log_statement = 'none'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_reader_role_only_reads(native_stack: StackSettings, stores: CdcHarness) -> None:
    s = native_stack
    conninfo = stores.conninfo.replace(
        f"user={s.postgres_user} password={s.postgres_password.get_secret_value()}",
        f"user={s.postgres_reader_user} password={s.postgres_reader_password.get_secret_value()}",
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM latest_prices").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM latest_prices")


# -- processes and secrets ---------------------------------------------------------------


def test_no_service_runs_as_root(native_stack: StackSettings) -> None:
    for component in all_components(native_stack):
        pid = component.pid()
        assert pid, f"{component.name} is not running"
        uid = Path(f"/proc/{pid}").stat().st_uid
        assert uid != 0, f"{component.name} (pid {pid}) runs as root"


def test_the_env_file_is_private(native_stack: StackSettings) -> None:
    env_file = Path(__file__).resolve().parents[2] / ".env"
    assert env_file.stat().st_mode & 0o077 == 0
