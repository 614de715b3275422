"""Replace Cassandra's built-in superuser and create (or update) the pipeline's login roles.

Run by the ``cassandra-init`` service of docker-compose.yml before ``cap-stock
cassandra-setup`` (which, as the administrator, creates the keyspace and tables and
grants the two roles below exactly their permissions on it). The steps are
:mod:`stack.roles`, the code the native stack runs in ``Cassandra.after_healthy``
(docker-compose.yml mounts ``stack/`` for it); the role names and their defaults are
:class:`stack.settings.CassandraLogins`.

1. Log in as CASSANDRA_ADMIN_USER. On the first start that role does not exist yet:
   log in as the built-in ``cassandra``/``cassandra`` (the image creates it some seconds
   after CQL opens, hence the wait) and create the administrator with
   CASSANDRA_ADMIN_PASSWORD.
2. As the administrator, drop the built-in ``cassandra`` role, so the well-known login
   works nowhere.
3. Create CASSANDRA_USER (the sink's) and CASSANDRA_READER_USER (Grafana's), or re-set
   their passwords: changing one in .env takes effect on the next ``docker compose up -d``.

The administrator's own password is not re-set here (it is what this step logs in
with); docs/docker.md, 'Rotating passwords', says how to change it.

Settings (environment only): CASSANDRA_HOST (comma-separated), CASSANDRA_PORT,
CASSANDRA_DATACENTER, the three ``*_USER`` and their ``*_PASSWORD``.

    $ python cassandra_roles.py
    cassandra-roles: created superuser cap_stock_admin through the built-in one
    cassandra-roles: dropped the built-in superuser cassandra
    cassandra-roles: cap_stock (created), cap_stock_reader (created)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from stack.roles import (
    RolesError,
    apply_cassandra_roles,
    cassandra_admin_session,
    check_cassandra_roles,
)
from stack.settings import COMPOSE_FIX_HINT, CassandraLogins, SettingsError, load_from

# First start: CQL opens, then the built-in superuser appears about 10 s later.
WAIT_SECONDS = 90
ADMIN_HINT = "Put the administrator's password in .env, or see docs/docker.md, 'Upgrading a volume'"


def settings(env: Mapping[str, str]) -> CassandraLogins:
    """The roles and passwords this step needs; refuses incomplete or clashing ones."""
    try:
        logins = load_from(CassandraLogins, env, COMPOSE_FIX_HINT)
    except SettingsError as err:
        raise RolesError(str(err)) from None
    check_cassandra_roles(logins)
    return logins


def login(logins: CassandraLogins, user: str, password: str):  # type: ignore[no-untyped-def]
    """(cluster, session) as user, through the compose network's contact points."""
    from capstock.history.connection import connect

    return connect(
        logins.cassandra_host,
        user,
        password,
        port=logins.cassandra_port,
        datacenter=logins.cassandra_datacenter,
    )


def main() -> int:
    def say(note: str) -> None:
        print(f"cassandra-roles: {note}", flush=True)

    try:
        logins = settings(os.environ)
        cluster, session = cassandra_admin_session(
            lambda user, password: login(logins, user, password),
            logins,
            hint=ADMIN_HINT,
            say=say,
            wait_seconds=WAIT_SECONDS,
        )
        try:
            notes = apply_cassandra_roles(session, logins)
        finally:
            cluster.shutdown()
    except (RolesError, ValueError) as err:
        for line in str(err).splitlines():
            print(f"cassandra-roles: {line}", file=sys.stderr)
        return 1
    for note in notes:
        say(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
