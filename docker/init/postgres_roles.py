"""Create (or update) the pipeline's three Postgres login roles, as the superuser `postgres`.

Run by the ``postgres-init`` service of docker-compose.yml before ``cap-stock init-db``
(which, as the tables' owner, creates the tables and the publication and grants the
other two roles what they need). The roles, their attributes and the statements are
:mod:`stack.roles`, the code the native stack runs in ``Postgres.after_healthy``
(docker-compose.yml mounts ``stack/`` for it); their names and defaults are
:class:`stack.settings.PostgresLogins`. Idempotent: every run re-sets each role's
password and attributes, so a password changed in .env is applied by the next
``docker compose up -d``.

Settings (environment only): POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER,
POSTGRES_CDC_USER, POSTGRES_READER_USER, their ``*_PASSWORD``, and
POSTGRES_ADMIN_PASSWORD (the superuser's), from the service's secrets file.

    $ python postgres_roles.py
    postgres-roles: cap_stock (created), cap_stock_cdc (created), cap_stock_reader (created);
      cap_stock owns cap_stock_db
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping

from stack.roles import POSTGRES_SUPERUSER, RolesError, apply_postgres_roles, postgres_roles
from stack.settings import (
    COMPOSE_FIX_HINT,
    PostgresInitLogins,
    PostgresLogins,
    SettingsError,
    load_from,
)

ATTEMPTS = 10
UPGRADE_HINT = "see docs/docker.md, 'Upgrading a volume'"


def settings(env: Mapping[str, str]) -> PostgresInitLogins:
    """This step's settings from its environment; RolesError names what is missing or wrong."""
    try:
        return load_from(PostgresInitLogins, env, COMPOSE_FIX_HINT)
    except SettingsError as err:
        raise RolesError(str(err)) from None


def roles(env: Mapping[str, str]) -> dict[str, tuple[str, bool]]:
    """Role -> (password, may replicate), from the environment; every password required."""
    try:
        return postgres_roles(load_from(PostgresLogins, env, COMPOSE_FIX_HINT))
    except SettingsError as err:
        raise RolesError(str(err)) from None


def connect(logins: PostgresInitLogins):  # type: ignore[no-untyped-def]
    """A connection as the superuser, retrying while the server starts."""
    import psycopg

    common = {
        "host": logins.postgres_host,
        "port": logins.postgres_port,
        "dbname": "postgres",
        "connect_timeout": 5,
        "autocommit": True,
        "application_name": "cap-stock-postgres-roles",
    }
    password = logins.postgres_admin_password.get_secret_value()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return psycopg.connect(user=POSTGRES_SUPERUSER, password=password, **common)
        except psycopg.OperationalError as err:
            if "password authentication failed" in str(err):
                raise RolesError(_refused(logins, common)) from None
            if attempt == ATTEMPTS:
                raise RolesError(f"cannot reach Postgres: {str(err).strip()}") from None
            time.sleep(3)
    raise AssertionError("unreachable")


def _refused(logins: PostgresInitLogins, common: dict) -> str:
    """Why the superuser login failed: an old volume, or a password changed by hand."""
    import psycopg

    owner = logins.postgres_user
    try:
        with psycopg.connect(
            user=owner, password=logins.postgres_password.get_secret_value(), **common
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
            f"is {owner}, which Postgres cannot demote, and it has no role "
            f"{POSTGRES_SUPERUSER}; {UPGRADE_HINT}"
        )
    return (
        f"cannot log in as {POSTGRES_SUPERUSER} with POSTGRES_ADMIN_PASSWORD from .env. Either "
        f"the volume predates the separate roles (its superuser is then {owner}; "
        f"{UPGRADE_HINT}), or {POSTGRES_SUPERUSER}'s password was changed without updating "
        ".env (docs/docker.md, 'Rotating passwords')"
    )


def main() -> int:
    try:
        roles(os.environ)  # missing passwords, clashing roles: before connecting
        logins = settings(os.environ)
        with connect(logins) as conn:
            done = apply_postgres_roles(conn, logins)
    except RolesError as err:
        for line in str(err).splitlines():
            print(f"postgres-roles: {line}", file=sys.stderr)
        return 1
    print(f"postgres-roles: {', '.join(done[:-1])}; {done[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
