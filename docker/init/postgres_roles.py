"""Create (or update) the pipeline's three Postgres login roles, as the superuser `postgres`.

Run by the ``postgres-init`` service of docker-compose.yml before ``cap-stock init-db``
(which, as the tables' owner, creates the tables and the publication and grants the
other two roles what they need). The native stack does the same in
``stack.components.Postgres.after_healthy``. Idempotent: every run re-sets each role's
password and attributes, so a password changed in .env is applied by the next
``docker compose up -d``.

| role (.env)             | attributes                     | used by                  |
|-------------------------|--------------------------------|--------------------------|
| POSTGRES_USER           | LOGIN, owns the database       | the producer, init-db    |
| POSTGRES_CDC_USER       | LOGIN REPLICATION              | Debezium                 |
| POSTGRES_READER_USER    | LOGIN                          | Grafana                  |

None is a superuser, none may create databases or roles.

Settings (environment): POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, the three
``*_USER`` / ``*_PASSWORD`` pairs above, and POSTGRES_ADMIN_PASSWORD (the superuser's).

    $ python postgres_roles.py
    postgres-roles: cap_stock (created), cap_stock_cdc (created), cap_stock_reader (created);
      cap_stock owns cap_stock_db
"""

from __future__ import annotations

import os
import sys
import time

SUPERUSER = "postgres"
ATTEMPTS = 10
UPGRADE_HINT = "see docs/docker.md, 'Upgrading a volume'"


class RolesError(Exception):
    pass


def roles(env: dict[str, str]) -> dict[str, tuple[str, bool]]:
    """Role -> (password, may replicate), from the environment; every value required."""
    wanted = {
        ("POSTGRES_USER", "cap_stock"): False,
        ("POSTGRES_CDC_USER", "cap_stock_cdc"): True,
        ("POSTGRES_READER_USER", "cap_stock_reader"): False,
    }
    result: dict[str, tuple[str, bool]] = {}
    for (variable, default), replication in wanted.items():
        role = env.get(variable) or default
        password = env.get(variable.replace("_USER", "_PASSWORD"), "")
        if not password:
            raise RolesError(f"{variable.replace('_USER', '_PASSWORD')} is empty")
        if role == SUPERUSER or role in result:
            raise RolesError(f"{variable}={role!r}: each role must be distinct and not {SUPERUSER}")
        result[role] = (password, replication)
    return result


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


def connect(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """A connection as the superuser, retrying while the server starts."""
    import psycopg

    common = {
        "host": env.get("POSTGRES_HOST", "postgres"),
        "port": int(env.get("POSTGRES_PORT", "5432")),
        "dbname": "postgres",
        "connect_timeout": 5,
        "autocommit": True,
        "application_name": "cap-stock-postgres-roles",
    }
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return psycopg.connect(
                user=SUPERUSER, password=env.get("POSTGRES_ADMIN_PASSWORD", ""), **common
            )
        except psycopg.OperationalError as err:
            if "password authentication failed" in str(err):
                raise RolesError(_refused(env, common)) from None
            if attempt == ATTEMPTS:
                raise RolesError(f"cannot reach Postgres: {str(err).strip()}") from None
            time.sleep(3)
    raise AssertionError("unreachable")


def _refused(env: dict[str, str], common: dict) -> str:
    """Why the superuser login failed: an old volume, or a password changed by hand."""
    import psycopg

    owner = env.get("POSTGRES_USER") or "cap_stock"
    try:
        with psycopg.connect(
            user=owner, password=env.get("POSTGRES_PASSWORD", ""), **common
        ) as conn:
            row = conn.execute(
                "SELECT rolsuper, oid = 10 FROM pg_roles WHERE rolname = %s", [owner]
            )
            superuser, bootstrap = row.fetchone() or (False, False)
    except psycopg.Error:
        superuser = bootstrap = False
    if superuser and bootstrap:
        return (
            f"this data volume was created before cap-stock had separate roles: its superuser "
            f"is {owner}, which Postgres cannot demote, and it has no role {SUPERUSER}; "
            f"{UPGRADE_HINT}"
        )
    return (
        f"cannot log in as {SUPERUSER} with POSTGRES_ADMIN_PASSWORD from .env. Either the "
        f"volume predates the separate roles (its superuser is then {owner}; {UPGRADE_HINT}), "
        f"or {SUPERUSER}'s password was changed without updating .env (docs/docker.md, "
        "'Rotating passwords')"
    )


def apply(conn, env: dict[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Create or update the roles, and make the producer's role own the database."""
    from psycopg import sql

    done = []
    for role, (password, replication) in roles(env).items():
        exists = bool(conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone())
        conn.execute(role_statement(exists, role, password, replication))
        done.append(f"{role} ({'updated' if exists else 'created'})")
    owner = env.get("POSTGRES_USER") or "cap_stock"
    database = env.get("POSTGRES_DB") or "cap_stock_db"
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
    verb = "ALTER DATABASE {} OWNER TO {}" if exists else "CREATE DATABASE {} OWNER {}"
    conn.execute(sql.SQL(verb).format(sql.Identifier(database), sql.Identifier(owner)))
    done.append(f"{owner} owns {database}")
    return done


def main() -> int:
    env = dict(os.environ)
    try:
        roles(env)
        with connect(env) as conn:
            done = apply(conn, env)
    except RolesError as err:
        print(f"postgres-roles: {err}", file=sys.stderr)
        return 1
    print(f"postgres-roles: {', '.join(done[:-1])}; {done[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
