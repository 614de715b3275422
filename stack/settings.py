"""Every setting of the native stack, declared once with its default.

pydantic-settings, as in ``capstock.config``: each field is one environment variable
(``postgres_port`` is POSTGRES_PORT; the ``STACK_*`` ones say so), read from the
process environment, else from the repository's ``.env`` (whatever the working
directory), else the default here. An empty value counts as unset. The same names
configure the producer, the connectors and both modes (README, Configuration).

Passwords are :class:`~pydantic.SecretStr`, so no repr, traceback or log shows them,
and have no default: one nobody set is generated into ``.env`` on first use
(stack/secrets.py), which prints::

    stack: generated POSTGRES_PASSWORD into /repo/.env (mode 600)

A value that does not validate stops the program with the variable, what is wrong and
where to fix it, never a traceback (:class:`SettingsError`, a ``SystemExit``)::

    stack: KAFKA_PORT='29o92' is not allowed: Input should be a valid integer, unable
    to parse string as an integer; fix it in /repo/.env or the environment (README,
    Configuration)

The classes:

- :class:`PostgresLogins` and :class:`CassandraLogins`: where each store is and its
  login roles. The native stack reads them as part of :class:`StackSettings`;
  compose's init jobs (docker/init) validate their own environment with them
  (:func:`load_from`), so both modes share these defaults.
- :class:`PipelineSettings`: the pipeline's choices, no password, cheap to read anywhere.
- :class:`StackSettings`: all of the above, plus directories, the other ports, heaps,
  the JMX login and Grafana.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from capstock import config as defaults
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stack import secrets
from stack.secrets import ENV_FILE, parse_env

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "versions.env"

Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(min_length=1)]
# A JVM heap size as -Xmx takes it: 512m, 1g.
Heap = Annotated[str, Field(pattern=r"^[0-9]+[kKmMgG]?$")]

_MODEL = ConfigDict(frozen=True, validate_default=True)
_SETTINGS = SettingsConfigDict(
    env_file=ENV_FILE,
    env_file_encoding="utf-8",
    env_ignore_empty=True,
    extra="ignore",
    case_sensitive=False,
    frozen=True,
    validate_default=True,
)
FIX_HINT = f"fix it in {ENV_FILE} or the environment (README, Configuration)"
# docker/init: the init jobs get their settings from .env through compose.
COMPOSE_FIX_HINT = "fix it in .env, then run `docker compose up -d` again"

Model = TypeVar("Model", bound=BaseModel)


class SettingsError(SystemExit):
    """A setting the stack cannot use; ``str()`` names the variable and the fix.

    A SystemExit: uncaught, Python prints the message (no traceback) and exits 1.
    """

    def __str__(self) -> str:
        return str(self.code)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (comments and blank lines ignored)."""
    return parse_env(path.read_text()) if path.exists() else {}


def versions() -> dict[str, str]:
    """The pinned component versions from versions.env."""
    return read_env_file(VERSIONS_FILE)


def dotenv() -> dict[str, str]:
    """Everything the repository's .env sets (passwords included)."""
    return read_env_file(ENV_FILE)


def dotenv_settings() -> dict[str, str]:
    """Everything in .env except passwords: our processes do not read .env themselves."""
    return {k: v for k, v in dotenv().items() if not k.endswith("_PASSWORD")}


def ensure_secrets() -> list[str]:
    """Generate the passwords nobody set yet into .env (first start); see stack/secrets.py."""
    return secrets.ensure_secrets(ENV_FILE)


def secret(name: str) -> str:
    """A password: set by the user, else generated into .env on first use (no default)."""
    value = os.environ.get(name) or dotenv().get(name)
    if not value:
        for generated in ensure_secrets():
            print(f"stack: generated {generated} into {ENV_FILE} (mode 600)")
        value = dotenv().get(name)
    if not value:
        raise SettingsError(f"stack: {name} is not set; set it in {ENV_FILE}")
    return value


# -- the logins, shared with compose's init jobs ------------------------------------------------


class PostgresLogins(BaseModel):
    """Where Postgres is, its database, and the pipeline's three login roles.

    None is a superuser: the producer's owns the tables, Debezium's may replicate,
    Grafana's only reads (stack.roles creates them, natively and in compose).
    """

    model_config = _MODEL

    postgres_host: Name = "127.0.0.1"
    postgres_port: Port = defaults.POSTGRES_PORT
    postgres_db: Name = defaults.POSTGRES_DB
    postgres_user: Name = defaults.PIPELINE_ROLE
    postgres_password: SecretStr
    postgres_cdc_user: Name = defaults.CDC_ROLE
    postgres_cdc_password: SecretStr
    postgres_reader_user: Name = defaults.READER_ROLE
    postgres_reader_password: SecretStr


class PostgresInitLogins(PostgresLogins):
    """Compose's postgres-init: the pipeline's logins plus the image superuser's password.

    Natively the superuser logs in through the stack's private socket, with no password.
    """

    postgres_admin_password: SecretStr


class CassandraLogins(BaseModel):
    """Where Cassandra is, and the administrator (replaces the built-in superuser),
    the sink's and Grafana's login roles."""

    model_config = _MODEL

    # Contact point(s), comma-separated.
    cassandra_host: Name = "127.0.0.1"
    cassandra_port: Port = defaults.CASSANDRA_PORT
    # The data-center name the native node announces (cassandra.yaml's snitch default);
    # compose names its node's data center after it.
    cassandra_datacenter: Name = defaults.CASSANDRA_DATACENTER
    cassandra_admin_user: Name = defaults.CASSANDRA_ADMIN_ROLE
    cassandra_admin_password: SecretStr
    cassandra_user: Name = defaults.PIPELINE_ROLE
    cassandra_password: SecretStr
    cassandra_reader_user: Name = defaults.READER_ROLE
    cassandra_reader_password: SecretStr


# -- the native stack ---------------------------------------------------------------------------


class PipelineSettings(BaseSettings):
    """What `python -m stack pipeline` runs; no password, so cheap to read anywhere."""

    model_config = _SETTINGS

    # Which process writes Cassandra; stack.pipeline.sink_choice checks it (with the other
    # settings, before anything starts) against stack.pipeline.SINKS.
    cassandra_sink: str = "datastax"
    simulator_port: Port = defaults.SIMULATOR_PORT
    # The demo's streams port, passed explicitly so the simulator never moves it to a free
    # one (it does when the default, the API port + 1, is taken and nobody asked for it).
    simulator_ws_port: Port | None = None

    @property
    def simulator_streams_port(self) -> int:
        return self.simulator_ws_port or self.simulator_port + 1

    def __init__(self, **values: Any) -> None:
        """Keyword arguments by attribute name (``home=``) as well as by variable name."""
        for name, field in type(self).model_fields.items():
            if name in values and isinstance(field.validation_alias, str):
                values[field.validation_alias] = values.pop(name)
        try:
            super().__init__(**values)
        except ValidationError as err:
            lines = describe(type(self), err).splitlines()
            raise SettingsError("\n".join(f"stack: {line}" for line in lines)) from None


class StackSettings(PipelineSettings, CassandraLogins, PostgresLogins):
    """Directories, ports, logins and heaps of the native stack."""

    model_config = _SETTINGS

    home: Path = Field(REPO_ROOT / ".stack", validation_alias="STACK_HOME")
    # Started as root, every service runs as this unprivileged system user instead
    # (PostgreSQL even refuses root).
    os_user: Name = Field("capstock", validation_alias="STACK_OS_USER")
    kafka_port: Port = defaults.KAFKA_PORT
    kafka_controller_port: Port = 29093
    connect_port: Port = 8083
    cassandra_storage_port: Port = 7000
    cassandra_jmx_port: Port = 7199
    cassandra_jmx_user: Name = "cap_stock_jmx"
    cassandra_jmx_password: SecretStr
    cassandra_keyspace: Name = defaults.KEYSPACE
    kafka_heap: Heap = Field("384m", validation_alias="STACK_KAFKA_HEAP")
    connect_heap: Heap = Field("512m", validation_alias="STACK_CONNECT_HEAP")
    grafana_port: Port = 3001
    # Grafana's --homepath, when it exists (the Debian package's by default).
    grafana_home: Path = Path("/usr/share/grafana")
    grafana_admin_password: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _generate_missing_passwords(cls, data: Any) -> Any:
        """Runs before validation, on what the environment and .env set: a password
        nobody set is generated into .env now (the first start)."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if field.annotation is SecretStr and not data.get(name):
                    data[name] = secret(env_name(cls, name))
        return data

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
            f"user={self.postgres_user} password={self.postgres_password.get_secret_value()} "
            "connect_timeout=5"
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


# -- names and errors ---------------------------------------------------------------------------


def env_name(model: type[BaseModel], field: str) -> str:
    """The environment variable of a field: its alias, else its name in upper case."""
    alias = model.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field.upper()


def variable_names(model: type[BaseModel] = StackSettings) -> list[str]:
    """Every environment variable ``model`` reads."""
    return [env_name(model, field) for field in model.model_fields]


def describe(model: type[BaseModel], err: ValidationError, hint: str = FIX_HINT) -> str:
    """One line per rejected variable: its value (never a password's), why, and the fix."""
    lines = []
    for e in err.errors():
        field = str(e["loc"][0]) if e["loc"] else "?"
        variable = env_name(model, field) if field in model.model_fields else field.upper()
        if e["type"] == "missing":
            lines.append(f"{variable} is not set; {hint}")
            continue
        secret_value = field.endswith("password")
        value = "<hidden>" if secret_value else repr(e.get("input"))
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{variable}={value} is not allowed: {msg}; {hint}")
    return "\n".join(lines)


def load_from(model: type[Model], environ: Mapping[str, str], hint: str = FIX_HINT) -> Model:
    """A plain model (the logins) from ``environ`` alone, no .env and no password generated:
    compose's init jobs, which get exactly their environment. Raises :class:`SettingsError`
    (no prefix: the caller names itself)."""
    values = {
        field: environ[variable]
        for field in model.model_fields
        if environ.get(variable := env_name(model, field))
    }
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise SettingsError(describe(model, err, hint)) from None
