"""Grafana in native mode: the same provisioning as compose, on port 3001, only if installed.

Grafana is optional here. When no ``grafana`` / ``grafana-server`` binary is on the PATH
(or at the Debian package's /usr/sbin path), :meth:`Grafana.start` returns a one-line
"not installed" note instead of failing, so ``make up`` goes on without it. Install it from
Grafana's own apt repository (docs/dashboards.md).

Everything Grafana writes stays under ``.stack/``: its database and plugins in
``.stack/data/grafana``, its log in ``.stack/logs``. Provisioning is read from the checkout
(``dashboard/provisioning``), and the dashboard provider's ``${GRAFANA_DASHBOARDS_DIR}``
points at ``dashboard/dashboards``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from stack.services.base import Component, connection_env, http_json, own
from stack.settings import REPO_ROOT

CASSANDRA_PLUGIN = "hadesarchitect-cassandra-datasource"
PROVISIONING_DIR = REPO_ROOT / "dashboard" / "provisioning"
DASHBOARDS_DIR = REPO_ROOT / "dashboard" / "dashboards"
NOT_INSTALLED = (
    "not installed (optional; see docs/dashboards.md to install grafana from apt.grafana.com)"
)


def find_binary() -> list[str] | None:
    """argv prefix of the Grafana server: ``grafana server`` (10+) or ``grafana-server``."""
    for name in ("grafana", "/usr/sbin/grafana"):
        path = shutil.which(name)
        if path:
            return [path, "server"]
    for name in ("grafana-server", "/usr/sbin/grafana-server"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


@dataclass
class Grafana(Component):
    name: str = "grafana"
    start_timeout: float = 90.0

    @property
    def port(self) -> int:
        return self.settings.grafana_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.settings.data_dir / "grafana"

    def installed(self) -> bool:
        return find_binary() is not None

    def environment(self) -> dict[str, str]:
        """What Grafana and its provisioning files (``${VAR}``) read."""
        s = self.settings
        return {
            "GF_PATHS_PROVISIONING": str(PROVISIONING_DIR),
            "GF_PATHS_DATA": str(self.data),
            "GF_PATHS_LOGS": str(s.log_dir),
            "GF_PATHS_PLUGINS": str(self.data / "plugins"),
            "GF_SERVER_HTTP_ADDR": "127.0.0.1",
            "GF_SERVER_HTTP_PORT": str(self.port),
            "GF_LOG_MODE": "console",
            "GF_SECURITY_ADMIN_PASSWORD": s.grafana_admin_password.get_secret_value(),
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            # Grafana 11+ installs it on start (needs grafana.com); otherwise see the docs.
            "GF_PLUGINS_PREINSTALL": CASSANDRA_PLUGIN,
            "GRAFANA_DASHBOARDS_DIR": str(DASHBOARDS_DIR),
            "CASSANDRA_KEYSPACE": s.cassandra_keyspace,
            # Where the stores are, and the read-only logins (datasources.yaml).
            **connection_env(s),
            "POSTGRES_READER_USER": s.postgres_reader_user,
            "POSTGRES_READER_PASSWORD": s.postgres_reader_password.get_secret_value(),
            "CASSANDRA_READER_USER": s.cassandra_reader_user,
            "CASSANDRA_READER_PASSWORD": s.cassandra_reader_password.get_secret_value(),
        }

    def argv(self) -> list[str]:
        binary = find_binary()
        if binary is None:
            raise FileNotFoundError("grafana is not installed")
        argv = list(binary)
        home = self.settings.grafana_home
        if home.exists():
            argv += ["--homepath", str(home)]
        return argv

    def launch(self) -> int:
        (self.data / "plugins").mkdir(parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        own(self.settings, self.data, recursive=True)
        return self.detach(self.argv(), self.log_file, env=self.environment())

    def start(self) -> str:
        if not self.installed():
            return NOT_INSTALLED
        return super().start()

    def _health(self) -> dict:
        return http_json(f"{self.url}/api/health")  # type: ignore[return-value]

    def healthy(self) -> bool:
        return self._health().get("database") == "ok"

    def version(self) -> str:
        return str(self._health().get("version", "unknown"))
