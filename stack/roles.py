"""The login roles of both stores, least privilege: the one implementation the native
stack (``stack.services``) and compose's init jobs (``docker/init``) run.

Postgres, as the superuser ``postgres``: three login roles, none a superuser, none
allowed to create databases or roles or to bypass row security; only Debezium's may
replicate. The producer's role owns the database. Every run re-sets each role's password
and attributes, so a password changed in .env is applied by the next start.

| role (.env)             | attributes                     | used by                  |
|-------------------------|--------------------------------|--------------------------|
| POSTGRES_USER           | LOGIN, owns the database       | the producer, init-db    |
| POSTGRES_CDC_USER       | LOGIN REPLICATION              | Debezium                 |
| POSTGRES_READER_USER    | LOGIN                          | Grafana                  |

Cassandra: CASSANDRA_ADMIN_USER replaces the built-in ``cassandra``/``cassandra``
superuser (created through it on the first start, then the built-in one is dropped, so
the well-known login works nowhere), and creates CASSANDRA_USER (the sink's) and
CASSANDRA_READER_USER (Grafana's) or re-sets their passwords. The administrator's own
password is not re-set (it is what this logs in with).

Privileges on the tables and the keyspace are granted later, by their owners
(``cap-stock init-db``, ``cap-stock cassandra-setup``).

Drivers are imported where a server is talked to, so this loads wherever the producer
package does: natively, and in the producer image that runs compose's init jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from capstock.backoff import Backoff
from capstock.history.schema import role_statements

from stack.settings import CassandraLogins, PostgresLogins

POSTGRES_SUPERUSER = "postgres"
# Cassandra creates it on an empty node; CASSANDRA_ADMIN_USER replaces it.
CASSANDRA_BUILTIN_SUPERUSER = ("cassandra", "cassandra")
FIND_POSTGRES_ROLE = "SELECT 1 FROM pg_roles WHERE rolname = %s"
FIND_DATABASE = "SELECT 1 FROM pg_database WHERE datname = %s"
FIND_CASSANDRA_ROLE = "SELECT role FROM system_auth.roles WHERE role = %s"

# (user, password) -> (cluster, session); raises the driver's errors.
Login = Callable[[str, str], tuple[Any, Any]]


class RolesError(Exception):
    """Roles that cannot be created as configured, or a store refusing the administrator."""


# -- Postgres -----------------------------------------------------------------------------------


def postgres_roles(logins: PostgresLogins) -> dict[str, tuple[str, bool]]:
    """Role -> (password, may replicate); refuses a clash or the superuser's name."""
    s = logins
    wanted = (
        ("POSTGRES_USER", s.postgres_user, s.postgres_password, False),
        ("POSTGRES_CDC_USER", s.postgres_cdc_user, s.postgres_cdc_password, True),
        ("POSTGRES_READER_USER", s.postgres_reader_user, s.postgres_reader_password, False),
    )
    roles: dict[str, tuple[str, bool]] = {}
    for variable, role, password, replication in wanted:
        if role == POSTGRES_SUPERUSER or role in roles:
            raise RolesError(
                f"{variable}={role!r}: each role must be distinct and not {POSTGRES_SUPERUSER}"
            )
        roles[role] = (password.get_secret_value(), replication)
    return roles


def role_statement(exists: bool, role: str, password: str, replication: bool):  # type: ignore[no-untyped-def]
    """CREATE or ALTER ROLE with every attribute spelled out (identifiers and password quoted
    by the driver: utility statements take no bound parameters)."""
    from psycopg import sql

    return sql.SQL(
        "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS {} PASSWORD {}"
    ).format(
        sql.SQL("ALTER" if exists else "CREATE"),
        sql.Identifier(role),
        sql.SQL("REPLICATION" if replication else "NOREPLICATION"),
        sql.Literal(password),
    )


def database_statement(exists: bool, database: str, owner: str):  # type: ignore[no-untyped-def]
    """Create the database for its owner, or hand an existing one to it."""
    from psycopg import sql

    verb = "ALTER DATABASE {} OWNER TO {}" if exists else "CREATE DATABASE {} OWNER {}"
    return sql.SQL(verb).format(sql.Identifier(database), sql.Identifier(owner))


def apply_postgres_roles(conn, logins: PostgresLogins) -> list[str]:  # type: ignore[no-untyped-def]
    """On an autocommit superuser connection: create or update the roles, and make the
    producer's role own the database. Returns what was done, one note per role."""
    notes = []
    for role, (password, replication) in postgres_roles(logins).items():
        exists = bool(conn.execute(FIND_POSTGRES_ROLE, [role]).fetchone())
        conn.execute(role_statement(exists, role, password, replication))
        notes.append(f"{role} ({'updated' if exists else 'created'})")
    owner, database = logins.postgres_user, logins.postgres_db
    exists = bool(conn.execute(FIND_DATABASE, [database]).fetchone())
    conn.execute(database_statement(exists, database, owner))
    notes.append(f"{owner} owns {database}")
    return notes


# -- Cassandra ----------------------------------------------------------------------------------


def check_cassandra_roles(logins: CassandraLogins) -> None:
    """Refuse the built-in superuser as the administrator, and roles that clash."""
    builtin = CASSANDRA_BUILTIN_SUPERUSER[0]
    if logins.cassandra_admin_user == builtin:
        default = CassandraLogins.model_fields["cassandra_admin_user"].default
        raise RolesError(
            f"CASSANDRA_ADMIN_USER={builtin} is the built-in superuser, which is dropped: "
            f"set CASSANDRA_ADMIN_USER={default} in .env (see .env.example)"
        )
    names = {
        "admin": logins.cassandra_admin_user,
        "user": logins.cassandra_user,
        "reader": logins.cassandra_reader_user,
    }
    if len(set(names.values())) != len(names) or builtin in names.values():
        raise RolesError(f"the admin, sink and reader roles must be distinct: {names}")


def is_refused(err: BaseException) -> bool:
    """Cassandra answered and rejected the credentials (not: down, or still starting)."""
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    if isinstance(err, AuthenticationFailed):
        return True
    errors = list(err.errors.values()) if isinstance(err, NoHostAvailable) else []
    return bool(errors) and all(isinstance(e, AuthenticationFailed) for e in errors)


def create_admin(login: Login, logins: CassandraLogins) -> None:
    """Create the administrator through the built-in superuser (raises if it refuses)."""
    cluster, session = login(*CASSANDRA_BUILTIN_SUPERUSER)
    try:
        create, _ = role_statements(logins.cassandra_admin_user, superuser=True)
        session.execute(create, [logins.cassandra_admin_password.get_secret_value()], timeout=30)
    finally:
        cluster.shutdown()


def cassandra_admin_session(
    login: Login,
    logins: CassandraLogins,
    *,
    hint: str,
    say: Callable[[str], None],
    wait_seconds: float,
    retry_seconds: float = 3.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, Any]:
    """(cluster, session) as the administrator, created through the built-in superuser
    when it does not exist yet (the first start).

    Tries again (pauses from :class:`capstock.backoff.Backoff`, up to ``retry_seconds``)
    for ``wait_seconds`` while Cassandra is not
    reachable, while the built-in superuser does not exist yet (the compose image creates
    it some seconds after CQL opens), and while a just created administrator is not
    accepted yet; then raises :class:`RolesError` ending with ``hint``.
    """
    admin = logins.cassandra_admin_user
    password = logins.cassandra_admin_password.get_secret_value()
    deadline = clock() + wait_seconds
    pauses = Backoff(base=retry_seconds / 4, cap=retry_seconds, max_attempts=None)
    created = False
    while True:
        try:
            return login(admin, password)
        except Exception as err:
            if not is_refused(err):
                last = f"Cassandra not reachable ({err})"
            else:
                last = f"{admin} refused ({err})"
                if not created:
                    try:
                        create_admin(login, logins)
                    except Exception as builtin_err:
                        if not is_refused(builtin_err):
                            last = f"{last}; built-in login: {builtin_err}"
                    else:
                        created = True
                        say(f"created superuser {admin} through the built-in one")
                        continue
        if clock() > deadline:
            raise RolesError(
                f"cannot log in as {admin} with CASSANDRA_ADMIN_PASSWORD from .env, and the "
                f"built-in superuser is gone or refused ({last}). {hint}"
            )
        sleep(pauses.next_delay())


def apply_cassandra_roles(session, logins: CassandraLogins, timeout: float = 30.0) -> list[str]:  # type: ignore[no-untyped-def]
    """As the administrator: drop the built-in superuser, then create the sink's and the
    reader's roles or re-set their passwords. Returns what was done."""
    notes = []
    builtin = CASSANDRA_BUILTIN_SUPERUSER[0]
    if list(session.execute(FIND_CASSANDRA_ROLE, [builtin], timeout=timeout)):
        session.execute(f"DROP ROLE IF EXISTS {builtin}", timeout=timeout)
        notes.append(f"dropped the built-in superuser {builtin}")
    done = []
    for role, password in (
        (logins.cassandra_user, logins.cassandra_password),
        (logins.cassandra_reader_user, logins.cassandra_reader_password),
    ):
        create, alter = role_statements(role)
        existed = bool(list(session.execute(FIND_CASSANDRA_ROLE, [role], timeout=timeout)))
        session.execute(create, [password.get_secret_value()], timeout=timeout)
        session.execute(alter, [password.get_secret_value()], timeout=timeout)
        done.append(f"{role} ({'updated' if existed else 'created'})")
    return [*notes, ", ".join(done)]
