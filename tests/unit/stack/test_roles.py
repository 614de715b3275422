"""stack/roles.py: the login roles both modes create, checked without a server."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable

from stack import roles
from stack.settings import CassandraLogins, PostgresLogins


def _postgres(**overrides: str) -> PostgresLogins:
    values = {
        "postgres_password": "pw-owner",
        "postgres_cdc_password": "pw-cdc",
        "postgres_reader_password": "pw-reader",
        **overrides,
    }
    return PostgresLogins.model_validate(values)


def _cassandra(**overrides: str) -> CassandraLogins:
    values = {
        "cassandra_admin_password": "pw-admin",
        "cassandra_password": "pw-sink",
        "cassandra_reader_password": "pw-reader",
        **overrides,
    }
    return CassandraLogins.model_validate(values)


# -- Postgres -----------------------------------------------------------------------------------


class FakeConnection:
    """Answers the existence checks from ``existing``; records every statement run."""

    def __init__(self, existing: set[str]) -> None:
        self.existing = existing
        self.statements: list[str] = []

    def execute(self, query: Any, params: list[str] | None = None) -> Any:
        if params is not None:
            found = (1,) if params[0] in self.existing else None
            return type("Row", (), {"fetchone": lambda _self: found})()
        self.statements.append(query.as_string(None))
        return None


def test_only_debezium_replicates_and_each_role_has_its_password() -> None:
    assert roles.postgres_roles(_postgres()) == {
        "cap_stock": ("pw-owner", False),
        "cap_stock_cdc": ("pw-cdc", True),
        "cap_stock_reader": ("pw-reader", False),
    }


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"postgres_reader_user": "cap_stock"}, "POSTGRES_READER_USER"),
        ({"postgres_cdc_user": "postgres"}, "POSTGRES_CDC_USER"),
    ],
)
def test_a_clashing_or_superuser_role_is_refused(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(roles.RolesError, match=f"^{variable}=.*distinct and not postgres"):
        roles.postgres_roles(_postgres(**overrides))


def test_every_role_is_created_with_least_privilege_and_the_owner_gets_the_database() -> None:
    conn = FakeConnection(existing=set())
    notes = roles.apply_postgres_roles(conn, _postgres())
    assert notes == [
        "cap_stock (created)",
        "cap_stock_cdc (created)",
        "cap_stock_reader (created)",
        "cap_stock owns cap_stock_db",
    ]
    *created, database = conn.statements
    for statement in created:
        assert statement.startswith("CREATE ROLE ")
        assert "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS" in statement
    assert [s.count(" REPLICATION ") for s in created] == [0, 1, 0]
    assert database == 'CREATE DATABASE "cap_stock_db" OWNER "cap_stock"'


def test_a_second_run_alters_what_exists() -> None:
    conn = FakeConnection(existing={"cap_stock", "cap_stock_cdc", "cap_stock_reader", "db"})
    notes = roles.apply_postgres_roles(conn, _postgres(postgres_db="db"))
    assert notes[:3] == [
        "cap_stock (updated)",
        "cap_stock_cdc (updated)",
        "cap_stock_reader (updated)",
    ]
    assert all(s.startswith("ALTER ROLE ") for s in conn.statements[:3])
    assert "PASSWORD 'pw-cdc'" in conn.statements[1]
    assert conn.statements[3] == 'ALTER DATABASE "db" OWNER TO "cap_stock"'


# -- Cassandra ----------------------------------------------------------------------------------


def _refused() -> NoHostAvailable:
    return NoHostAvailable("refused", {"127.0.0.1:9042": AuthenticationFailed("Bad credentials")})


class FakeSession:
    def __init__(self, roles_present: set[str] | None = None) -> None:
        self.roles_present = roles_present or set()
        self.executed: list[tuple[str, Any]] = []

    def execute(self, cql: str, params: Any = None, timeout: float | None = None) -> list:
        self.executed.append((cql, params))
        if cql == roles.FIND_CASSANDRA_ROLE:
            return [params[0]] if params[0] in self.roles_present else []
        return []


class FakeCluster:
    def __init__(self) -> None:
        self.shut = False

    def shutdown(self) -> None:
        self.shut = True


class FakeCassandra:
    """A node whose accepted logins change as the script goes: ``accepts`` per attempt."""

    def __init__(self, accepts: list[set[str]], unreachable: bool = False) -> None:
        self.accepts = accepts
        self.unreachable = unreachable
        self.attempts: list[str] = []
        self.builtin_session = FakeSession()

    def login(self, user: str, password: str) -> tuple[FakeCluster, FakeSession]:
        self.attempts.append(user)
        if self.unreachable:
            raise NoHostAvailable("down", {"127.0.0.1:9042": ConnectionRefusedError()})
        now = self.accepts[min(len(self.attempts), len(self.accepts)) - 1]
        if user not in now:
            raise _refused()
        return FakeCluster(), self.builtin_session if user == "cassandra" else FakeSession()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _admin_session(node: FakeCassandra, said: list[str], clock: Clock | None = None) -> Any:
    clock = clock or Clock()
    return roles.cassandra_admin_session(
        node.login,
        _cassandra(),
        hint="HINT",
        say=said.append,
        wait_seconds=10,
        retry_seconds=3,
        clock=clock,
        sleep=clock.sleep,
    )


def test_an_existing_administrator_just_logs_in() -> None:
    node, said = FakeCassandra(accepts=[{"cap_stock_admin"}]), []
    _admin_session(node, said)
    assert node.attempts == ["cap_stock_admin"] and said == []


def test_the_first_start_creates_the_administrator_through_the_builtin_one() -> None:
    node = FakeCassandra(accepts=[{"cassandra"}, {"cassandra"}, {"cap_stock_admin"}])
    said: list[str] = []
    _admin_session(node, said)
    assert node.attempts == ["cap_stock_admin", "cassandra", "cap_stock_admin"]
    (create, params), *_ = node.builtin_session.executed
    assert create.startswith("CREATE ROLE IF NOT EXISTS cap_stock_admin WITH PASSWORD = %s")
    assert "SUPERUSER = true" in create and params == ["pw-admin"]
    assert said == ["created superuser cap_stock_admin through the built-in one"]


def test_it_waits_for_the_builtin_superuser_to_appear() -> None:
    node = FakeCassandra(accepts=[set(), set(), {"cassandra"}, {"cassandra"}, {"cap_stock_admin"}])
    clock = Clock()
    _admin_session(node, [], clock)
    assert node.attempts.count("cassandra") == 2
    assert 0 < clock.now <= 3  # one pause, from the backoff, at most retry_seconds


def test_both_logins_refused_gives_up_with_the_hint_and_no_password() -> None:
    node, clock = FakeCassandra(accepts=[set()]), Clock()
    with pytest.raises(roles.RolesError) as err:
        _admin_session(node, [], clock)
    message = str(err.value)
    assert message.startswith("cannot log in as cap_stock_admin with CASSANDRA_ADMIN_PASSWORD")
    assert message.endswith("HINT") and "pw-admin" not in message
    assert clock.now > 10


def test_an_unreachable_node_is_not_taken_for_a_refusal() -> None:
    node = FakeCassandra(accepts=[set()], unreachable=True)
    with pytest.raises(roles.RolesError, match="Cassandra not reachable"):
        _admin_session(node, [])
    assert "cassandra" not in node.attempts, "no built-in login while the node is away"


def test_the_builtin_superuser_is_dropped_and_the_roles_get_their_passwords() -> None:
    session = FakeSession(roles_present={"cassandra", "cap_stock_reader"})
    notes = roles.apply_cassandra_roles(session, _cassandra())
    assert notes == [
        "dropped the built-in superuser cassandra",
        "cap_stock (created), cap_stock_reader (updated)",
    ]
    statements = [(cql, params) for cql, params in session.executed if "SELECT" not in cql]
    assert statements[0] == ("DROP ROLE IF EXISTS cassandra", None)
    bound = {params[0] for cql, params in statements[1:]}
    assert bound == {"pw-sink", "pw-reader"}
    assert all("%s" in cql for cql, _ in statements[1:]), "passwords are bound, not formatted"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"cassandra_admin_user": "cassandra"}, "built-in superuser"),
        ({"cassandra_reader_user": "cap_stock"}, "distinct"),
        ({"cassandra_user": "cassandra"}, "distinct"),
    ],
)
def test_cassandra_roles_are_distinct_and_never_the_builtin_one(
    overrides: dict[str, str], why: str
) -> None:
    with pytest.raises(roles.RolesError, match=why):
        roles.check_cassandra_roles(_cassandra(**overrides))


def test_a_refusal_is_told_from_other_errors() -> None:
    assert roles.is_refused(_refused())
    assert roles.is_refused(AuthenticationFailed("Bad credentials"))
    assert not roles.is_refused(NoHostAvailable("down", {"h": OSError("refused")}))
    assert not roles.is_refused(NoHostAvailable("none", {}))
