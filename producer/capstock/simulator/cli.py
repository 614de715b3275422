"""``cap-stock simulator``: serve the simulated exchange in the foreground until SIGTERM/SIGINT.

Each option falls back to a ``SIMULATOR_*`` variable; ``--fault`` (repeatable) switches
faults on from the start (:mod:`capstock.simulator.faults`). At the stop the market is
saved to ``--state-dir`` (if set); exit 1 if that fails.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from capstock.exchange import limits
from capstock.simulator.exchange import Simulator
from capstock.simulator.faults import Fault

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOT_SAVED = 1
EXIT_USAGE = 2


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"SIMULATOR_{name}", default)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cap-stock simulator``; each falls back to a SIMULATOR_* variable."""
    parser.add_argument(
        "--host", default=_env("HOST", "127.0.0.1"), help="bind address [SIMULATOR_HOST]"
    )
    parser.add_argument(
        "--port", type=int, default=int(_env("PORT", 8900)), help="[SIMULATOR_PORT]"
    )
    parser.add_argument(
        "--symbols",
        type=_positive,
        default=int(_env("SYMBOLS", 20)),
        help="USDT pairs to simulate (two BTC pairs are added) [SIMULATOR_SYMBOLS]",
    )
    parser.add_argument("--seed", type=int, default=int(_env("SEED", 1)), help="[SIMULATOR_SEED]")
    parser.add_argument(
        "--trade-rate",
        type=float,
        default=float(_env("TRADE_RATE", 1.0)),
        help="mean trades per second per symbol [SIMULATOR_TRADE_RATE]",
    )
    parser.add_argument(
        "--history-minutes",
        type=int,
        default=int(_env("HISTORY_MINUTES", 30)),
        help="market history generated at start [SIMULATOR_HISTORY_MINUTES]",
    )
    parser.add_argument(
        "--weight-limit",
        type=int,
        default=int(_env("WEIGHT_LIMIT", limits.REQUEST_WEIGHT_LIMIT_1M)),
        help="request weight per minute before 429 [SIMULATOR_WEIGHT_LIMIT]",
    )
    parser.add_argument(
        "--ban-seconds",
        type=int,
        default=int(_env("BAN_SECONDS", 120)),
        help="418 ban length after repeated 429s [SIMULATOR_BAN_SECONDS]",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=_env("STATE_DIR", None),
        help="keep the market here across restarts, so trade ids continue "
        "[SIMULATOR_STATE_DIR] (default: none, a fresh market on every start)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[,key=value...]",
        help="inject a fault, repeatable: 429,count=3,retry_after=2 | 418,count=1 | "
        "5xx,probability=0.1,status=503 | slow,delay=3 | malformed,count=2 | "
        "truncated,paths=depth | unfiltered,paths=ticker/price",
    )


def serve(args: argparse.Namespace) -> int:
    """Run ``cap-stock simulator``."""
    try:
        faults = [Fault.parse(text) for text in args.fault]
    except (ValueError, TypeError) as e:
        print(f"cap-stock simulator: bad --fault: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    sim = Simulator(
        symbols=args.symbols,
        seed=args.seed,
        host=args.host,
        port=args.port,
        trade_rate=args.trade_rate,
        history_minutes=args.history_minutes,
        weight_limit=args.weight_limit,
        ban_seconds=args.ban_seconds,
        faults=faults,
        state_dir=args.state_dir,
    )
    log.info(
        "simulator serving %d symbols at %s (BINANCE_API_URL=%s)",
        len(sim.symbols()),
        sim.url,
        sim.url,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    try:
        sim.save_state()
    except OSError as e:
        log.error("simulator: cannot save the market to %s: %s", args.state_dir, e)
        return EXIT_NOT_SAVED
    return EXIT_OK


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt
