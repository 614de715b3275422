"""The supervisor's decisions, on real (cheap) processes: `sleep` stands in for a service.

What must hold: a process that died is restarted and counted, with the reason; one
stopped on purpose (its pid file removed, as stop() and `make down` do) is not; restarts
of a crash-looping component are spaced 1, 2, 4 ... s up to a cap and the spacing starts
over once it stays up; nothing is restarted while the runner holds the stack lock or
after the supervisor itself was stopped; FAILED connectors are restarted through Connect.
"""

from __future__ import annotations

import contextlib
import http.server
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from stack import pipeline, supervisor
from stack.process import StackError, pid_alive, read_pid, start_detached, write_json_atomic
from stack.services import Postgres
from stack.supervisor import Backoff, Supervisor
from tests.support.http_fakes import JsonHandler


@dataclass
class Fake:
    """A component whose process is `argv`; start() fails if it dies within 0.2 s.

    ``crashes``: the process exits by itself; start() waits for that (bounded, not
    reaping it) so a loaded machine cannot turn a crash into a successful start.
    """

    name: str
    home: Path
    argv: list[str] = field(default_factory=lambda: ["sleep", "60"])
    crashes: bool = False
    starts: int = 0

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.name}.log"

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid) else None

    def start(self) -> str:
        if self.pid():
            return "already running"
        self.starts += 1
        pid = start_detached(self.argv, self.log_file, self.pid_file)
        deadline = time.monotonic() + (10.0 if self.crashes else 0.2)
        while time.monotonic() < deadline and (pid_alive(pid) or not self.crashes):
            time.sleep(0.02)
        if not pid_alive(pid):
            raise StackError(f"{self.name}: process {pid} exited\n(log tail)")
        return f"started (pid {pid})"

    def stop(self) -> None:
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pid_file.unlink(missing_ok=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[list[Fake]]:
    made: list[Fake] = []
    yield made
    for fake in made:
        pid = read_pid(fake.pid_file)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def make(fakes: list[Fake], home: Path, name: str = "svc", **kw) -> Fake:  # type: ignore[no-untyped-def]
    fake = Fake(name, home, **kw)
    fakes.append(fake)
    return fake


def kill(fake: Fake) -> int:
    pid = fake.pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def lines(say: list[str]) -> str:
    return "\n".join(say)


# -- backoff -----------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=1, cap=60, stable_after=120)
    waits = [backoff.attempted(float(t)) for t in range(9)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_backoff_is_not_due_before_the_wait_is_over() -> None:
    backoff = Backoff(initial=1, cap=60, stable_after=120)
    assert backoff.due(0)  # the first restart is immediate
    backoff.attempted(10)
    assert not backoff.due(10.5)
    assert backoff.due(11)
    backoff.attempted(11)
    assert not backoff.due(12.9)
    assert backoff.due(13)


def test_backoff_starts_over_only_after_the_component_stayed_up() -> None:
    backoff = Backoff(initial=1, cap=60, stable_after=120)
    for t in range(5):
        backoff.attempted(float(t))
    backoff.alive(100.0)  # up for 96 s since the last restart: not yet
    assert backoff.attempted(101.0) == 32
    backoff.alive(101.0 + 120)
    assert backoff.due(101.0 + 120)
    assert backoff.attempted(300.0) == 1


# -- restarts ------------------------------------------------------------------------------


def test_a_killed_process_is_restarted_counted_and_logged(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = make(fakes, tmp_path)
    fake.start()
    fake.log_file.write_text("starting\nserving on :1234\n")
    said: list[str] = []
    sup = Supervisor(tmp_path, [fake], confirm_s=0, say=said.append)
    assert sup.tick() == []  # alive: nothing to do
    old = kill(fake)

    assert sup.tick() == ["svc"]

    new = fake.pid()
    assert new and new != old
    state = supervisor.read_state(tmp_path)
    assert supervisor.restarts_of(state, "svc") == 1
    assert state["components"]["svc"]["ok"] is True
    # Our own child: the supervisor reaped it and knows how it ended.
    assert f"pid {old} killed by SIGKILL" in lines(said)
    assert "restart svc #1" in lines(said) and "serving on :1234" in lines(said)
    assert sup.tick() == []


def test_a_process_stopped_on_purpose_is_left_alone(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = make(fakes, tmp_path)
    fake.start()
    sup = Supervisor(tmp_path, [fake], confirm_s=0, say=lambda _: None)
    fake.stop()  # what `make down` does: the pid file goes with the process

    assert sup.tick() == []
    assert fake.pid() is None and fake.starts == 1
    assert supervisor.restarts_of(supervisor.read_state(tmp_path), "svc") == 0


def test_a_stop_in_progress_is_not_mistaken_for_a_crash(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = make(fakes, tmp_path)
    fake.start()
    sup = Supervisor(tmp_path, [fake], confirm_s=0.5, say=lambda _: None)
    kill(fake)  # the process is gone, its stop() removes the pid file a moment later
    threading.Timer(0.1, fake.pid_file.unlink).start()

    assert sup.tick() == []
    assert fake.starts == 1


def test_a_crash_loop_is_retried_with_growing_spacing(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    crash = ["sh", "-c", "echo 'FATAL: data directory is full'; exit 3"]
    fake = make(fakes, tmp_path, argv=crash, crashes=True)
    with pytest.raises(StackError):
        fake.start()
    clock = Clock()
    said: list[str] = []
    sup = Supervisor(tmp_path, [fake], clock=clock, confirm_s=0, say=said.append)
    attempts = []
    for _ in range(80):  # 8 s of ticks, 0.1 s apart
        if sup.tick():
            attempts.append(clock.now - 1000.0)
        clock.now += 0.1

    assert [round(a, 1) for a in attempts] == [0.0, 1.0, 3.0, 7.0]
    entry = supervisor.read_state(tmp_path)["components"]["svc"]
    assert entry["restarts"] == 4 and entry["failed"] == 4 and entry["ok"] is False
    assert "exited with status 3" in lines(said)
    assert "start FAILED" in lines(said) and "data directory is full" in lines(said)


def test_nothing_is_restarted_while_the_runner_holds_the_lock(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = make(fakes, tmp_path)
    fake.start()
    sup = Supervisor(tmp_path, [fake], confirm_s=0, say=lambda _: None)
    kill(fake)
    with supervisor.exclusive(tmp_path):  # `make demo` starting the stack
        assert sup.tick() == []
        assert fake.pid() is None
    assert sup.tick() == ["svc"]


def test_counts_survive_a_supervisor_restart(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = make(fakes, tmp_path)
    fake.start()
    kill(fake)
    Supervisor(tmp_path, [fake], confirm_s=0, say=lambda _: None).tick()
    kill(fake)
    Supervisor(tmp_path, [fake], confirm_s=0, say=lambda _: None).tick()
    assert supervisor.restarts_of(supervisor.read_state(tmp_path), "svc") == 2


def _run_supervisor(home: str, log: str) -> None:
    def say(line: str) -> None:
        with open(log, "a") as out:
            out.write(line + "\n")

    Supervisor(Path(home), [Fake("svc", Path(home))], confirm_s=0, say=say).run(interval=0.1)


def test_the_running_supervisor_restarts_and_after_sigterm_restarts_nothing(  # type: ignore[no-untyped-def]
    fakes, tmp_path: Path
) -> None:
    fake = make(fakes, tmp_path)
    fake.start()
    log = tmp_path / "supervisor.log"
    child = multiprocessing.get_context("fork").Process(
        target=_run_supervisor, args=(str(tmp_path), str(log))
    )
    child.start()
    try:
        old = kill(fake)
        deadline = time.monotonic() + 5
        while fake.pid() in (None, old) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.pid() not in (None, old), log.read_text()

        child.terminate()  # SIGTERM, as `make down` sends it first
        child.join(5)
        assert child.exitcode == 0
        assert "supervisor stopped (SIGTERM)" in log.read_text()

        kill(fake)
        time.sleep(0.5)  # five of its check intervals
        assert fake.pid() is None
    finally:
        if child.is_alive():
            child.kill()


def test_down_stops_the_supervisor_before_anything_else(tmp_path: Path) -> None:
    settings = SimpleNamespace(
        data_dir=tmp_path,
        run_dir=tmp_path,
        log_dir=tmp_path,
        simulator_port=8900,
        simulator_streams_port=8901,
    )
    order = list(reversed(pipeline.everything(settings)))  # type: ignore[arg-type]
    assert isinstance(order[0], pipeline.SupervisorProcess)
    assert order[0].pid_file == tmp_path / "supervisor.pid"
    assert order[0].log_file == tmp_path / "supervisor.log"


def test_postgres_counts_as_started_while_its_postmaster_pid_exists(tmp_path: Path) -> None:
    settings = SimpleNamespace(data_dir=tmp_path, run_dir=tmp_path / "run")
    postgres = Postgres(settings)  # type: ignore[arg-type]
    assert supervisor.pid_marker(postgres) == tmp_path / "postgres" / "postmaster.pid"


# -- exit reasons and the state file ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["sh", "-c", "exit 3"], "exited with status 3"),
        (["sh", "-c", "kill -9 $$"], "killed by SIGKILL"),
        (["true"], "exited with status 0"),
    ],
)
def test_exit_statuses_are_described(argv: list[str], reason: str) -> None:
    proc = subprocess.Popen(argv)
    _, status = os.waitpid(proc.pid, 0)
    proc.returncode = 0  # reaped here, not by Popen
    assert supervisor.describe_exit(status) == reason
    assert supervisor.describe_exit(None) == "exit status unknown"


def test_the_state_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "supervisor.json"
    target.write_text("{not json")
    assert supervisor.read_state(tmp_path) == {}
    write_json_atomic(target, {"components": {"kafka": {"restarts": 2}}})
    assert supervisor.restarts_of(supervisor.read_state(tmp_path), "kafka") == 2
    assert supervisor.restarts_of(supervisor.read_state(tmp_path), "connect") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["supervisor.json"]


# -- FAILED connector tasks -----------------------------------------------------------------


class _Connect(JsonHandler):
    """Kafka Connect's REST API with one connector whose task 0 is FAILED until restarted."""

    failed = True
    restarts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        state = "FAILED" if _Connect.failed else "RUNNING"
        body = {
            "cap-stock-postgres-source": {
                "status": {
                    "name": "cap-stock-postgres-source",
                    "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
                    "tasks": [
                        {
                            "id": 0,
                            "state": state,
                            "trace": "io.debezium.DebeziumException: Couldn't obtain encoding",
                        }
                    ],
                    "type": "source",
                }
            }
        }
        self.answer(200, body)

    def do_POST(self) -> None:
        _Connect.restarts.append(self.path)
        _Connect.failed = False
        self.answer(202, None)


def test_a_failed_connector_task_is_restarted_and_counted(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Connect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        sup = Supervisor(tmp_path, [], connect_url=url, confirm_s=0, say=lambda _: None)
        sup.tick()
        sup.tick()  # RUNNING again: no second restart
    finally:
        server.shutdown()
    assert _Connect.restarts == [
        "/connectors/cap-stock-postgres-source/restart?includeTasks=true&onlyFailed=true"
    ]
    state = supervisor.read_state(tmp_path)
    assert supervisor.connector_restarts_of(state, "cap-stock-postgres-source") == 1


def test_the_slot_check_runs_every_30_seconds_and_counts_drops(tmp_path: Path) -> None:
    clock = Clock()
    calls: list[float] = []

    def check() -> bool:
        calls.append(clock.now)
        return len(calls) == 2  # the second look finds a lost slot and drops it

    sup = Supervisor(tmp_path, [], clock=clock, slot_check=check, say=lambda _: None)
    for _ in range(70):
        sup.tick()
        clock.now += 1
    assert [c - 1000 for c in calls] == [0, 30, 60]
    assert supervisor.read_state(tmp_path)["slot_drops"] == 1


def test_pid_files_of_processes_dead_before_the_run_are_forgotten(fakes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = SimpleNamespace(
        data_dir=tmp_path,
        run_dir=tmp_path,
        log_dir=tmp_path,
        simulator_port=8900,
        simulator_streams_port=8901,
    )
    (tmp_path / "python-sink.pid").write_text("999999999\n")  # died under another sink choice
    producer = make(fakes, tmp_path, name="producer")
    producer.start()

    assert pipeline.forget_dead_processes(settings) == ["python-sink"]  # type: ignore[arg-type]
    assert not (tmp_path / "python-sink.pid").exists()
    assert producer.pid_file.exists()
