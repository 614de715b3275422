"""What every service of the native stack shares: a pid file, a log file, a detached start
as the unprivileged service user, a bounded wait until healthy, a stop by pid.

Each start is idempotent (a healthy component is left alone) and every wait is
bounded; on failure the error carries the tail of that component's log. A service
module (postgres, kafka, connect, cassandra, grafana) subclasses :class:`Component`
and fills in ``port``, ``launch``, ``healthy`` and ``version``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from string import Template

from stack.process import (
    StackError,
    pid_alive,
    port_open,
    read_pid,
    start_detached,
    stop_pid,
    wait_until,
)
from stack.settings import REPO_ROOT, StackSettings

STACK_DIR = REPO_ROOT / "stack"


def render(template: Path, target: Path, **values: object) -> Path:
    """Fill ${name} placeholders; Connect's own ${env:...} references pass through."""
    target.parent.mkdir(parents=True, exist_ok=True)
    text = Template(template.read_text()).safe_substitute({k: str(v) for k, v in values.items()})
    target.write_text(text)
    return target


def read_classpath(settings: StackSettings, name: str) -> str:
    path = settings.classpath_dir / f"{name}.txt"
    if not path.exists():
        raise StackError(f"{name}: classpath {path} missing; run `make fetch` first")
    classpath = path.read_text().strip()
    # Services run as an unprivileged user who cannot read root's ~/.m2: fetch.sh
    # copies the jars under .stack/lib.
    if not classpath.startswith(str(settings.lib_dir)):
        raise StackError(f"{name}: classpath {path} predates .stack/lib; run `make fetch`")
    return classpath


def connection_env(settings: StackSettings) -> dict[str, str]:
    """Where the stores are (no credentials): every process gets these."""
    s = settings
    return {
        "POSTGRES_HOST": s.postgres_host,
        "POSTGRES_PORT": str(s.postgres_port),
        "POSTGRES_DB": s.postgres_db,
        "CASSANDRA_HOST": s.cassandra_host,
        "CASSANDRA_PORT": str(s.cassandra_port),
        "CASSANDRA_DATACENTER": s.cassandra_datacenter,
    }


def ensure_service_user(settings: StackSettings) -> None:
    """Create the unprivileged system user services run as (only when we are root)."""
    user = settings.runs_as()
    if user is None:
        return
    try:
        settings.service_uid_gid()
    except KeyError:
        print(f"  stack: creating system user {user!r}: services do not run as root")
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
        )


def own(settings: StackSettings, *paths: Path, recursive: bool = False) -> None:
    """Hand paths to the service user (a no-op unless we are root)."""
    ids = settings.service_uid_gid()
    if ids is None:
        return
    for path in paths:
        if recursive and path.is_dir() and path.stat().st_uid != ids[0]:
            subprocess.run(["chown", "-R", f"{ids[0]}:{ids[1]}", str(path)], check=True)
        os.chown(path, *ids)


def as_service_user(settings: StackSettings, argv: list[str]) -> list[str]:
    user = settings.runs_as()
    return ["runuser", "-u", user, "--", *argv] if user else argv


def prepare_home(settings: StackSettings) -> None:
    """.stack/: closed to other OS users; data, logs and config owned by the service user."""
    ensure_service_user(settings)
    for path in (settings.data_dir, settings.log_dir, settings.run_dir, settings.conf_dir):
        path.mkdir(parents=True, exist_ok=True)
    settings.spool_dir.mkdir(mode=0o700, exist_ok=True)
    own(settings, settings.spool_dir, recursive=True)
    for path in (
        settings.home,
        settings.data_dir,
        settings.log_dir,
        settings.run_dir,
        settings.conf_dir,
    ):
        path.chmod(0o750)
    ids = settings.service_uid_gid()
    if ids is not None:
        # root keeps .stack and the pid files; the service user's group may enter.
        os.chown(settings.home, 0, ids[1])
        os.chown(settings.run_dir, 0, ids[1])
        own(settings, settings.conf_dir)
        # Older stacks ran everything as root: hand over what they left.
        own(settings, settings.data_dir, settings.log_dir, recursive=True)
        for sub in settings.data_dir.iterdir():
            if sub.name != "postgres":
                own(settings, sub, recursive=True)
        for log in settings.log_dir.iterdir():
            own(settings, log)


def http_json(url: str, timeout: float = 3.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class Component:
    """Shared behaviour: pid file, log file, detached start, stop by pid."""

    settings: StackSettings
    name: str = ""
    start_timeout: float = 120.0
    stop_timeout: float = 60.0
    # Its children lead sessions of their own but belong to it (Postgres's backends).
    forks_sessions: bool = False

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    def port(self) -> int:
        raise NotImplementedError

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid) else None

    def healthy(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def launch(self) -> int:
        raise NotImplementedError

    def start(self) -> str:
        """Start (unless already healthy) and wait until healthy. Returns what happened."""
        if self.pid() and self._quietly_healthy():
            return "already running"
        if self.pid() is None and port_open(self.port):
            raise StackError(
                f"{self.name}: port {self.port} is taken by another process; stop it or set "
                f"the port in .env (see README, Configuration)"
            )
        pid = self.launch_and_wait()
        self.after_healthy()
        return f"started (pid {pid})"

    def launch_and_wait(self) -> int:
        """Launch (unless the process is already there) and wait, bounded, until healthy."""
        pid = self.pid()
        if pid is None:
            prepare_home(self.settings)
            pid = self.launch()
        wait_until(
            self.healthy,
            what=self.name,
            timeout=self.start_timeout,
            log_file=self.log_file,
            pid=pid,
        )
        return pid

    def after_healthy(self) -> None:
        """One-time set-up that needs the service up (users, roles)."""

    def _quietly_healthy(self) -> bool:
        try:
            return self.healthy()
        except Exception:
            return False

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        clean = stop_pid(pid, what=self.name, timeout=self.stop_timeout)
        self.pid_file.unlink(missing_ok=True)
        return "stopped" if clean else "killed"

    @property
    def out_file(self) -> Path:
        """The JVM's stdout/stderr: what it prints before its logging starts (or instead)."""
        return self.log_file.with_suffix(".out")

    def log4j_options(self) -> list[str]:
        """Kafka and Connect: log4j writes and rolls log_file itself (stack/kafka)."""
        return [
            f"-Dlog4j.configuration=file:{STACK_DIR / 'kafka' / 'log4j.properties'}",
            f"-Dstack.log.file={self.log_file}",
        ]

    def java(self, classpath: str, heap: str, main: str, *args: str, opts: list[str]) -> list[str]:
        return ["java", f"-Xms{heap}", f"-Xmx{heap}", *opts, "-cp", classpath, main, *args]

    def detach(self, argv: list[str], log_file: Path, env: dict[str, str] | None = None) -> int:
        """Start argv in the background as the service user (never root).

        Its working directory is .stack/data, not the checkout: the process gets its
        settings from `env`, never by reading .env (mode 600, the secrets).
        """
        return start_detached(
            argv,
            log_file,
            self.pid_file,
            env=env,
            user=self.settings.runs_as(),
            cwd=self.settings.data_dir,
        )


def wipe(settings: StackSettings) -> list[Path]:
    """Delete every directory of the stack, then its home when nothing else is left there.

    Returns what is left: files the stack did not write, which stay (and so does home).
    Raises OSError when a directory of the stack cannot be deleted.
    """
    for path in settings.stack_dirs():
        if path.exists():
            shutil.rmtree(path)
    if not settings.home.exists():
        return []
    left = sorted(settings.home.iterdir())
    if not left:
        settings.home.rmdir()
    return left
