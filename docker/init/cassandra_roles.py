"""Replace Cassandra's built-in superuser and create (or update) the pipeline's login roles.

Run by the ``cassandra-init`` service of docker-compose.yml before ``cap-stock
cassandra-setup`` (which, as the administrator, creates the keyspace and tables and
grants the two roles below exactly their permissions on it). The native stack does the
same in ``stack.components.Cassandra.after_healthy``.

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

    $ python cassandra_roles.py
    cassandra-roles: created superuser cap_stock_admin through the built-in one
    cassandra-roles: dropped the built-in superuser cassandra
    cassandra-roles: cap_stock (created), cap_stock_reader (created)
"""

from __future__ import annotations

import os
import sys
import time

from capstock.cassandra_schema import role_statements

BUILTIN = ("cassandra", "cassandra")
# First start: CQL opens, then the built-in superuser appears about 10 s later.
WAIT_SECONDS = 90
RETRY_SECONDS = 3


class RolesError(Exception):
    pass


class Refused(Exception):
    """Cassandra answered and rejected the login."""


def settings(env: dict[str, str]) -> dict[str, str]:
    """The roles and passwords this step needs; refuses incomplete or clashing ones."""
    values = {
        "admin": env.get("CASSANDRA_ADMIN_USER") or "cap_stock_admin",
        "user": env.get("CASSANDRA_USER") or "cap_stock",
        "reader": env.get("CASSANDRA_READER_USER") or "cap_stock_reader",
    }
    if values["admin"] == BUILTIN[0]:
        raise RolesError(
            f"CASSANDRA_ADMIN_USER={BUILTIN[0]} is the built-in superuser, which this step "
            "drops: set CASSANDRA_ADMIN_USER=cap_stock_admin in .env (see .env.example)"
        )
    if len(set(values.values())) != 3 or BUILTIN[0] in values.values():
        raise RolesError(f"the admin, sink and reader roles must be distinct: {values}")
    for name in ("CASSANDRA_ADMIN_PASSWORD", "CASSANDRA_PASSWORD", "CASSANDRA_READER_PASSWORD"):
        if not env.get(name):
            raise RolesError(f"{name} is empty")
        values[name] = env[name]
    return values


def login(env: dict[str, str], user: str, password: str):  # type: ignore[no-untyped-def]
    """(cluster, session) as user; Refused if Cassandra rejects the credentials."""
    from cassandra import AuthenticationFailed
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable
    from cassandra.policies import DCAwareRoundRobinPolicy

    cluster = Cluster(
        [h.strip() for h in env.get("CASSANDRA_HOST", "cassandra").split(",")],
        port=int(env.get("CASSANDRA_PORT", "9042")),
        auth_provider=PlainTextAuthProvider(user, password),
        load_balancing_policy=DCAwareRoundRobinPolicy(
            local_dc=env.get("CASSANDRA_DATACENTER", "datacenter1")
        ),
        protocol_version=5,
        connect_timeout=10,
    )
    try:
        return cluster, cluster.connect()
    except NoHostAvailable as err:
        cluster.shutdown()
        errors = list(err.errors.values())
        if errors and all(isinstance(e, AuthenticationFailed) for e in errors):
            raise Refused(str(errors[0])) from None
        raise
    except Exception:
        cluster.shutdown()
        raise


def admin_session(env: dict[str, str], values: dict[str, str]):  # type: ignore[no-untyped-def]
    """Log in as the administrator, creating it through the built-in superuser if needed."""
    admin, password = values["admin"], values["CASSANDRA_ADMIN_PASSWORD"]
    deadline = time.monotonic() + WAIT_SECONDS
    last = ""
    while True:
        try:
            return login(env, admin, password)
        except Refused as err:
            last = f"{admin} refused ({err})"
            try:
                cluster, session = login(env, *BUILTIN)
            except Refused:
                pass  # not there yet (first start), or dropped already: wait, then give up
            except Exception as err:
                last = f"{last}; built-in login: {err}"
            else:
                try:
                    create, _ = role_statements(admin, superuser=True)
                    session.execute(create, [password], timeout=30)
                finally:
                    cluster.shutdown()
                print(f"cassandra-roles: created superuser {admin} through the built-in one")
                continue
        except Exception as err:
            last = f"Cassandra not reachable ({err})"
        if time.monotonic() > deadline:
            raise RolesError(
                f"cannot log in as {admin} with CASSANDRA_ADMIN_PASSWORD from .env, and the "
                f"built-in superuser is gone or refused ({last}). Put the administrator's "
                "password in .env, or see docs/docker.md, 'Upgrading a volume'"
            )
        time.sleep(RETRY_SECONDS)


def apply(session, values: dict[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Drop the built-in superuser; create or update the sink's and the reader's roles."""
    notes = []
    builtin = list(
        session.execute("SELECT role FROM system_auth.roles WHERE role = %s", [BUILTIN[0]])
    )
    if builtin:
        session.execute(f"DROP ROLE IF EXISTS {BUILTIN[0]}", timeout=30)
        notes.append(f"dropped the built-in superuser {BUILTIN[0]}")
    done = []
    for role, password in (
        (values["user"], values["CASSANDRA_PASSWORD"]),
        (values["reader"], values["CASSANDRA_READER_PASSWORD"]),
    ):
        create, alter = role_statements(role)
        existed = bool(
            list(session.execute("SELECT role FROM system_auth.roles WHERE role = %s", [role]))
        )
        session.execute(create, [password], timeout=30)
        session.execute(alter, [password], timeout=30)
        done.append(f"{role} ({'updated' if existed else 'created'})")
    return [*notes, ", ".join(done)]


def main() -> int:
    env = dict(os.environ)
    try:
        values = settings(env)
        cluster, session = admin_session(env, values)
        try:
            notes = apply(session, values)
        finally:
            cluster.shutdown()
    except (RolesError, ValueError) as err:
        print(f"cassandra-roles: {err}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"cassandra-roles: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
