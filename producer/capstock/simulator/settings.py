"""The simulator's settings: one class, each default declared once.

``cap-stock simulator`` reads them from ``SIMULATOR_*`` variables (the environment, then
``.env``); each has a command-line flag of the same name that wins over both, e.g.
``SIMULATOR_PORT=8901 cap-stock simulator --port 8902`` serves on 8902. A bad value is a
:class:`~capstock.config.ConfigError` naming the flag or the variable it came from and
what is allowed::

    SIMULATOR_SYMBOLS='0' is not allowed: Input should be greater than or equal to 1

In-process simulators (:func:`capstock.simulator.start_simulator`) read no environment:
their keyword defaults are :data:`DEFAULTS`, except the port (a free one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from capstock.config import _COMMON, SIMULATOR_PORT, ConfigError
from capstock.exchange import limits

ENV_PREFIX = "SIMULATOR_"


class SimulatorSettings(BaseSettings):
    """How the simulated exchange is served and what market it simulates."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix=ENV_PREFIX)

    host: str = Field("127.0.0.1", min_length=1, description="bind address")
    port: int = Field(SIMULATOR_PORT, ge=0, le=65535, description="0 picks a free port")
    symbols: int = Field(
        20, ge=1, description="USDT pairs to simulate (ETHBTC and BNBBTC are added from 3 up)"
    )
    seed: int = Field(1, description="the same seed gives the same market")
    trade_rate: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="mean trades per second per symbol"
    )
    history_minutes: int = Field(
        30,
        ge=0,
        description="minutes of market history before the start (klines, trades by id); "
        "beyond the last 30 made on demand, so 1440 (a day) starts at once",
    )
    weight_limit: int = Field(
        limits.REQUEST_WEIGHT_LIMIT_1M, ge=1, description="request weight per minute before 429"
    )
    ban_seconds: int = Field(120, ge=0, description="418 ban length after repeated 429s")
    state_dir: Path | None = Field(
        None,
        description="keep the market here across restarts, so trade ids continue "
        "(none: a fresh market on every start)",
    )
    ws_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="websocket streams port (none: the API port + 1, or a free one when "
        "that is taken or the API port is 0; 0 picks a free port)",
    )
    ws_ping_interval: float = Field(
        20.0,
        gt=0,
        allow_inf_nan=False,
        description="seconds between the streams' ping frames (unanswered for 60 s: closed)",
    )
    ws_rollover_seconds: float = Field(
        24 * 3600.0,
        gt=0,
        allow_inf_nan=False,
        description="a stream connection is closed (1001) this long after it opened, as "
        "Binance does after 24 h",
    )

    @field_validator("state_dir", "ws_port", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v


DEFAULTS = SimulatorSettings.model_construct()
"""The declared defaults, without reading the environment."""


def env_name(field: str) -> str:
    """``trade_rate`` → ``SIMULATOR_TRADE_RATE``."""
    return f"{ENV_PREFIX}{field}".upper()


def flag_name(field: str) -> str:
    """``trade_rate`` → ``--trade-rate``."""
    return "--" + field.replace("_", "-")


def load_simulator_settings(
    flags: Mapping[str, Any] | None = None, *, env_file: str | None = ".env"
) -> SimulatorSettings:
    """The settings from ``flags`` (command-line values by field name), then the
    environment and ``env_file``, then the defaults.

    Raises :class:`ConfigError` with one line per bad value, naming where it came from.
    """
    flags = dict(flags or {})
    try:
        return SimulatorSettings(_env_file=env_file, **flags)
    except ValidationError as err:
        raise ConfigError(_describe(err, flags)) from None


def _describe(err: ValidationError, flags: Mapping[str, Any]) -> str:
    lines = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else "?"
        value = repr(e.get("input"))
        source = f"{flag_name(field)} {value}" if field in flags else f"{env_name(field)}={value}"
        lines.append(f"{source} is not allowed: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)
