"""The one Python client for Kafka Connect's REST API: the runner, status, the connector
watchdog, benchmarks and tests call it (users call connect_connectors.sh).

Standard library only: compose runs the watchdog in a bare Python image."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class ConnectError(RuntimeError):
    """The worker answered with an HTTP error (``status``), or did not answer at all."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectUnavailable(ConnectError):
    """No answer: the worker is down, starting, or the connection failed."""


def request(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    """One call; the decoded JSON answer (None when empty)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace").strip()
        raise ConnectError(f"{method} {url}: HTTP {err.code}: {detail}", err.code) from None
    except (urllib.error.URLError, OSError) as err:
        raise ConnectUnavailable(f"{method} {url}: {err}") from None
    return json.loads(raw) if raw else None


def _pauses():  # type: ignore[no-untyped-def]
    """The one retry policy (capstock.backoff), imported here only: the watchdog, which
    never waits this way, runs where only the standard library is installed."""
    from capstock.backoff import Backoff

    return Backoff(base=0.25, cap=2.0, max_attempts=None)


def put_connector(base_url: str, name: str, config: dict[str, str]) -> None:
    """Create or update a connector (idempotent), retrying while the worker rebalances."""
    deadline = time.monotonic() + 60
    pauses = _pauses()
    while True:
        try:
            request("PUT", f"{base_url}/connectors/{name}/config", config)
            return
        except ConnectError as err:
            # 409: a rebalance is in progress; the worker asks us to retry.
            if err.status != 409 or time.monotonic() > deadline:
                raise
            time.sleep(pauses.next_delay())


def wait_running(base_url: str, name: str, timeout: float = 90) -> dict:
    """Wait until the connector and all its tasks are RUNNING; raise with the trace if FAILED."""
    deadline = time.monotonic() + timeout
    pauses = _pauses()
    status: dict = {}
    while time.monotonic() < deadline:
        try:
            status = request("GET", f"{base_url}/connectors/{name}/status")
        except ConnectError:
            time.sleep(pauses.next_delay())
            continue
        states = [status["connector"], *status.get("tasks", [])]
        failed = [s for s in states if s["state"] == "FAILED"]
        if failed:
            raise ConnectError(f"{name} FAILED:\n{failed[0].get('trace', '(no trace)')}")
        if status.get("tasks") and all(s["state"] == "RUNNING" for s in states):
            return status
        time.sleep(pauses.next_delay())
    raise ConnectError(f"{name} not RUNNING after {timeout:.0f}s: {status}")


def delete_connector(base_url: str, name: str) -> None:
    try:
        request("DELETE", f"{base_url}/connectors/{name}")
    except ConnectError as err:
        if err.status != 404:
            raise
