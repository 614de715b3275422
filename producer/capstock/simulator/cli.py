"""``cap-stock simulator``: serve the simulated exchange in the foreground until SIGTERM/SIGINT.

Every option is a field of :class:`~capstock.simulator.settings.SimulatorSettings`: the flag
wins, then its ``SIMULATOR_*`` variable (the environment, then ``.env``), then the declared
default. ``--fault`` (repeatable) switches faults on from the start
(:mod:`capstock.simulator.faults`)::

    SIMULATOR_SYMBOLS=5 cap-stock simulator --port 8900 --fault 429,count=3,retry_after=2

The streams are served at ``ws://host:<ws-port>/`` (the API port + 1 unless ``--ws-port``),
with the ``ws_*`` faults, e.g. ``--fault ws_drop,probability=0.001``.

At the stop the market is saved to ``--state-dir`` (if set); exit 1 if that fails.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from typing import Any

from capstock.simulator.exchange import Simulator
from capstock.simulator.faults import Fault
from capstock.simulator.settings import (
    SimulatorSettings,
    env_name,
    flag_name,
    load_simulator_settings,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOT_SAVED = 1
EXIT_USAGE = 2

FAULT_HELP = (
    "inject a fault, repeatable: 429,count=3,retry_after=2 | 418,count=1 | "
    "5xx,probability=0.1,status=503 | slow,delay=3 | malformed,count=2 | "
    "truncated,paths=depth | unfiltered,paths=ticker/price | "
    "ws_drop,count=1 | ws_stall,pongs=false | ws_skip,paths=btcusdt@depth | ws_rollover"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; an absent flag leaves the value to the environment."""
    for name, field in SimulatorSettings.model_fields.items():
        default = "none" if field.default is None else field.default
        parser.add_argument(
            flag_name(name),
            dest=name,
            default=argparse.SUPPRESS,
            help=f"{field.description} [{env_name(name)}, default {default}]",
        )
    parser.add_argument(
        "--fault", action="append", default=[], metavar="KIND[,key=value...]", help=FAULT_HELP
    )


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by field name."""
    return {name: getattr(args, name) for name in SimulatorSettings.model_fields if name in args}


def serve(args: argparse.Namespace) -> int:
    """Run ``cap-stock simulator``; raises ConfigError for a bad setting (exit 2)."""
    try:
        faults = [Fault.parse(text) for text in args.fault]
    except (ValueError, TypeError) as e:
        print(f"cap-stock simulator: bad --fault: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    settings = load_simulator_settings(given_flags(args))
    sim = Simulator(**settings.model_dump(), faults=faults)
    log.info(
        "simulator serving %d symbols at %s (BINANCE_API_URL=%s), streams at %s",
        len(sim.symbols()),
        sim.url,
        sim.url,
        sim.ws_url,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    try:
        sim.save_state()
    except OSError as e:
        log.error("simulator: cannot save the market to %s: %s", settings.state_dir, e)
        return EXIT_NOT_SAVED
    return EXIT_OK


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
