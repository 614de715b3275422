"""`cap-stock cassandra-setup` and `cap-stock connectors`: the Cassandra side of the pipeline.

$ cap-stock cassandra-setup           # keyspace + tables, idempotent
$ cap-stock connectors --check        # is register_cassandra.json current? (exit 1 if not)
$ cap-stock connectors --write        # regenerate it from capstock.tables
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from capstock.backoff import Backoff, Sleeper
from capstock.cassandra_schema import KeyspaceOptions, access_cql, apply_schema
from capstock.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Command, register, setup_logging
from capstock.config import _COMMON, LogSettings, load
from capstock.connectors import SINK_CONFIG, sink_config_is_current, write_sink_config

log = logging.getLogger("capstock.cassandra")

CONNECT_ATTEMPTS = 6
CONNECT_BACKOFF_BASE_SECONDS = 2.0
CONNECT_BACKOFF_CAP_SECONDS = 10.0
"""Waits between connection attempts while Cassandra starts (with jitter, see Backoff)."""


class CassandraSettings(BaseSettings):
    """Where the history lives and who may do what there.

    The schema is applied as the administrator (CASSANDRA_ADMIN_*), which then grants
    the sink's role (CASSANDRA_USER) and Grafana's (CASSANDRA_READER_USER) exactly
    what they need on the keyspace. The stack creates these roles (see .env.example).
    """

    model_config = SettingsConfigDict(**_COMMON, env_prefix="CASSANDRA_")

    host: str = Field("127.0.0.1", min_length=1, description="contact point(s), comma-separated")
    port: int = Field(9042, ge=1, le=65535)
    admin_user: str = Field("cap_stock_admin", min_length=1)
    admin_password: SecretStr = Field(description="generated into .env on the first start")
    user: str = Field("cap_stock", min_length=1)
    reader_user: str = Field("cap_stock_reader", min_length=1)
    datacenter: str = Field("datacenter1", min_length=1, description="local datacenter name")
    keyspace: str = Field("cap_stock", pattern=r"^[a-z_][a-z0-9_]*$")
    replication_strategy: Literal["SimpleStrategy", "NetworkTopologyStrategy"] = "SimpleStrategy"
    replication_factor: int = Field(1, ge=1, le=10)

    def keyspace_options(self) -> KeyspaceOptions:
        return KeyspaceOptions(
            name=self.keyspace,
            strategy=self.replication_strategy,
            replication_factor=self.replication_factor,
            datacenter=self.datacenter,
        )

    def grants(self) -> list[str]:
        return access_cql(self.keyspace, self.user, self.reader_user)

    def session(self, sleeper: Sleeper | None = None):  # type: ignore[no-untyped-def]
        """(cluster, session) as the administrator, retrying while Cassandra starts:
        :data:`CONNECT_ATTEMPTS` tries, waits from :class:`capstock.backoff.Backoff`."""
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import Cluster, NoHostAvailable
        from cassandra.policies import DCAwareRoundRobinPolicy

        cluster = Cluster(
            [h.strip() for h in self.host.split(",")],
            port=self.port,
            auth_provider=PlainTextAuthProvider(
                self.admin_user, self.admin_password.get_secret_value()
            ),
            load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=self.datacenter),
            protocol_version=5,
            connect_timeout=10,
        )
        sleeper = sleeper or Sleeper()
        backoff = Backoff(
            base=CONNECT_BACKOFF_BASE_SECONDS,
            cap=CONNECT_BACKOFF_CAP_SECONDS,
            max_attempts=CONNECT_ATTEMPTS - 1,
        )
        while True:
            try:
                return cluster, cluster.connect()
            except NoHostAvailable as err:
                if backoff.exhausted:
                    cluster.shutdown()
                    raise
                delay = backoff.next_delay()
                log.warning(
                    "cassandra not reachable at %s:%s (%s); retrying in %.1fs",
                    self.host,
                    self.port,
                    err,
                    delay,
                )
                sleeper.sleep(delay)


def _cmd_cassandra_setup(_args: argparse.Namespace) -> int:
    setup_logging(load(LogSettings).level)
    settings = load(CassandraSettings)
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    try:
        cluster, session = settings.session()
    except Exception as err:
        print(
            f"cap-stock: cannot reach Cassandra at {settings.host}:{settings.port} as "
            f"{settings.admin_user}: {err}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        apply_schema(session, settings.keyspace_options())
        for statement in settings.grants():
            session.execute(statement, timeout=30)
        log.info(
            "cassandra-setup: %s may read and write %s, %s may read it",
            settings.user,
            settings.keyspace,
            settings.reader_user,
        )
    finally:
        cluster.shutdown()
    return EXIT_OK


def _connectors_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    group.add_argument("--write", action="store_true", help="regenerate the file")


def _cmd_connectors(args: argparse.Namespace) -> int:
    if args.write:
        print(f"wrote {write_sink_config()}")
        return EXIT_OK
    if sink_config_is_current():
        print(f"{SINK_CONFIG.name} is current")
        return EXIT_OK
    print(
        f"{SINK_CONFIG.name} does not match capstock/tables.py; "
        "regenerate it with: cap-stock connectors --write",
        file=sys.stderr,
    )
    return EXIT_CONFIG if not SINK_CONFIG.exists() else EXIT_FAILED


register(
    Command(
        "cassandra-setup",
        "create the Cassandra keyspace and tables if they do not exist",
        _cmd_cassandra_setup,
        description="Example: CASSANDRA_HOST=127.0.0.1 cap-stock cassandra-setup",
    )
)
register(
    Command(
        "connectors",
        "check or regenerate register_cassandra.json from the table declarations",
        _cmd_connectors,
        add_arguments=_connectors_arguments,
        description="Example: cap-stock connectors --write",
    )
)
