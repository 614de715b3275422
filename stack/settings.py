"""Where the native stack lives and which ports it uses.

Every value can be overridden from the environment (or `.env`), so the same
names configure the producer, the connectors and the stack.
"""

from __future__ import annotations

import functools
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack import secrets
from stack.secrets import ENV_FILE, parse_env

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "versions.env"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (comments and blank lines ignored)."""
    return parse_env(path.read_text()) if path.exists() else {}


def versions() -> dict[str, str]:
    """The pinned component versions from versions.env."""
    return read_env_file(VERSIONS_FILE)


def env(name: str, default: str) -> str:
    return os.environ.get(name) or _dotenv().get(name) or default


@functools.cache
def _dotenv() -> dict[str, str]:
    return read_env_file(ENV_FILE)


def dotenv_settings() -> dict[str, str]:
    """Everything in .env except passwords: our processes do not read .env themselves."""
    return {k: v for k, v in _dotenv().items() if not k.endswith("_PASSWORD")}


def ensure_secrets() -> list[str]:
    """Generate the passwords nobody set yet into .env (first start); see stack/secrets.py."""
    generated = secrets.ensure_secrets()
    _dotenv.cache_clear()
    return generated


def secret_field(name: str) -> Any:
    """A password field: generated on first use, and kept out of repr() (tracebacks, logs)."""
    return field(default_factory=lambda: secret(name), repr=False)


def secret(name: str) -> str:
    """A password: set by the user, else generated into .env on first use (no default)."""
    value = env(name, "")
    if not value:
        for generated in ensure_secrets():
            print(f"stack: generated {generated} into {ENV_FILE} (mode 600)")
        value = env(name, "")
    if not value:
        raise SystemExit(f"stack: {name} is not set; set it in {ENV_FILE}")
    return value


def env_int(name: str, default: int) -> int:
    raw = env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"stack: {name}={raw!r} is not a port number") from None


@dataclass(frozen=True)
class StackSettings:
    """Directories, ports and credentials of the native stack."""

    home: Path = field(default_factory=lambda: Path(env("STACK_HOME", str(REPO_ROOT / ".stack"))))
    postgres_port: int = field(default_factory=lambda: env_int("POSTGRES_PORT", 5432))
    postgres_db: str = field(default_factory=lambda: env("POSTGRES_DB", "cap_stock_db"))
    # The roles (see .env.example): producer, Debezium, Grafana. No superuser among them.
    postgres_user: str = field(default_factory=lambda: env("POSTGRES_USER", "cap_stock"))
    postgres_password: str = secret_field("POSTGRES_PASSWORD")
    postgres_cdc_user: str = field(
        default_factory=lambda: env("POSTGRES_CDC_USER", "cap_stock_cdc")
    )
    postgres_cdc_password: str = secret_field("POSTGRES_CDC_PASSWORD")
    postgres_reader_user: str = field(
        default_factory=lambda: env("POSTGRES_READER_USER", "cap_stock_reader")
    )
    postgres_reader_password: str = secret_field("POSTGRES_READER_PASSWORD")
    # Started as root, every service runs as this unprivileged system user instead
    # (PostgreSQL even refuses root).
    os_user: str = field(default_factory=lambda: env("STACK_OS_USER", "capstock"))
    kafka_port: int = field(default_factory=lambda: env_int("KAFKA_PORT", 29092))
    kafka_controller_port: int = field(
        default_factory=lambda: env_int("KAFKA_CONTROLLER_PORT", 29093)
    )
    connect_port: int = field(default_factory=lambda: env_int("CONNECT_PORT", 8083))
    cassandra_port: int = field(default_factory=lambda: env_int("CASSANDRA_PORT", 9042))
    cassandra_storage_port: int = field(
        default_factory=lambda: env_int("CASSANDRA_STORAGE_PORT", 7000)
    )
    cassandra_jmx_port: int = field(default_factory=lambda: env_int("CASSANDRA_JMX_PORT", 7199))
    cassandra_admin_user: str = field(
        default_factory=lambda: env("CASSANDRA_ADMIN_USER", "cap_stock_admin")
    )
    cassandra_admin_password: str = secret_field("CASSANDRA_ADMIN_PASSWORD")
    cassandra_user: str = field(default_factory=lambda: env("CASSANDRA_USER", "cap_stock"))
    cassandra_password: str = secret_field("CASSANDRA_PASSWORD")
    cassandra_reader_user: str = field(
        default_factory=lambda: env("CASSANDRA_READER_USER", "cap_stock_reader")
    )
    cassandra_reader_password: str = secret_field("CASSANDRA_READER_PASSWORD")
    cassandra_jmx_user: str = field(
        default_factory=lambda: env("CASSANDRA_JMX_USER", "cap_stock_jmx")
    )
    cassandra_jmx_password: str = secret_field("CASSANDRA_JMX_PASSWORD")
    # The data-center name the native node announces (cassandra.yaml's snitch default).
    cassandra_datacenter: str = field(
        default_factory=lambda: env("CASSANDRA_DATACENTER", "datacenter1")
    )
    kafka_heap: str = field(default_factory=lambda: env("STACK_KAFKA_HEAP", "384m"))
    connect_heap: str = field(default_factory=lambda: env("STACK_CONNECT_HEAP", "512m"))

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def spool_dir(self) -> Path:
        """Rows the producer could not store yet (Postgres away), replayed on its next start."""
        return self.home / "spool"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def classpath_dir(self) -> Path:
        """The runner's classpaths, written by stack/fetch.sh (and its stamp, .fetched)."""
        return self.home / "classpath"

    @property
    def lib_dir(self) -> Path:
        """The classpaths' jars, copied from ~/.m2 by stack/fetch.sh: services cannot read /root."""
        return self.home / "lib"

    @property
    def build_dir(self) -> Path:
        """Maven's output: the Cassandra sink plugin's classes and jar, the plugins' classpaths."""
        return self.home / "build"

    def stack_dirs(self) -> tuple[Path, ...]:
        """The directories the runner and stack/fetch.sh write in home (`make clean` wipes them)."""
        return (
            self.data_dir,
            self.log_dir,
            self.run_dir,
            self.spool_dir,
            self.conf_dir,
            self.classpath_dir,
            self.lib_dir,
            self.build_dir,
        )

    @property
    def plugin_dir(self) -> Path:
        return REPO_ROOT / "plugins"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://127.0.0.1:{self.connect_port}"

    @property
    def postgres_bin(self) -> Path:
        return Path(f"/usr/lib/postgresql/{versions()['POSTGRES_MAJOR']}/bin")

    def postgres_conninfo(self, dbname: str | None = None) -> str:
        return (
            f"host=127.0.0.1 port={self.postgres_port} dbname={dbname or self.postgres_db} "
            f"user={self.postgres_user} password={self.postgres_password} connect_timeout=5"
        )

    def runs_as(self) -> str | None:
        """The OS user services run as, or None to run them as ourselves (not root)."""
        if os.geteuid() != 0:
            return None
        return self.os_user

    def service_uid_gid(self) -> tuple[int, int] | None:
        user = self.runs_as()
        if user is None:
            return None
        entry = pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
