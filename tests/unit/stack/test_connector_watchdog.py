"""stack.connector_watchdog against a fake Kafka Connect REST API (http.server in a thread).

The fake answers the two endpoints the watchdog uses, GET /connectors?expand=status and
POST /connectors/<name>/restart?includeTasks=true&onlyFailed=true, and records every
restart request; a restart heals the connector unless the test says it keeps failing.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest

from stack import connector_watchdog
from stack.connector_watchdog import ConnectUnavailable, Watchdog, restart_failed
from tests.support.http_fakes import JsonHandler

TRACE = "org.apache.kafka.connect.errors.ConnectException: Couldn't obtain encoding\n\tat x.y"


class FakeConnect:
    def __init__(self) -> None:
        self.connectors: dict[str, dict] = {}
        self.restarts: list[tuple[str, str]] = []
        self.sticky: set[str] = set()  # connectors a restart does not heal
        self.restart_status = 202

    def set(self, name: str, connector: str = "RUNNING", tasks: tuple[str, ...] = ()) -> None:
        self.connectors[name] = {
            "name": name,
            "connector": {"state": connector, "worker_id": "connect:8083"},
            "tasks": [
                {
                    "id": i,
                    "state": s,
                    "worker_id": "connect:8083",
                    **({"trace": TRACE} if s == "FAILED" else {}),
                }
                for i, s in enumerate(tasks)
            ],
            "type": "source",
        }

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/connectors" and url.query == "expand=status":
                    self.answer(200, {n: {"status": s} for n, s in fake.connectors.items()})
                else:
                    self.answer(404, {"error_code": 404, "message": "not found"})

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                parts = url.path.split("/")
                if len(parts) != 4 or parts[1] != "connectors" or parts[3] != "restart":
                    self.answer(404, {"error_code": 404})
                    return
                name = unquote(parts[2])
                if name not in fake.connectors:
                    self.answer(404, {"error_code": 404, "message": f"Unknown connector {name}"})
                    return
                if fake.restart_status != 202:
                    self.answer(fake.restart_status, {"error_code": fake.restart_status})
                    return
                fake.restarts.append((name, url.query))
                if name not in fake.sticky:
                    status = fake.connectors[name]
                    status["connector"]["state"] = "RUNNING"
                    for task in status["tasks"]:
                        task["state"] = "RUNNING"
                        task.pop("trace", None)
                self.answer(202, fake.connectors[name])

        return Handler


@pytest.fixture
def connect() -> Iterator[tuple[FakeConnect, str]]:
    fake = FakeConnect()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_pass_restarts_only_connectors_with_a_failed_part(connect) -> None:
    fake, url = connect
    fake.set("healthy", tasks=("RUNNING",))
    fake.set("task-failed", tasks=("RUNNING", "FAILED"))
    fake.set("connector-failed", connector="FAILED", tasks=("RUNNING",))
    fake.set("paused", connector="PAUSED", tasks=("PAUSED",))
    assert restart_failed(url) == ["connector-failed", "task-failed"]
    assert fake.restarts == [
        ("connector-failed", "includeTasks=true&onlyFailed=true"),
        ("task-failed", "includeTasks=true&onlyFailed=true"),
    ]
    assert restart_failed(url) == [], "healed by the restart: nothing to do"


def test_names_are_quoted_in_the_restart_path(connect) -> None:
    fake, url = connect
    fake.set("cap stock/src", tasks=("FAILED",))
    assert restart_failed(url) == ["cap stock/src"]
    assert fake.restarts[0][0] == "cap stock/src"


def test_a_restart_refused_is_left_for_the_next_pass(connect, caplog) -> None:
    fake, url = connect
    fake.set("source", tasks=("FAILED",))
    fake.restart_status = 409  # rebalancing
    with caplog.at_level(logging.WARNING, logger="connector-watchdog"):
        assert restart_failed(url) == []
    assert "could not restart source" in caplog.text
    fake.restart_status = 202
    assert restart_failed(url) == ["source"]


def test_an_absent_worker_is_an_error_for_one_pass_and_quiet_for_the_watchdog(caplog) -> None:
    url = "http://127.0.0.1:9"  # discard port: connection refused
    with pytest.raises(ConnectUnavailable):
        restart_failed(url, timeout=2)
    dog = Watchdog(url, timeout=2)
    with caplog.at_level(logging.INFO, logger="connector-watchdog"):
        assert dog.poll() == [] and dog.poll() == []
    assert caplog.text.count("not answering") == 1, "one line per state change, not per poll"


def test_backoff_doubles_per_connector_up_to_the_cap_and_resets_when_healthy(
    connect, caplog
) -> None:
    fake, url = connect
    fake.set("stuck", tasks=("FAILED",))
    fake.set("other", tasks=("RUNNING",))
    fake.sticky.add("stuck")
    clock = Clock()
    dog = Watchdog(url, first_delay=5, max_delay=60, clock=clock)
    caplog.set_level(logging.INFO, logger="connector-watchdog")
    times = []
    for _ in range(400):  # 200 s of polls every 0.5 s
        if dog.poll():
            times.append(clock.now - 1000)
        clock.now += 0.5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[0] == 0
    assert gaps[:5] == [5, 10, 20, 40, 60] and set(gaps[4:]) == {60}
    assert dog.restarts == {"stuck": len(times)}
    assert "restarted stuck (task 0 FAILED: org.apache.kafka.connect.errors.ConnectException" in (
        caplog.text
    )
    assert "restart 3, next no sooner than 20 s" in caplog.text
    # A failure of another connector has its own schedule.
    fake.set("other", tasks=("FAILED",))
    assert dog.poll() == ["other"]
    # Healthy again: the delay starts over at 5 s.
    fake.sticky.discard("stuck")
    clock.now += 60
    assert dog.poll() == ["stuck"]
    assert dog.poll() == []
    assert "stuck is healthy again" in caplog.text
    fake.set("stuck", tasks=("FAILED",))
    fake.sticky.add("stuck")
    assert dog.poll() == ["stuck"]
    clock.now += 5
    assert dog.poll() == ["stuck"], "first delay again after the recovery"


def test_main_rejects_a_bad_interval() -> None:
    with pytest.raises(SystemExit):
        connector_watchdog.main(["--interval", "0"])


def test_settings_come_from_the_environment_with_defaults() -> None:
    settings = connector_watchdog.WatchdogSettings.from_environ
    assert settings({}) == connector_watchdog.WatchdogSettings("http://127.0.0.1:8083", 10.0)
    assert settings({"CONNECT_URL": "", "CONNECT_WATCHDOG_INTERVAL": ""}) == settings({})
    environ = {"CONNECT_URL": "http://connect:8083", "CONNECT_WATCHDOG_INTERVAL": "2.5"}
    assert settings(environ) == connector_watchdog.WatchdogSettings("http://connect:8083", 2.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONNECT_WATCHDOG_INTERVAL", "ten"),
        ("CONNECT_WATCHDOG_INTERVAL", "-1"),
        ("CONNECT_URL", "connect:8083"),
    ],
)
def test_a_bad_setting_exits_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_:
        connector_watchdog.main([])
    assert exit_.value.code == 2
    assert f"{variable}={value!r}" in capsys.readouterr().err
