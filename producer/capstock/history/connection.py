"""The one way to open a Cassandra session: the schema set-up, the Python sink, the native
runner and compose's init job all connect through :func:`connect`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from capstock.config import CASSANDRA_DATACENTER, CASSANDRA_PORT

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

PROTOCOL_VERSION = 5  # Cassandra 5's native protocol; no downgrade round trip
CONNECT_TIMEOUT_S = 10.0
# The driver's default reconnection waits 1, 2, 4 ... up to 600 s for a node it saw go
# down, so after a minute's outage a long-lived session noticed the node back only a
# minute later. Retrying every 2 s at most lets it resume within seconds;
# max_attempts=None because the default gives up on a node after 64 attempts.
RECONNECT_BASE_S = 0.5
RECONNECT_MAX_S = 2.0


def contact_points(hosts: str | Sequence[str]) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` → ``["a", "b"]``."""
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    return [h.strip() for h in hosts if h.strip()]


def connect(
    hosts: str | Sequence[str],
    user: str | None,
    password: str | None,
    *,
    port: int = CASSANDRA_PORT,
    datacenter: str = CASSANDRA_DATACENTER,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> tuple[Cluster, Session]:
    """(cluster, session) logged in as ``user`` (no login when None); the caller shuts
    the cluster down. A failed attempt shuts it down itself (its threads would outlive
    it) and raises the driver's error (``NoHostAvailable``, ``AuthenticationFailed``)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy

    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=datacenter))
    cluster = Cluster(
        contact_points(hosts),
        port=port,
        auth_provider=PlainTextAuthProvider(user, password or "") if user else None,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=PROTOCOL_VERSION,
        connect_timeout=connect_timeout,
        reconnection_policy=ExponentialReconnectionPolicy(
            base_delay=RECONNECT_BASE_S, max_delay=RECONNECT_MAX_S, max_attempts=None
        ),
    )
    try:
        return cluster, cluster.connect()
    except Exception:
        cluster.shutdown()
        raise
