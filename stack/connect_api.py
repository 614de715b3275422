"""Small client for Kafka Connect's REST API (used by tests and the runner)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


class ConnectError(RuntimeError):
    pass


def request(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raise ConnectError(f"{method} {url}: HTTP {err.code}: {err.read().decode()}") from None
    return json.loads(raw) if raw else None


def put_connector(base_url: str, name: str, config: dict[str, str]) -> None:
    """Create or update a connector (idempotent), retrying while the worker rebalances."""
    deadline = time.monotonic() + 60
    while True:
        try:
            request("PUT", f"{base_url}/connectors/{name}/config", config)
            return
        except ConnectError as err:
            # 409: a rebalance is in progress; the worker asks us to retry.
            if "HTTP 409" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def wait_running(base_url: str, name: str, timeout: float = 90) -> dict:
    """Wait until the connector and all its tasks are RUNNING; raise with the trace if FAILED."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        try:
            status = request("GET", f"{base_url}/connectors/{name}/status")
        except ConnectError:
            time.sleep(1)
            continue
        states = [status["connector"], *status.get("tasks", [])]
        failed = [s for s in states if s["state"] == "FAILED"]
        if failed:
            raise ConnectError(f"{name} FAILED:\n{failed[0].get('trace', '(no trace)')}")
        if status.get("tasks") and all(s["state"] == "RUNNING" for s in states):
            return status
        time.sleep(1)
    raise ConnectError(f"{name} not RUNNING after {timeout:.0f}s: {status}")


def delete_connector(base_url: str, name: str) -> None:
    try:
        request("DELETE", f"{base_url}/connectors/{name}")
    except ConnectError as err:
        if "HTTP 404" not in str(err):
            raise
