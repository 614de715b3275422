"""The pipeline's own processes on top of the native stack: simulator, sink, producer.

`python -m stack pipeline --source demo|live` brings up the stack, applies both
schemas, registers the connectors through connect_connectors.sh (the Debezium source
and, by default, the Cassandra sink: our Connect adapter around the DataStax sink
engine), and starts the producer, all in the background.

CASSANDRA_SINK=python selects the alternative sink instead: `cap-stock-sink`, one
Python process reading the same register_cassandra.json with its own consumer group.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stack.connect_api import delete_connector
from stack.process import StackError, port_open, start_detached, write_json_atomic
from stack.services import Component, Connect, Grafana, all_components
from stack.settings import (
    REPO_ROOT,
    PipelineSettings,
    StackSettings,
    dotenv_settings,
    variable_names,
)

BIN = Path(sys.executable).parent
SOURCE_CONFIG = REPO_ROOT / "register-postgres.json"
SINK_CONFIG = REPO_ROOT / "register_cassandra.json"
# CASSANDRA_SINK: which process writes Cassandra.
SINKS = {
    "datastax": "the DataStax sink engine inside Kafka Connect (default)",
    "python": "cap-stock-sink, the Python alternative",
}


def pipeline_env(settings: StackSettings) -> dict[str, str]:
    """Environment for our processes (producer, sink, simulator): the same names the
    connectors use, with the producer's and the sink's logins (not the admin's)."""
    s = settings
    return {
        **dotenv_settings(),
        **Connect(settings).worker_env(),
        "POSTGRES_USER": s.postgres_user,
        "POSTGRES_PASSWORD": s.postgres_password.get_secret_value(),
        "POSTGRES_READER_USER": s.postgres_reader_user,
        "CASSANDRA_READER_USER": s.cassandra_reader_user,
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
        "CONNECT_URL": s.connect_url,
        "PRODUCER_SPOOL_DIR": str(s.spool_dir),
    }


def admin_env(settings: StackSettings) -> dict[str, str]:
    """For `cap-stock cassandra-setup` only: it creates the keyspace and grants."""
    return {
        "CASSANDRA_ADMIN_USER": settings.cassandra_admin_user,
        "CASSANDRA_ADMIN_PASSWORD": settings.cassandra_admin_password.get_secret_value(),
    }


@dataclass
class PipelineProcess(Component):
    """A Python process of ours: healthy while alive (plus an optional readiness check)."""

    argv: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    # The settings (variable prefixes) the process reads: a change restarts it.
    reads: tuple[str, ...] = ("",)
    start_timeout: float = 30.0
    stop_timeout: float = 30.0

    @property
    def port(self) -> int:
        return 0

    def launch(self) -> int:
        env = {**pipeline_env(self.settings), **self.extra_env}
        pid = self.detach(self.argv, self.log_file, env=env)
        write_json_atomic(self.spec_file, self.spec())
        return pid

    def healthy(self) -> bool:
        return self.pid() is not None

    def version(self) -> str:
        return "-"

    @property
    def spec_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.spec.json"

    def spec(self) -> dict[str, str]:
        """What the process is started with: its command and settings (passwords hashed)."""
        from capstock.variables import known_names

        known = known_names(variable_names())
        values = {k: v for k, v in os.environ.items() if k in known}
        values.update({**pipeline_env(self.settings), **self.extra_env})
        return {"command": " ".join(self.argv)} | {
            name: shown(name, value)
            for name, value in sorted(values.items())
            if name.startswith(self.reads)
        }

    def changes(self) -> list[str]:
        """How the running process's spec differs from what a start now would give it."""
        try:
            before = json.loads(self.spec_file.read_text())
        except (OSError, ValueError):
            return []  # started before specs were kept: leave it alone
        now = self.spec()
        return [
            name
            if name.endswith(SECRET_SUFFIXES)
            else f"{name} {before.get(name, '(unset)')!r} -> {now.get(name, '(unset)')!r}"
            for name in sorted(set(before) | set(now))
            if before.get(name) != now.get(name)
        ]

    def start(self) -> str:
        """Start; a running process started with other settings is restarted (and says why)."""
        if self.pid():
            changed = self.changes()
            if not changed:
                return "already running"
            self.stop()
            return f"restarted (pid {self.launch_and_wait()}), changed: {'; '.join(changed)}"
        return f"started (pid {self.launch_and_wait()})"


@dataclass
class Simulator(PipelineProcess):
    name: str = "simulator"

    @property
    def port(self) -> int:
        return self.settings.simulator_port

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def state_dir(self) -> Path:
        """Where it keeps its market between runs, so `make down` then `make demo`
        continues the trade ids instead of jumping (capstock.simulator.state)."""
        return self.settings.data_dir / "simulator"

    def __post_init__(self) -> None:
        self.argv = [
            str(BIN / "cap-stock"),
            "simulator",
            "--port",
            str(self.port),
            "--ws-port",
            str(self.settings.simulator_streams_port),
            "--state-dir",
            str(self.state_dir),
        ]
        self.reads = ("SIMULATOR_",)

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.api_url}/v3/ping", timeout=2) as resp:
            return resp.status == 200

    def stream_url(self) -> str:
        """Its websocket streams' base, for the producer's INGEST_STREAM_URL (the port it
        is started with: SIMULATOR_WS_PORT, by default the API port + 1)."""
        return f"ws://127.0.0.1:{self.settings.simulator_streams_port}"


SECRET_SUFFIXES = ("_PASSWORD", "_SECRET", "_KEY")


def shown(name: str, value: str) -> str:
    """A setting as kept in a spec file: secrets only as a digest."""
    if name.endswith(SECRET_SUFFIXES):
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return value


def sink_choice() -> str:
    choice = PipelineSettings().cassandra_sink
    if choice not in SINKS:
        allowed = "; ".join(f"{name} = {what}" for name, what in SINKS.items())
        raise StackError(f"CASSANDRA_SINK={choice!r} is not a sink. Allowed: {allowed}")
    return choice


def sink_connector_name() -> str:
    return json.loads(SINK_CONFIG.read_text())["name"]


@dataclass
class PythonSink(PipelineProcess):
    name: str = "python-sink"

    def __post_init__(self) -> None:
        self.argv = [str(BIN / "cap-stock-sink"), "--config", str(SINK_CONFIG)]
        self.reads = ("KAFKA_", "CASSANDRA_", "LOG_")


@dataclass
class Producer(PipelineProcess):
    """`cap-stock run`: polling or, with INGEST_MODE=stream (.env or the environment),
    streaming. With the simulator (``--source demo``) both its REST API and its streams."""

    name: str = "producer"
    api_url: str | None = None
    stream_url: str | None = None

    def __post_init__(self) -> None:
        self.argv = [str(BIN / "cap-stock"), "run"]
        self.reads = (
            "POSTGRES_",
            "BINANCE_",
            "UNIVERSE_",
            "JOB_",
            "LOG_",
            "PRODUCER_",
            "INGEST_",
        )
        if self.api_url:
            self.extra_env = {"BINANCE_API_URL": self.api_url}
        if self.stream_url:
            self.extra_env["INGEST_STREAM_URL"] = self.stream_url


@dataclass
class SupervisorProcess(PipelineProcess):
    """`python -m stack supervise --foreground`: restarts what crashed (stack/supervisor.py).

    It runs as the runner's own user, not the service user: a restart does what `make up`
    does (runuser, chown).
    """

    name: str = "supervisor"
    source: str = "demo"

    def __post_init__(self) -> None:
        command = ["supervise", "--foreground", "--source", self.source]
        self.argv = [sys.executable, "-m", "stack", *command]
        self.extra_env = {"PYTHONPATH": str(REPO_ROOT)}

    def launch(self) -> int:
        env = {**pipeline_env(self.settings), **self.extra_env}
        return start_detached(self.argv, self.log_file, self.pid_file, env=env)


def pipeline_components(settings: StackSettings) -> list[PipelineProcess]:
    """Every pipeline process (for status and down), in start order."""
    return [Simulator(settings), PythonSink(settings), Producer(settings)]


def run_step(
    what: str, argv: list[str], settings: StackSettings, extra: dict[str, str] | None = None
) -> None:
    print(f"{what} ...", flush=True)
    env = {**os.environ, **pipeline_env(settings), **(extra or {})}
    result = subprocess.run(argv, env=env, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode})")


def prepare(settings: StackSettings, sink: str) -> None:
    """Schemas in both stores, then the connectors (the sink connector only for datastax)."""
    run_step("postgres schema", [str(BIN / "cap-stock"), "init-db"], settings)
    run_step(
        "cassandra schema",
        [str(BIN / "cap-stock"), "cassandra-setup"],
        settings,
        admin_env(settings),
    )
    files = [SOURCE_CONFIG, SINK_CONFIG] if sink == "datastax" else [SOURCE_CONFIG]
    run_step(
        "connectors",
        ["bash", str(REPO_ROOT / "connect_connectors.sh"), *map(str, files)],
        settings,
    )


def start_sink(settings: StackSettings, sink: str) -> None:
    """Exactly one sink writes Cassandra: stop the one not chosen."""
    python_sink = PythonSink(settings)
    if sink == "datastax":
        if python_sink.pid():
            print(f"python-sink: {python_sink.stop()} (CASSANDRA_SINK=datastax)", flush=True)
        return
    delete_connector(settings.connect_url, sink_connector_name())
    print(f"python-sink: {python_sink.start()}", flush=True)


def up(settings: StackSettings, source: str) -> None:
    sink = sink_choice()
    prepare(settings, sink)
    start_sink(settings, sink)
    api_url = stream_url = None
    simulator = Simulator(settings)
    if source == "demo":
        if simulator.pid() is None:
            streams = settings.simulator_streams_port
            for port, name in ((simulator.port, "SIMULATOR_PORT"), (streams, "SIMULATOR_WS_PORT")):
                if port_open(port):
                    raise StackError(f"simulator: port {port} is taken; set {name}")
        print(f"simulator: {simulator.start()} at {simulator.api_url}", flush=True)
        api_url, stream_url = simulator.api_url, simulator.stream_url()
    elif simulator.pid():
        print(f"simulator: {simulator.stop()} (not used with --source live)", flush=True)
    producer = Producer(settings, api_url=api_url, stream_url=stream_url)
    print(f"producer: {producer.start()}", flush=True)
    print(f"grafana: {Grafana(settings).start()}", flush=True)
    forget_dead_processes(settings)
    # Last, so it only ever restarts what came up healthy; restarted to pick up `source`.
    supervisor = SupervisorProcess(settings, source=source)
    supervisor.stop()
    print(f"supervisor: {supervisor.start()}, log {supervisor.log_file}", flush=True)


def forget_dead_processes(settings: StackSettings) -> list[str]:
    """Remove pid files of pipeline processes that are not running; returns their names.

    Such a file is left by a process that died before this run (the python sink under
    CASSANDRA_SINK=datastax, the simulator under live): it is not part of this run, and
    the supervisor would otherwise bring it back.
    """
    forgotten = []
    for stale in (*pipeline_components(settings), Grafana(settings)):
        if stale.pid_file.exists() and stale.pid() is None:
            stale.pid_file.unlink(missing_ok=True)
            forgotten.append(stale.name)
    return forgotten


def everything(settings: StackSettings) -> list[Component]:
    """In start order; `down` stops them in reverse, so the supervisor goes first."""
    return [
        *all_components(settings),
        *pipeline_components(settings),
        Grafana(settings),
        SupervisorProcess(settings),
    ]
