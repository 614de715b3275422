"""``cap-stock``: the command line.

Commands are registered in :data:`COMMANDS` (see :func:`register`); :func:`build_parser`
turns every registration into an argparse sub-command, so another module adds a command by
calling ``register(Command(...))`` before ``main`` runs (or by adding it to
:func:`_builtin_commands`).

Exit status (the ``EXIT_*`` constants): 0 success, 1 a job or command failed (or the
producer lost rows), 2 bad configuration or usage, 3 the producer stopped with rows it
could not store in Postgres: they are safe in the spool (``PRODUCER_SPOOL_DIR``) and are
written on its next start.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from capstock.config import ConfigError, LogSettings, Settings, load, load_settings

log = logging.getLogger("capstock")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_SPOOLED = 3
"""``run``/``once`` stopped with rows still in the spool: nothing lost, not yet in Postgres."""


@dataclass(frozen=True)
class Command:
    """One sub-command. ``run`` receives the parsed arguments and returns the exit status."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None


COMMANDS: dict[str, Command] = {}


def register(command: Command) -> Command:
    """Add (or replace) a sub-command."""
    COMMANDS[command.name] = command
    return command


def setup_logging(level: str = "INFO") -> None:
    """One line per event: ``2026-11-21T05:35:00 INFO capstock.jobs job=klines rows=60 ...``."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def _settings() -> Settings:
    settings = load_settings()
    setup_logging(settings.log.level)
    return settings


# -- built-in commands -----------------------------------------------------------------------


def _cmd_init_db(_args: argparse.Namespace) -> int:
    settings = _settings()
    from capstock.postgres import Access, PostgresWriter

    pg = settings.postgres
    writer = PostgresWriter(settings.conninfo())
    try:
        writer.init_schema(access=Access(pg.publication, pg.cdc_user, pg.reader_user))
    finally:
        writer.close()
    log.info(
        "schema ready in %s:%s/%s",
        settings.postgres.host,
        settings.postgres.port,
        settings.postgres.db,
    )
    return EXIT_OK


def _cmd_once(_args: argparse.Namespace) -> int:
    settings = _settings()
    from capstock.runner import build_producer, install_signal_handlers, run_once

    producer = build_producer(settings)
    install_signal_handlers(producer.sleeper)
    return run_once(producer)


def _cmd_run(_args: argparse.Namespace) -> int:
    settings = _settings()
    from capstock.runner import build_producer, install_signal_handlers, run_forever

    producer = build_producer(settings)
    install_signal_handlers(producer.sleeper)
    return run_forever(producer)


def _cmd_simulator(args: argparse.Namespace) -> int:
    from capstock.simulator.cli import serve

    setup_logging(load(LogSettings).level)
    return serve(args)


def _simulator_arguments(parser: argparse.ArgumentParser) -> None:
    from capstock.simulator.cli import add_arguments

    add_arguments(parser)


def _builtin_commands() -> list[Command]:
    return [
        Command(
            "run",
            "run every job on its own schedule until SIGTERM/SIGINT",
            _cmd_run,
            description="Example: BINANCE_API_URL=http://127.0.0.1:8900/api cap-stock run   "
            "# exit 0; 3 if it stopped with rows in the spool (written on the next start)",
        ),
        Command(
            "once",
            "run one full cycle (universe, klines, trades, depth, prices, heartbeat), then exit",
            _cmd_once,
            description="Example: cap-stock once   # for cron and tests; exit 0 on success, "
            "3 if rows were left in the spool",
        ),
        Command(
            "init-db",
            "create the Postgres tables if they do not exist",
            _cmd_init_db,
            description="Example: POSTGRES_HOST=127.0.0.1 cap-stock init-db",
        ),
        Command(
            "simulator",
            "serve a simulated Binance spot REST API (seeded random-walk market)",
            _cmd_simulator,
            add_arguments=_simulator_arguments,
            description="Example: cap-stock simulator --port 8900 --symbols 20 --seed 1 "
            "--fault 429,count=3,retry_after=2",
        ),
    ]


for _command in _builtin_commands():
    register(_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cap-stock",
        description="Binance market data into Postgres (then Debezium, Kafka, Cassandra). "
        "Settings come from environment variables and .env.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        if command.add_arguments is not None:
            command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    import capstock.cassandra_setup  # noqa: F401 - registers cassandra-setup and connectors

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args._run(args)
    except ConfigError as e:
        print(f"cap-stock: configuration error\n{e}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
