"""``cap-stock backfill``: the command line of :mod:`capstock.ingest.backfill`.

$ cap-stock backfill --since 1d                                   # a day of candles
$ cap-stock backfill --since 2026-11-20 --until 2026-11-21T06:00 \\
      --symbols BTCUSDT,ETHUSDT --datasets klines,trades

Times are UTC: an ISO date (``2026-11-20``, midnight), an ISO date and time
(``2026-11-20T06:30``, ``2026-11-20 06:30:15``, an offset like ``+02:00`` is converted), or
a span back from now (``90m``, ``6h``, ``1d``, ``2w``); ``--until`` defaults to now. A
progress bar per dataset goes to stderr (``--no-progress`` drops it; the log lines stay).

Exit status (:mod:`capstock.commands`): 0 done; 1 stopped early (SIGINT/SIGTERM after the
page in hand, a ban, no exchange or no database) or some symbols failed: run the same
command again and it continues where it stopped; 2 a usage or configuration error (a bad
time, an unknown dataset, a symbol the exchange rejects, an interval that cannot be paged),
named in one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, get_args

from capstock.backoff import Interrupted, RetriesExhausted, Sleeper
from capstock.commands import EXIT_CONFIG, EXIT_FAILED, Command, setup_logging
from capstock.config import MARKET_DATA_API_URL, KlineInterval, Settings, load_settings
from capstock.exchange.client import Banned, ExchangeClient, RequestRejected
from capstock.ingest.backfill import (
    DATASETS,
    UNITS,
    Backfill,
    Outcome,
    SymbolsRejected,
    Writer,
    resolve_targets,
    tqdm_progress,
)
from capstock.ingest.paging import interval_ms
from capstock.transform.rows import now_utc, utc_to_ms

log = logging.getLogger("capstock.ingest.backfill")

RELATIVE = re.compile(r"^(\d+)([smhdw])$")
RELATIVE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TIME_HELP = "UTC: 2026-11-20, 2026-11-20T06:30, or back from now: 90m, 6h, 1d, 2w"
DEFAULT_DATASETS = ("klines",)
POSTGRES_PATIENCE_SECONDS = 30.0
"""At start, how long an unreachable Postgres is retried before the command gives up (once
running, a write waits for Postgres until it answers or the command is stopped)."""


class UsageError(Exception):
    """A command-line value the backfill cannot use; ``str()`` says which and why."""


@dataclass(frozen=True)
class When:
    """A point in time as given: absolute (UTC), or a span back from "now"."""

    text: str
    at: datetime | None = None
    ago: timedelta | None = None

    def resolve(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now - (self.ago or timedelta(0))


def parse_when(text: str) -> When:
    """``2026-11-20`` / ``2026-11-20T06:30[:15][Z|+02:00]`` / ``6h`` / ``now``; naive
    times are UTC. Raises ``argparse.ArgumentTypeError`` naming the accepted forms."""
    value = text.strip()
    if value.lower() == "now":
        return When(text, ago=timedelta(0))
    relative = RELATIVE.match(value)
    if relative:
        amount, unit = relative.groups()
        return When(text, ago=timedelta(**{RELATIVE_UNITS[unit]: int(amount)}))
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time ({TIME_HELP})") from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return When(text, at=at)


def parse_datasets(text: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown dataset {', '.join(map(repr, unknown)) or repr(text)}: "
            f"choose from {', '.join(DATASETS)} (comma-separated)"
        )
    return tuple(dict.fromkeys(names))


def parse_symbols(text: str) -> tuple[str, ...]:
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not n.isalnum()]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{', '.join(map(repr, bad)) or repr(text)} is not a symbol list like BTCUSDT,ETHUSDT"
        )
    return tuple(dict.fromkeys(names))


def parse_interval(text: str) -> str:
    if text not in get_args(KlineInterval):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a kline interval: {' '.join(get_args(KlineInterval))}"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", required=True, type=parse_when, metavar="TIME", help=f"start ({TIME_HELP})"
    )
    parser.add_argument(
        "--until", type=parse_when, metavar="TIME", help="end, included (default: now)"
    )
    parser.add_argument(
        "--symbols",
        type=parse_symbols,
        metavar="A,B",
        help="comma-separated (default: the universe, UNIVERSE_SYMBOLS or the top UNIVERSE_SIZE)",
    )
    parser.add_argument(
        "--datasets",
        type=parse_datasets,
        default=DEFAULT_DATASETS,
        metavar="D,D",
        help=f"any of {','.join(DATASETS)} (default: klines)",
    )
    parser.add_argument(
        "--interval",
        type=parse_interval,
        help="kline interval, 1s to 1w (default: JOB_KLINE_INTERVAL)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


@dataclass(frozen=True)
class Request:
    """The command line, checked and resolved against "now"."""

    start: datetime
    end: datetime
    interval: str
    datasets: tuple[str, ...]
    symbols: tuple[str, ...]


def check(args: argparse.Namespace, settings: Settings, now: datetime) -> Request:
    """The request the arguments make; :class:`UsageError` for one that cannot run."""
    start = args.since.resolve(now)
    until = args.until or When("now", ago=timedelta(0))
    end = until.resolve(now)
    if end > now:
        log.info("backfill: --until %s is in the future; stopping at now", args.until.text)
        end = now
    if start >= end:
        raise UsageError(
            f"--since {args.since.text} ({start.isoformat()}) is not before "
            f"--until {until.text} ({end.isoformat()})"
        )
    interval = args.interval or settings.jobs.kline_interval
    if "klines" in args.datasets:
        try:
            interval_ms(interval)
        except ValueError as e:
            source = "--interval" if args.interval else "JOB_KLINE_INTERVAL"
            raise UsageError(f"{source}={interval}: {e}") from None
    if "trades" in args.datasets and settings.binance.api_url == MARKET_DATA_API_URL:
        raise UsageError(
            f"BINANCE_API_URL={MARKET_DATA_API_URL} does not serve /api/v3/historicalTrades, "
            "which the trades backfill needs: use https://api.binance.com/api"
        )
    return Request(start, end, interval, tuple(args.datasets), tuple(args.symbols or ()))


def run_backfill(
    args: argparse.Namespace,
    settings: Settings,
    *,
    writer: Writer | None = None,
    sleeper: Sleeper | None = None,
    exchange: ExchangeClient | None = None,
    clock: Callable[[], float] = time.time,
    stream: TextIO | None = None,
) -> int:
    """The command, with its collaborators injectable (tests pass an in-memory writer, a
    fake clock and its sleeper, ...). Returns the exit status."""
    stream = stream or sys.stderr
    now = now_utc(clock)
    try:
        request = check(args, settings, now)
    except UsageError as e:
        return _usage(e, stream)
    sleeper = sleeper or Sleeper()
    exchange = exchange or ExchangeClient(settings.binance, sleeper=sleeper)
    try:
        targets = resolve_targets(exchange, settings.universe, request.symbols)
    except SymbolsRejected as e:
        return _usage(e, stream)
    except (Interrupted, Banned, RetriesExhausted, RequestRejected) as e:
        print(
            f"cap-stock backfill: cannot rank the symbols: {str(e) or 'interrupted'}", file=stream
        )
        return EXIT_FAILED
    if not targets:
        return _usage(UsageError("no symbols to backfill: the universe is empty"), stream)
    own_writer = writer is None
    if writer is None:
        from capstock.staging.writer import DatabaseUnavailable, PostgresWriter

        writer = postgres = PostgresWriter(settings.conninfo(), sleeper=sleeper)
        try:
            with postgres.patience_of(POSTGRES_PATIENCE_SECONDS):
                postgres.init_schema()
        except DatabaseUnavailable as e:
            postgres.close()
            pg = settings.postgres
            print(f"cap-stock backfill: no Postgres at {pg.host}:{pg.port}: {e}", file=stream)
            return EXIT_FAILED
    progress = tqdm_progress(stream, disable=args.no_progress)
    backfill = Backfill(exchange, writer, sleeper=sleeper, progress=progress, clock=clock)
    try:
        with _logs_above_bars(not args.no_progress):
            outcome = backfill.run(
                targets,
                request.datasets,
                utc_to_ms(request.start),
                utc_to_ms(request.end),
                request.interval,
            )
    finally:
        if own_writer:
            writer.close()
    return _finish(outcome, stream)


def _usage(error: Exception, stream: TextIO) -> int:
    print(f"cap-stock backfill: {error}", file=stream)
    return EXIT_CONFIG


def _logs_above_bars(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """Log lines printed above the progress bar instead of through it."""
    if not enabled:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def _finish(outcome: Outcome, stream: TextIO) -> int:
    status = outcome.status
    done = ", ".join(
        f"{r.dataset} {r.covered} of {r.missing} missing {UNITS[r.dataset]}s "
        f"({r.rows} rows, {r.absent} absent on the exchange)"
        for r in outcome.runs
    )
    if outcome.usage_error is not None:
        print(f"cap-stock backfill: {outcome.usage_error}", file=stream)
    elif outcome.stopped is not None:
        log.warning(
            "backfill stopped (%s): %s; run the same command again to continue (exit %d)",
            outcome.stopped,
            done,
            status,
        )
    else:
        failed = sorted({s for r in outcome.runs for s in r.failed + r.skipped})
        log.log(
            logging.WARNING if failed else logging.INFO,
            "backfill done: %s%s (exit %d)",
            done,
            f"; failed: {' '.join(failed)} (run again to retry them)" if failed else "",
            status,
        )
    return status


def _cmd_backfill(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings.log.level)
    from capstock.ingest.runner import install_signal_handlers

    sleeper = Sleeper()
    install_signal_handlers(sleeper)
    return run_backfill(args, settings, sleeper=sleeper)


COMMANDS = [
    Command(
        "backfill",
        "load past klines and trades for the universe (resumable, idempotent, paced)",
        _cmd_backfill,
        add_arguments=add_arguments,
        description="Example: cap-stock backfill --since 1d --datasets klines,trades   "
        "# a day of candles and trades for the universe; run it again after an "
        "interruption and it continues; exit 0 done, 1 stopped early, 2 usage",
    ),
]
