"""Where the native stack lives and which ports it uses.

Every value can be overridden from the environment (or `.env`), so the same
names configure the producer, the connectors and the stack.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "versions.env"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (comments and blank lines ignored)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def versions() -> dict[str, str]:
    """The pinned component versions from versions.env."""
    return read_env_file(VERSIONS_FILE)


def env(name: str, default: str) -> str:
    return os.environ.get(name) or _DOTENV.get(name) or default


def env_int(name: str, default: int) -> int:
    raw = env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"stack: {name}={raw!r} is not a port number") from None


_DOTENV = read_env_file(REPO_ROOT / ".env")


@dataclass(frozen=True)
class StackSettings:
    """Directories, ports and credentials of the native stack."""

    home: Path = field(default_factory=lambda: Path(env("STACK_HOME", str(REPO_ROOT / ".stack"))))
    postgres_port: int = field(default_factory=lambda: env_int("POSTGRES_PORT", 5432))
    postgres_db: str = field(default_factory=lambda: env("POSTGRES_DB", "cap_stock_db"))
    postgres_user: str = field(default_factory=lambda: env("POSTGRES_USER", "cap_stock"))
    postgres_password: str = field(default_factory=lambda: env("POSTGRES_PASSWORD", "cap_stock"))
    # PostgreSQL refuses to run as root; as root we run it as this system user.
    postgres_os_user: str = field(
        default_factory=lambda: env("STACK_POSTGRES_OS_USER", "capstock")
    )
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
    cassandra_user: str = field(default_factory=lambda: env("CASSANDRA_USER", "cap_stock"))
    cassandra_password: str = field(default_factory=lambda: env("CASSANDRA_PASSWORD", "cap_stock"))
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
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def classpath_dir(self) -> Path:
        return self.home / "classpath"

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

    def postgres_runs_as(self) -> str | None:
        """The OS user to run Postgres as, or None to run as ourselves."""
        if os.geteuid() != 0:
            return None
        return self.postgres_os_user

    def postgres_uid_gid(self) -> tuple[int, int] | None:
        user = self.postgres_runs_as()
        if user is None:
            return None
        entry = pwd.getpwnam(user)
        return entry.pw_uid, entry.pw_gid
