"""`cap-stock cassandra-setup` and `cap-stock connectors`: the Cassandra side of the pipeline.

$ cap-stock cassandra-setup           # keyspace + tables, idempotent
$ cap-stock connectors --check        # is register_cassandra.json current? (exit 1 if not)
$ cap-stock connectors --write        # regenerate it from capstock.model.tables
"""

from __future__ import annotations

import argparse
import logging
import sys

from capstock.backoff import Backoff, Sleeper
from capstock.cdc.connectors import SINK_CONFIG, sink_config_is_current, write_sink_config
from capstock.commands import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Command, setup_logging
from capstock.config import CassandraSettings, LogSettings, load
from capstock.history.connection import connect
from capstock.history.schema import KeyspaceOptions, access_cql, apply_schema

log = logging.getLogger("capstock.cassandra")

CONNECT_ATTEMPTS = 6
CONNECT_BACKOFF_BASE_SECONDS = 2.0
CONNECT_BACKOFF_CAP_SECONDS = 10.0
"""Waits between connection attempts while Cassandra starts (with jitter, see Backoff)."""


def keyspace_options(settings: CassandraSettings) -> KeyspaceOptions:
    return KeyspaceOptions(
        name=settings.keyspace,
        strategy=settings.replication_strategy,
        replication_factor=settings.replication_factor,
        datacenter=settings.datacenter,
    )


def grants(settings: CassandraSettings) -> list[str]:
    return access_cql(settings.keyspace, settings.user, settings.reader_user)


def admin_session(settings: CassandraSettings, sleeper: Sleeper | None = None):  # type: ignore[no-untyped-def]
    """(cluster, session) as the administrator, retrying while Cassandra starts:
    :data:`CONNECT_ATTEMPTS` tries, waits from :class:`capstock.backoff.Backoff`."""
    from cassandra.cluster import NoHostAvailable

    sleeper = sleeper or Sleeper()
    backoff = Backoff(
        base=CONNECT_BACKOFF_BASE_SECONDS,
        cap=CONNECT_BACKOFF_CAP_SECONDS,
        max_attempts=CONNECT_ATTEMPTS - 1,
    )
    while True:
        try:
            return connect(
                settings.host,
                settings.admin_user,
                settings.admin_password.get_secret_value(),
                port=settings.port,
                datacenter=settings.datacenter,
            )
        except NoHostAvailable as err:
            if backoff.exhausted:
                raise
            delay = backoff.next_delay()
            log.warning(
                "cassandra not reachable at %s:%s (%s); retrying in %.1fs",
                settings.host,
                settings.port,
                err,
                delay,
            )
            sleeper.sleep(delay)


def _cmd_cassandra_setup(_args: argparse.Namespace) -> int:
    setup_logging(load(LogSettings).level)
    settings = load(CassandraSettings)
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    try:
        cluster, session = admin_session(settings)
    except Exception as err:
        print(
            f"cap-stock: cannot reach Cassandra at {settings.host}:{settings.port} as "
            f"{settings.admin_user}: {err}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        apply_schema(session, keyspace_options(settings))
        for statement in grants(settings):
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
        f"{SINK_CONFIG.name} does not match capstock/model/tables.py; "
        "regenerate it with: cap-stock connectors --write",
        file=sys.stderr,
    )
    return EXIT_CONFIG if not SINK_CONFIG.exists() else EXIT_FAILED


COMMANDS = [
    Command(
        "cassandra-setup",
        "create the Cassandra keyspace and tables if they do not exist",
        _cmd_cassandra_setup,
        description="Example: CASSANDRA_HOST=127.0.0.1 cap-stock cassandra-setup",
    ),
    Command(
        "connectors",
        "check or regenerate register_cassandra.json from the table declarations",
        _cmd_connectors,
        add_arguments=_connectors_arguments,
        description="Example: cap-stock connectors --write",
    ),
]
