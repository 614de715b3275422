"""Typed configuration from environment variables and ``.env``.

Every setting is an upper-case environment variable (``POSTGRES_HOST``, ``UNIVERSE_SIZE`` ...);
a ``.env`` file in the working directory is read too (real environment variables win).
Values are validated when the program starts: :func:`load_settings` raises
:class:`ConfigError`, whose message names the variable, the rejected value and what is
allowed; the CLI prints it and exits with status 2.

One settings class per component; :class:`Settings` bundles those the producer needs.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from capstock.exchange import limits

KlineInterval = Literal[
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
    "1M",
]
RankBy = Literal["quote_volume", "price_change"]

LIVE_API_URL = "https://api.binance.com/api"
MARKET_DATA_API_URL = "https://data-api.binance.vision/api"
LIVE_STREAM_URL = "wss://stream.binance.com:9443"
MARKET_DATA_STREAM_URL = "wss://data-stream.binance.vision"
IngestMode = Literal["rest", "stream"]

# The defaults every component agrees on (producer, schema set-up, sink, native runner,
# compose's init jobs), declared here once.
POSTGRES_PORT = 5432
POSTGRES_DB = "cap_stock_db"
PIPELINE_ROLE = "cap_stock"
"""Owns the Postgres tables and writes Cassandra (the producer's and the sink's login)."""
CDC_ROLE = "cap_stock_cdc"
READER_ROLE = "cap_stock_reader"
"""Grafana's login in both stores: reads only."""
CASSANDRA_ADMIN_ROLE = "cap_stock_admin"
"""Replaces Cassandra's built-in superuser."""
CASSANDRA_PORT = 9042
CASSANDRA_DATACENTER = "datacenter1"
"""The data-center name a single native node announces (cassandra.yaml's snitch default)."""
KEYSPACE = "cap_stock"
KAFKA_PORT = 29092
"""Kafka's listener for clients on this machine (the native stack and compose's EXTERNAL)."""
SIMULATOR_PORT = 8900
"""The exchange simulator's REST API; its streams default to the next port."""

_COMMON = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    case_sensitive=False,
    validate_default=True,
)


class ConfigError(Exception):
    """A setting has a value the program cannot use. ``str()`` is the user-facing message."""


class PostgresSettings(BaseSettings):
    """Where the producer writes, as the tables' owner (the native stack creates the roles)."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="POSTGRES_")

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(POSTGRES_PORT, ge=1, le=65535)
    db: str = Field(POSTGRES_DB, min_length=1)
    user: str = Field(PIPELINE_ROLE, min_length=1)
    password: SecretStr = Field(description="generated into .env on the first start")
    # init-db grants these roles what they need (Debezium's reads and heartbeats, Grafana's
    # reads) and creates the publication Debezium streams (register-postgres.json).
    cdc_user: str = Field(CDC_ROLE, min_length=1)
    reader_user: str = Field(READER_ROLE, min_length=1)
    publication: str = Field("cap_stock_publication", min_length=1)
    connect_timeout: int = Field(5, ge=1, le=300, description="seconds per connection attempt")

    def conninfo(self) -> str:
        """A libpq conninfo string for psycopg (the password included)."""
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.db,
            user=self.user,
            password=self.password.get_secret_value(),
            connect_timeout=self.connect_timeout,
            application_name="cap-stock-producer",
        )


class BinanceSettings(BaseSettings):
    """The exchange endpoint, credentials and request-weight budget."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="BINANCE_")

    api_url: str = Field(
        LIVE_API_URL,
        description=f"REST base ending in /api: {LIVE_API_URL}, {MARKET_DATA_API_URL} "
        "(market data only, no key) or the simulator, e.g. http://127.0.0.1:8900/api",
    )
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    request_timeout: float = Field(10.0, gt=0, le=120, description="seconds per HTTP request")
    weight_share: float = Field(
        0.5,
        gt=0,
        le=limits.WEIGHT_SHARE_MAX,
        description="share of the per-minute request-weight limit to use",
    )
    weight_limit: int = Field(
        limits.REQUEST_WEIGHT_LIMIT_1M, ge=1, description="the exchange's REQUEST_WEIGHT per minute"
    )
    max_attempts: int = Field(6, ge=1, le=50, description="tries per request on 5xx/timeouts")

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")) or not v.endswith("/api"):
            raise ValueError("must be an http(s) URL ending in /api")
        return v

    @property
    def weight_budget(self) -> int:
        return int(self.weight_limit * self.weight_share)


class UniverseSettings(BaseSettings):
    """Which symbols to follow: the top N of one quote asset, or an explicit list."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="UNIVERSE_")

    size: int = Field(20, ge=1, le=500)
    quote_asset: str = Field("USDT", pattern=r"^[A-Z0-9]{2,10}$")
    rank_by: RankBy = "quote_volume"
    min_quote_volume: Decimal = Field(Decimal("1000000"), ge=0)
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated; when set, replaces the top-N ranking"
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip().upper() for s in v.split(",") if s.strip()]
        return v

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s.isalnum() or not s.isupper():
                raise ValueError(f"{s!r} is not a symbol like BTCUSDT")
        return list(dict.fromkeys(v))


class JobSettings(BaseSettings):
    """How often each job runs (seconds) and how much each fetches."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="JOB_")

    kline_interval: KlineInterval = "1m"
    kline_limit: int = Field(
        3, ge=1, le=1000, description="candles per fetch (>=2 closes the last)"
    )
    trades_limit: int = Field(500, ge=1, le=1000)
    depth_levels: int = Field(20, ge=1, le=5000, description="book levels per side")
    klines_seconds: float = Field(30, ge=1)
    trades_seconds: float = Field(30, ge=1)
    depth_seconds: float = Field(30, ge=1)
    ticker_seconds: float = Field(60, ge=1, description="24h stats, also refreshes the universe")
    prices_seconds: float = Field(10, ge=1)
    heartbeat_seconds: float = Field(5, ge=1)
    retention_seconds: float = Field(300, ge=1, description="retention job interval")
    retention_hours: float = Field(
        24, ge=0, description="delete Postgres rows ingested longer ago than this; 0 = never"
    )
    retention_batch: int = Field(5000, ge=1, le=1_000_000, description="rows per delete")


class IngestSettings(BaseSettings):
    """How the producer takes in the market: REST polling (the jobs, the default) or
    websocket streams with REST filling the holes (:mod:`capstock.ingest.streaming`).

    ``cap-stock run`` reads ``INGEST_MODE``; the other settings only matter in stream mode.
    The ``JOB_*`` intervals still apply there to what is sampled rather than streamed: the
    universe ranking (``JOB_TICKER_SECONDS``), order-book snapshots from the local book
    (``JOB_DEPTH_SECONDS``), the newest 24h ticker and price per symbol
    (``JOB_TICKER_SECONDS``, ``JOB_PRICES_SECONDS``), the heartbeat and retention.
    """

    model_config = SettingsConfigDict(**_COMMON, env_prefix="INGEST_")

    mode: IngestMode = Field(
        "rest", description="rest: poll on the JOB_* intervals; stream: websocket streams"
    )
    stream_url: str = Field(
        LIVE_STREAM_URL,
        description=f"websocket base: {LIVE_STREAM_URL}, {MARKET_DATA_STREAM_URL} (market "
        "data only) or the simulator's, e.g. ws://127.0.0.1:8901",
    )
    flush_ms: int = Field(
        100, ge=1, le=10_000, description="a streamed row reaches Postgres within this (ms)"
    )
    flush_rows: int = Field(
        2000, ge=1, le=1_000_000, description="or as soon as this many rows wait"
    )
    stall_seconds: float = Field(
        10.0, gt=0, le=600, description="no message for this long: the connection is reopened"
    )
    streams_per_connection: int = Field(
        200, ge=4, le=1024, description="streams per websocket connection (Binance: 1024)"
    )
    rollover_seconds: float = Field(
        23.5 * 3600,
        ge=1,
        le=24 * 3600,
        description="a connection is replaced (the new one opened first) after this long; "
        "Binance cuts at 24 h",
    )
    depth_speed_ms: int = Field(
        1000, description="the diff-depth stream's update speed: 1000 or 100"
    )
    book_snapshot_limit: int = Field(
        1000,
        ge=5,
        le=limits.DEPTH_MAX_LIMIT,
        description="levels of the REST snapshot a local book starts from (weight 50 at 1000)",
    )
    fill_max_ids: int = Field(
        1_000_000,
        ge=0,
        description="a trade-id hole larger than this is left open for `cap-stock backfill` "
        "(0: fill every hole)",
    )

    @field_validator("stream_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("ws://", "wss://")):
            raise ValueError("must be a ws:// or wss:// URL, e.g. wss://stream.binance.com:9443")
        return v

    @field_validator("depth_speed_ms")
    @classmethod
    def _speed(cls, v: int) -> int:
        if v not in (100, 1000):
            raise ValueError("must be 1000 or 100 (the speeds Binance streams diff depth at)")
        return v


REST_MODE = IngestSettings.model_construct()
"""The declared defaults (polling), without reading the environment: what a
:class:`Settings` built without ``ingest`` uses (:func:`load_settings` reads it)."""


def default_spool_dir() -> Path:
    """``$STACK_HOME/spool`` (the environment, then ``.env``), else ``.stack/spool``: the
    native stack's home, in the working directory (the repository root for ``make demo``)."""
    home = os.environ.get("STACK_HOME") or dotenv_values(".env").get("STACK_HOME") or ".stack"
    return Path(home) / "spool"


class SpoolSettings(BaseSettings):
    """Where the producer keeps batches Postgres could not take
    (see :mod:`capstock.staging.spool`)."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="PRODUCER_SPOOL_")

    dir: Path = Field(
        default_factory=default_spool_dir,
        description="default: $STACK_HOME/spool, else .stack/spool",
    )
    after_seconds: float = Field(
        10,
        ge=0,
        le=300,
        description="how long a write retries an unreachable Postgres before spooling",
    )

    @field_validator("dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().absolute()


class CassandraSettings(BaseSettings):
    """Where the history lives and who may do what there.

    The schema is applied as the administrator (CASSANDRA_ADMIN_*), which then grants
    the sink's role (CASSANDRA_USER) and Grafana's (CASSANDRA_READER_USER) exactly
    what they need on the keyspace. The stack creates these roles (see .env.example).
    """

    model_config = SettingsConfigDict(**_COMMON, env_prefix="CASSANDRA_")

    host: str = Field("127.0.0.1", min_length=1, description="contact point(s), comma-separated")
    port: int = Field(CASSANDRA_PORT, ge=1, le=65535)
    admin_user: str = Field(CASSANDRA_ADMIN_ROLE, min_length=1)
    admin_password: SecretStr = Field(description="generated into .env on the first start")
    user: str = Field(PIPELINE_ROLE, min_length=1)
    reader_user: str = Field(READER_ROLE, min_length=1)
    datacenter: str = Field(CASSANDRA_DATACENTER, min_length=1, description="local data center")
    keyspace: str = Field(KEYSPACE, pattern=r"^[a-z_][a-z0-9_]*$")
    replication_strategy: Literal["SimpleStrategy", "NetworkTopologyStrategy"] = "SimpleStrategy"
    replication_factor: int = Field(1, ge=1, le=10)


class KafkaSettings(BaseSettings):
    """Where the Python sink (and anything else reading Kafka from this machine) connects."""

    model_config = SettingsConfigDict(**_COMMON, env_prefix="KAFKA_")

    bootstrap_servers: str = Field(
        f"127.0.0.1:{KAFKA_PORT}", min_length=1, description="host:port[,host:port]"
    )


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(**_COMMON, env_prefix="LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class Settings:
    """Everything the producer needs, validated together."""

    def __init__(
        self,
        postgres: PostgresSettings,
        binance: BinanceSettings,
        universe: UniverseSettings,
        jobs: JobSettings,
        log: LogSettings,
        spool: SpoolSettings,
        ingest: IngestSettings = REST_MODE,
    ) -> None:
        self.postgres = postgres
        self.binance = binance
        self.universe = universe
        self.jobs = jobs
        self.log = log
        self.spool = spool
        self.ingest = ingest

    def conninfo(self) -> str:
        return self.postgres.conninfo()


_SECRET_FIELDS = {"password", "api_key", "api_secret"}


# The only settings without a default are passwords (.env.example, README Security).
_MISSING_HINT = (
    "set it in .env or the environment (`make demo` / `make up` generate the "
    "passwords into .env on the first start)"
)


def _describe(model: type[BaseSettings], err: ValidationError) -> str:
    prefix = model.model_config.get("env_prefix", "")
    lines = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else "?"
        var = f"{prefix}{field}".upper()
        if e["type"] == "missing":
            lines.append(f"{var} is not set: {_MISSING_HINT}")
            continue
        secret = field in _SECRET_FIELDS or field.endswith("password")
        value = "<hidden>" if secret else repr(e.get("input"))
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{var}={value} is not allowed: {msg}")
    return "\n".join(lines)


def load(model: type[BaseSettings], **overrides: Any):
    """Build one settings class, turning validation errors into :class:`ConfigError`."""
    try:
        return model(**overrides)
    except ValidationError as err:
        raise ConfigError(_describe(model, err)) from None


def load_settings(env_file: str | None = ".env") -> Settings:
    """Read and validate every producer setting.

    Raises :class:`ConfigError` listing every problem found, not only the first."""
    parts: dict[str, Any] = {}
    problems: list[str] = []
    classes = {
        "postgres": PostgresSettings,
        "binance": BinanceSettings,
        "universe": UniverseSettings,
        "jobs": JobSettings,
        "log": LogSettings,
        "spool": SpoolSettings,
        "ingest": IngestSettings,
    }
    for key, model in classes.items():
        try:
            parts[key] = load(model, _env_file=env_file)
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError("\n".join(problems))
    return Settings(**parts)


def postgres_conninfo(env_file: str | None = ".env") -> str:
    """Conninfo for the configured Postgres (POSTGRES_* variables and .env)."""
    return load(PostgresSettings, _env_file=env_file).conninfo()
