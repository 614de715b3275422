"""``cap-stock``: the command line, one sub-command per stage's entry point.

:func:`commands` lists every sub-command (the producer's here, ``backfill`` from
:mod:`capstock.ingest.backfill_cli`, the history store's from :mod:`capstock.history.setup`);
:func:`build_parser` turns each into an argparse sub-command. Exit statuses:
:mod:`capstock.commands`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from capstock.commands import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SPOOLED,
    Command,
    setup_logging,
)
from capstock.config import ConfigError, LogSettings, Settings, load, load_settings
from capstock.history import setup as history_setup
from capstock.ingest import backfill_cli

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_SPOOLED", "build_parser", "main"]

log = logging.getLogger("capstock")


def _settings() -> Settings:
    settings = load_settings()
    setup_logging(settings.log.level)
    return settings


# -- built-in commands -----------------------------------------------------------------------


def _cmd_init_db(_args: argparse.Namespace) -> int:
    settings = _settings()
    from capstock.staging.writer import Access, PostgresWriter

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
    from capstock.ingest.runner import build_producer, install_signal_handlers, run_once

    producer = build_producer(settings)
    install_signal_handlers(producer.sleeper)
    return run_once(producer)


def _cmd_run(_args: argparse.Namespace) -> int:
    settings = _settings()
    from capstock.ingest.runner import build_producer, install_signal_handlers, run

    producer = build_producer(settings)
    install_signal_handlers(producer.sleeper)
    return run(producer)


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
            "ingest until SIGTERM/SIGINT: every job on its own schedule, or with "
            "INGEST_MODE=stream the websocket streams (REST filling the holes)",
            _cmd_run,
            description="Example: BINANCE_API_URL=http://127.0.0.1:8900/api cap-stock run   "
            "# exit 0; 3 if it stopped with rows in the spool (written on the next start). "
            "INGEST_MODE=stream INGEST_STREAM_URL=ws://127.0.0.1:8901 cap-stock run streams.",
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


def commands() -> dict[str, Command]:
    """Every sub-command by name, in the order ``cap-stock --help`` lists them."""
    return {
        c.name: c for c in [*_builtin_commands(), *backfill_cli.COMMANDS, *history_setup.COMMANDS]
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cap-stock",
        description="Binance market data into Postgres (then Debezium, Kafka, Cassandra). "
        "Settings come from environment variables and .env.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands().values():
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        if command.add_arguments is not None:
            command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args._run(args)
    except ConfigError as e:
        print(f"cap-stock: configuration error\n{e}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
