"""Create (or update) the pipeline's Cassandra login role, as the superuser.

Run by the ``cassandra-init`` service of docker-compose.yml before
``cap-stock cassandra-setup``; the native stack does the same in
``stack.components.Cassandra.after_healthy``. Idempotent: a second run only
re-sets the password, so changing ``CASSANDRA_PASSWORD`` in ``.env`` and running
``docker compose up -d`` again keeps Cassandra and the connectors in step.

Settings (environment): CASSANDRA_HOST, CASSANDRA_PORT, CASSANDRA_DATACENTER,
CASSANDRA_USER / CASSANDRA_PASSWORD (the role to create) and
CASSANDRA_ADMIN_USER / CASSANDRA_ADMIN_PASSWORD (an existing superuser; the
official image starts with cassandra/cassandra).

    $ python cassandra_role.py
    cassandra-role: role cap_stock ready (created)
"""

from __future__ import annotations

import os
import sys
import time

from capstock.cassandra_schema import role_statements

ATTEMPTS = 10


def main() -> int:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster, NoHostAvailable
    from cassandra.policies import DCAwareRoundRobinPolicy

    env = os.environ.get
    role = env("CASSANDRA_USER", "cap_stock")
    password = env("CASSANDRA_PASSWORD", "cap_stock")
    admin = env("CASSANDRA_ADMIN_USER", "cassandra")
    try:
        create, alter = role_statements(role)
    except ValueError as err:
        print(f"cassandra-role: {err}", file=sys.stderr)
        return 2
    if role == admin:
        print(f"cassandra-role: CASSANDRA_USER is the superuser {admin}; nothing to create")
        return 0
    cluster = Cluster(
        [h.strip() for h in env("CASSANDRA_HOST", "cassandra").split(",")],
        port=int(env("CASSANDRA_PORT", "9042")),
        auth_provider=PlainTextAuthProvider(admin, env("CASSANDRA_ADMIN_PASSWORD", "cassandra")),
        load_balancing_policy=DCAwareRoundRobinPolicy(
            local_dc=env("CASSANDRA_DATACENTER", "datacenter1")
        ),
        protocol_version=5,
    )
    try:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                session = cluster.connect()
                break
            except NoHostAvailable as err:
                if attempt == ATTEMPTS:
                    print(f"cassandra-role: cannot log in as {admin}: {err}", file=sys.stderr)
                    return 1
                time.sleep(3)
        existed = bool(
            list(session.execute("SELECT role FROM system_auth.roles WHERE role = %s", [role]))
        )
        session.execute(create, [password])
        session.execute(alter, [password])
        print(f"cassandra-role: role {role} ready ({'updated' if existed else 'created'})")
        return 0
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
