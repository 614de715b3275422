"""Native supervisor: restart a component that died, and FAILED connector tasks, with backoff.

`python -m stack pipeline` starts it last, as the detached process "supervisor" (pid file
.stack/run/supervisor.pid, log .stack/logs/supervisor.log); `make down` stops it first,
so nothing it watches is restarted while the stack goes down.

Every CHECK_INTERVAL_S it looks at each component that was started and not stopped, that
is whose pid file exists (Postgres: its own postmaster.pid): Postgres, Kafka, Cassandra,
Connect, then the simulator, python-sink, producer and grafana. A component whose process
is gone is restarted through its own idempotent, bounded start(). A component stopped
through its stop() (or `pg_ctl stop`) has no pid file and is left alone: that is how
`make down` and a deliberate outage in a test are told apart from a crash. Restarts of
one component are spaced INITIAL_DELAY_S, then doubling up to MAX_DELAY_S; the spacing
starts again from INITIAL_DELAY_S once the component has stayed up for STABLE_AFTER_S.

Then it asks Kafka Connect to restart FAILED connectors and tasks
(stack/connector_watchdog.py, with its own per-connector backoff), and every SLOT_CHECK_S
drops Debezium's replication slot if Postgres invalidated it and the connector runs with
snapshot.mode=when_needed, which makes Debezium snapshot every table again
(stack/replication.py, heal_lost_slot).

One log line per restart, with the reason::

    2026-11-21T21:47:02Z restart connect #2: pid 4242 killed by SIGKILL; started (pid 4388)
    in 21.4s; next restart no sooner than 2s after this one; last log: ... | ...

Restart counts go to .stack/run/supervisor.json (rewritten atomically), which
`make status` reads ("restarts=N"); `make down` deletes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from stack.process import forget, log_tail, pid_alive, read_pid, write_json_atomic

CHECK_INTERVAL_S = 2.0
INITIAL_DELAY_S = 1.0
MAX_DELAY_S = 60.0
STABLE_AFTER_S = 120.0
# A stop() in progress removes the pid file a moment after the process exits: look again
# this long after a death before calling it a crash.
CONFIRM_S = 1.0
# FAILED connector tasks: retried 2, 4, 5, 5 ... s apart, so Debezium's task, which
# fails for good when Postgres is still away at its own retry, runs again within ~7 s of
# Postgres's return (issue 10: data flows within 10 s). Measured on a 32 s outage: the
# task was RUNNING 7.5 s after Postgres was back (a 1 s-polling probe saw the first new
# row in Kafka at 10.8 s).
CONNECTOR_FIRST_DELAY_S = 2.0
CONNECTOR_MAX_DELAY_S = 5.0
# How often to look for a lost replication slot (stack/replication.py, heal_lost_slot).
SLOT_CHECK_S = 30.0
TAIL_LINES = 3
TAIL_CHARS = 400
STATE_FILE = "supervisor.json"
LOCK_FILE = "stack.lock"


class Stopped(BaseException):
    """SIGTERM/SIGINT: leave at once, even from inside a component's bounded start()."""


class Watched(Protocol):
    """What the supervisor needs of a component (stack.services.Component has it)."""

    name: str

    @property
    def pid_file(self) -> Path: ...

    @property
    def log_file(self) -> Path: ...

    def pid(self) -> int | None: ...

    def start(self) -> str: ...


def pid_marker(component: Watched) -> Path:
    """The file whose presence means "started and not stopped"."""
    data = getattr(component, "data", None)
    if component.name == "postgres" and data is not None:
        return Path(data) / "postmaster.pid"
    return component.pid_file


@dataclass
class Backoff:
    """When a component may be restarted next. Times come from a monotonic clock."""

    initial: float = INITIAL_DELAY_S
    cap: float = MAX_DELAY_S
    stable_after: float = STABLE_AFTER_S
    delay: float = INITIAL_DELAY_S
    not_before: float = 0.0
    last_attempt: float | None = None

    def __post_init__(self) -> None:
        self.delay = self.initial

    def due(self, now: float) -> bool:
        return now >= self.not_before

    def attempted(self, now: float) -> float:
        """Record a restart attempt at ``now``; returns the wait before the next one."""
        wait = self.delay
        self.last_attempt = now
        self.not_before = now + wait
        self.delay = min(self.delay * 2, self.cap)
        return wait

    def alive(self, now: float) -> None:
        """The component runs: after stable_after since the last restart, start over."""
        if self.last_attempt is not None and now - self.last_attempt >= self.stable_after:
            self.delay = self.initial
            self.not_before = 0.0
            self.last_attempt = None


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_state(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def restarts_of(state: dict[str, Any], name: str) -> int:
    return int(state.get("components", {}).get(name, {}).get("restarts", 0))


def connector_restarts_of(state: dict[str, Any], name: str) -> int:
    return int(state.get("connectors", {}).get(name, 0))


@contextlib.contextmanager
def exclusive(run_dir: Path, *, wait: bool = True) -> Iterator[bool]:
    """The runner (up, pipeline, down) and the supervisor never start components at once.

    Yields False (without the lock) when ``wait`` is False and someone else holds it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a") as handle:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def describe_exit(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(sig).name}"
        return f"killed by signal {sig}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def last_log_lines(component: Watched, lines: int = TAIL_LINES) -> str:
    """The last few non-empty lines of the component's log (and of its JVM .out), one line."""
    found: list[str] = []
    for path in (component.log_file, component.log_file.with_suffix(".out")):
        if path.exists() and path.stat().st_size:
            tail = [line.strip() for line in log_tail(path, lines * 4).splitlines()]
            found += [line for line in tail if line][-lines:]
        if path.suffix == ".out":
            break
    text = " | ".join(found[-lines * 2 :]) or "(empty log)"
    return text if len(text) <= TAIL_CHARS else "..." + text[-TAIL_CHARS:]


@dataclass
class Supervisor:
    """One check of every component per tick(); run() ticks until SIGTERM."""

    run_dir: Path
    components: Sequence[Watched]
    connect_url: str | None = None
    clock: Callable[[], float] = time.monotonic
    confirm_s: float = CONFIRM_S
    initial_delay: float = INITIAL_DELAY_S
    max_delay: float = MAX_DELAY_S
    stable_after: float = STABLE_AFTER_S
    say: Callable[[str], None] = print
    backoffs: dict[str, Backoff] = field(default_factory=dict)
    exits: dict[int, int] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    watchdog: Any = None
    # () -> True when it dropped a lost replication slot; None: no slot check.
    slot_check: Callable[[], bool] | None = None
    _slot_checked: float | None = None
    _busy_said: bool = False
    _dirty: bool = True

    def __post_init__(self) -> None:
        previous = read_state(self.run_dir)
        self.state = {
            "components": previous.get("components", {}),
            "connectors": previous.get("connectors", {}),
            "since": previous.get("since") or _now_text(),
        }

    # -- bookkeeping -------------------------------------------------------------------

    def save(self) -> None:
        self.state["pid"] = os.getpid()
        self.state["saved_at"] = _now_text()
        blocked = {signal.SIGTERM, signal.SIGINT}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            write_json_atomic(self.run_dir / STATE_FILE, self.state)
            self._dirty = False
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def reap(self) -> None:
        """Collect exit statuses of processes we restarted (they are our children)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exits[pid] = status
            forget(pid)

    def backoff(self, name: str) -> Backoff:
        if name not in self.backoffs:
            self.backoffs[name] = Backoff(self.initial_delay, self.max_delay, self.stable_after)
        return self.backoffs[name]

    # -- one pass ----------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Restart what died (if its backoff allows); returns the names restarted."""
        with exclusive(self.run_dir, wait=False) as mine:
            if not mine:
                if not self._busy_said:
                    self.say(f"{_now_text()} the runner is starting or stopping the stack; waiting")
                self._busy_said = True
                return []
            self._busy_said = False
            self.reap()
            restarted = [c.name for c in self.components if self._check(c)]
            self._connectors()
            self._slot()
        if self._dirty:
            self.save()
        return restarted

    def _check(self, component: Watched) -> bool:
        marker = pid_marker(component)
        if not marker.exists():
            self.backoffs.pop(component.name, None)  # stopped on purpose, or never started
            return False
        backoff = self.backoff(component.name)
        if component.pid():
            backoff.alive(self.clock())
            return False
        if not backoff.due(self.clock()):
            return False
        dead = read_pid(marker)
        if self.confirm_s:
            time.sleep(self.confirm_s)
            if not marker.exists() or read_pid(marker) != dead or pid_alive(dead):
                return False
        self.reap()
        self._restart(component, dead)
        return True

    def _restart(self, component: Watched, dead: int | None) -> None:
        reason = f"pid {dead} {describe_exit(self.exits.pop(dead, None) if dead else None)}"
        tail = last_log_lines(component)
        wait = self.backoff(component.name).attempted(self.clock())
        entry = self.state["components"].setdefault(component.name, {"restarts": 0, "failed": 0})
        entry["restarts"] += 1
        self._dirty = True
        began = time.monotonic()
        try:
            outcome = component.start()
            ok = True
        except Exception as err:  # StackError, or anything a start can raise
            outcome = "start FAILED: " + (str(err).strip().splitlines() or [repr(err)])[0]
            ok = False
        entry.update(last=_now_text(), reason=reason, ok=ok)
        if not ok:
            entry["failed"] += 1
        self.say(
            f"{_now_text()} restart {component.name} #{entry['restarts']}: {reason}; "
            f"{outcome} in {time.monotonic() - began:.1f}s; next restart no sooner than "
            f"{wait:.0f}s after this one; last log: {tail}"
        )

    def _connectors(self) -> None:
        if not self.connect_url:
            return
        if self.watchdog is None:
            from stack.connector_watchdog import Watchdog

            self.watchdog = Watchdog(
                self.connect_url,
                first_delay=CONNECTOR_FIRST_DELAY_S,
                max_delay=CONNECTOR_MAX_DELAY_S,
                clock=self.clock,
            )
        for name in self.watchdog.poll():
            counts = self.state["connectors"]
            counts[name] = counts.get(name, 0) + 1
            self._dirty = True

    def _slot(self) -> None:
        now = self.clock()
        if self.slot_check is None:
            return
        if self._slot_checked is not None and now - self._slot_checked < SLOT_CHECK_S:
            return
        self._slot_checked = now
        try:
            dropped = self.slot_check()
        except Exception:  # Postgres or Connect away: the component checks cover that
            return
        if dropped:
            self.state["slot_drops"] = self.state.get("slot_drops", 0) + 1
            self._dirty = True

    # -- the loop ----------------------------------------------------------------------

    def run(self, interval: float = CHECK_INTERVAL_S) -> None:
        def stop(signum: int, _frame: object) -> None:
            raise Stopped(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        names = ", ".join(c.name for c in self.components)
        self.say(
            f"{_now_text()} supervisor pid {os.getpid()}: checking {names} every {interval:.0f}s"
            f" (restart backoff {self.initial_delay:.0f}-{self.max_delay:.0f}s)"
        )
        self.save()
        try:
            while True:
                self.tick()
                time.sleep(interval)
        except Stopped as why:
            self.say(f"{_now_text()} supervisor stopped ({why})")


def main(settings: Any, source: str) -> int:
    """The detached process's body: watch what `pipeline` started with ``source``."""
    from stack import pipeline, replication
    from stack.services import Grafana, Postgres, all_components

    logging.basicConfig(  # connector_watchdog logs through logging
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout
    )
    simulator = pipeline.Simulator(settings)
    api_url = simulator.api_url if source == "demo" else None
    stream_url = simulator.stream_url() if source == "demo" else None
    components: list[Watched] = [
        *all_components(settings),
        simulator,
        pipeline.PythonSink(settings),
        pipeline.Producer(settings, api_url=api_url, stream_url=stream_url),
        Grafana(settings),
    ]
    postgres = Postgres(settings)

    def slot_check() -> bool:
        if not postgres.pid():
            return False
        return replication.heal_lost_slot(
            settings.connect_url,
            postgres.superuser_connection,
            lambda line: print(f"{_now_text()} {line}", flush=True),
        )

    loop = Supervisor(
        settings.run_dir,
        components,
        connect_url=settings.connect_url,
        say=lambda line: print(line, flush=True),
        slot_check=slot_check,
    )
    loop.state["source"] = source  # `python -m stack supervise` restarts it the same way
    loop.run()
    return 0
