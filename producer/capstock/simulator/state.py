"""The simulated market across restarts: saved at a clean stop, taken back at the next start.

Without it every start builds a fresh market whose trade ids derive from the start time,
so ids jump by millions over a restart and a producer polling across it logs fake trade
gaps. With ``--state-dir`` (the native runner passes ``.stack/data/simulator``) the
simulator writes its whole market to :data:`STATE_FILE` there when it stops (SIGTERM,
``close()``), and the next start continues it: the next trade id of each symbol is the
last one issued plus one, and no trades happen while the simulator is away.

The file is consumed when it is read: a simulator that crashes (SIGKILL, power loss)
leaves no state behind, and the next start builds a fresh market, whose time-derived ids
are above every id issued before, instead of resuming from an older save and issuing
the same ids twice. A state saved with other settings (``--seed``, ``--symbols``,
``--trade-rate``) is not used either; both cases are logged.

The file is JSON (no pickle), written under a temporary name, fsynced and renamed::

    {"state": 1, "saved_at_ms": 1795000000000,
     "market": {"symbol_count": 20, "seed": 1, "trade_rate": 1.0, "now_ms": ...,
                "rng": [3, [...], null],
                "symbols": [{"symbol": "BTCUSDT", "next_trade_id": 17950000012345, ...}]}}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capstock.simulator.market import Market

log = logging.getLogger(__name__)

STATE_FORMAT = 1
STATE_FILE = "market-state.json"
TMP_SUFFIX = ".tmp"


def state_file(directory: Path) -> Path:
    return directory / STATE_FILE


def save(market: Market, directory: Path, *, now_ms: int) -> Path:
    """Write the market to ``directory``/:data:`STATE_FILE` atomically; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = state_file(directory)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    document = {"state": STATE_FORMAT, "saved_at_ms": now_ms, "market": market.to_state()}
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def _settings_of(market: Any) -> dict[str, Any]:
    if not isinstance(market, dict):
        raise ValueError("no market in it")
    return {
        "seed": market.get("seed"),
        "symbols": market.get("symbol_count"),
        "trade_rate": market.get("trade_rate"),
    }


def load(
    directory: Path, *, seed: int, symbols: int, trade_rate: float, now_ms: int
) -> Market | None:
    """The market saved in ``directory`` if it was saved with these settings, resumed at
    ``now_ms``; None (a fresh market is needed) otherwise. The file is removed either way.
    """
    path = state_file(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.info("simulator: no saved market in %s, starting a fresh one", directory)
        return None
    except OSError as e:
        log.warning(
            "simulator: cannot read the saved market %s (%s): starting a fresh one", path, e
        )
        return None
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    wanted = {"seed": seed, "symbols": symbols, "trade_rate": trade_rate}
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("state") != STATE_FORMAT:
            raise ValueError(f"not a state file of format {STATE_FORMAT}")
        saved = _settings_of(document["market"])
        if saved != wanted:
            log.warning(
                "simulator: the market in %s was saved with %s, not %s: starting a fresh "
                "market (trade ids jump, a producer logs one gap per symbol)",
                path,
                _describe(saved),
                _describe(wanted),
            )
            return None
        market = Market.from_state(document["market"], now_ms=now_ms)
    except (ValueError, KeyError, TypeError, ArithmeticError) as e:
        log.warning("simulator: cannot use the saved market %s (%s): starting a fresh one", path, e)
        return None
    saved_at = datetime.fromtimestamp(int(document.get("saved_at_ms", 0)) / 1000, UTC)
    first = next(iter(market.symbols.values()))
    log.info(
        "simulator: continuing the market saved at %s from %s (%d symbols; trade ids "
        "continue, e.g. %s next id %d)",
        saved_at.isoformat(timespec="seconds"),
        path,
        len(market.symbols),
        first.symbol,
        first.next_trade_id,
    )
    return market


def _describe(settings: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in settings.items())
