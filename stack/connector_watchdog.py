"""Restart FAILED Kafka Connect connectors and tasks, with a back-off per connector.

A task that fails (Debezium after Postgres was away for a while, the sink after a
Cassandra outage) stays FAILED until someone asks the worker to restart it. This does
the asking: every ``interval`` seconds it reads every connector's status and, for each
one with a FAILED connector or task, sends

    POST /connectors/<name>/restart?includeTasks=true&onlyFailed=true

so only the failed parts restart. A connector that keeps failing is restarted after
5, 10, 20, 40 and then every 60 seconds; the delay starts again from 5 s once it has
been seen healthy. Each restart is one log line (wrapped here):

    connector-watchdog: restarted cap-stock-postgres-source (task 0 FAILED:
      org.apache.kafka.connect.errors.ConnectException: ...); restart 2, next no sooner than 10 s

Standard library only, so compose runs it in a bare Python image
(``python -m stack.connector_watchdog``) and the native supervisor imports it:
:func:`restart_failed` is one pass with no memory, :class:`Watchdog` adds the back-off.

Connect's answer to ``GET /connectors?expand=status`` looks like this::

    {"cap-stock-postgres-source": {"status": {
        "name": "cap-stock-postgres-source",
        "connector": {"state": "RUNNING", "worker_id": "connect:8083"},
        "tasks": [{"id": 0, "state": "FAILED", "worker_id": "connect:8083",
                   "trace": "org.apache.kafka.connect.errors.ConnectException: ..."}],
        "type": "source"}}}
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stack.connect_api import ConnectError, ConnectUnavailable, request

log = logging.getLogger("connector-watchdog")

DEFAULT_URL = "http://127.0.0.1:8083"
DEFAULT_INTERVAL = 10.0
FIRST_DELAY = 5.0
MAX_DELAY = 60.0
REQUEST_TIMEOUT = 10.0
TRACE_CHARS = 160


def _call(method: str, url: str, timeout: float) -> object:
    """Any error, an HTTP one included (a rebalance answers 409), means: try again later."""
    try:
        return request(method, url, timeout=timeout)
    except ConnectError as err:
        raise ConnectUnavailable(str(err)[:300]) from None


def failed_parts(status: dict) -> list[str]:
    """What is FAILED in one connector's status: "connector" and/or "task <id>" entries,
    each with the first line of its trace."""
    parts = []
    entries = [("connector", status.get("connector") or {})]
    entries += [(f"task {t.get('id')}", t) for t in status.get("tasks") or []]
    for label, entry in entries:
        if entry.get("state") == "FAILED":
            trace = (entry.get("trace") or "").strip().splitlines()
            first = trace[0][:TRACE_CHARS] if trace else "no trace"
            parts.append(f"{label} FAILED: {first}")
    return parts


def statuses(connect_url: str, timeout: float = REQUEST_TIMEOUT) -> dict[str, dict]:
    """Every connector's status, by name."""
    answer = _call("GET", f"{connect_url.rstrip('/')}/connectors?expand=status", timeout)
    if not isinstance(answer, dict):
        raise ConnectUnavailable(f"unexpected answer from {connect_url}: {answer!r:.200}")
    return {name: (entry or {}).get("status") or {} for name, entry in answer.items()}


def failed_connectors(connect_url: str, timeout: float = REQUEST_TIMEOUT) -> dict[str, list[str]]:
    """Connector name -> its failed parts, for the connectors that have any."""
    found = {name: failed_parts(status) for name, status in statuses(connect_url, timeout).items()}
    return {name: parts for name, parts in sorted(found.items()) if parts}


def restart(connect_url: str, name: str, timeout: float = REQUEST_TIMEOUT) -> None:
    """Restart the connector's failed instance and failed tasks (202 Accepted)."""
    quoted = urllib.parse.quote(name, safe="")
    _call(
        "POST",
        f"{connect_url.rstrip('/')}/connectors/{quoted}/restart?includeTasks=true&onlyFailed=true",
        timeout,
    )


def restart_failed(
    connect_url: str,
    due: Callable[[str], bool] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> list[str]:
    """One pass: restart every connector with a FAILED part (for which ``due(name)``).

    Returns the names restarted. Raises :class:`ConnectUnavailable` when the status
    cannot be read; a restart refused (404 after a delete, 409 during a rebalance) is
    logged and left for the next pass.
    """
    restarted = []
    for name, parts in failed_connectors(connect_url, timeout).items():
        if due is not None and not due(name):
            continue
        try:
            restart(connect_url, name, timeout)
        except ConnectUnavailable as err:
            log.warning("connector-watchdog: could not restart %s: %s", name, err)
            continue
        log.warning("connector-watchdog: restarted %s (%s)", name, "; ".join(parts))
        restarted.append(name)
    return restarted


@dataclass
class Watchdog:
    """:func:`restart_failed` with an exponential back-off per connector.

    ``restarts`` counts the restarts of each connector since the watchdog started
    (the native ``make status`` shows them).
    """

    connect_url: str = DEFAULT_URL
    first_delay: float = FIRST_DELAY
    max_delay: float = MAX_DELAY
    clock: Callable[[], float] = time.monotonic
    timeout: float = REQUEST_TIMEOUT
    restarts: dict[str, int] = field(default_factory=dict)
    _delay: dict[str, float] = field(default_factory=dict)
    _not_before: dict[str, float] = field(default_factory=dict)
    _reachable: bool | None = None

    def poll(self) -> list[str]:
        """One pass; returns the connectors restarted. Never raises for an absent worker."""
        now = self.clock()
        try:
            failed = failed_connectors(self.connect_url, self.timeout)
        except ConnectUnavailable as err:
            if self._reachable is not False:
                log.warning("connector-watchdog: Kafka Connect not answering: %s", err)
            self._reachable = False
            return []
        if self._reachable is False:
            log.info("connector-watchdog: Kafka Connect answers again at %s", self.connect_url)
        self._reachable = True
        for name in list(self._delay):
            if name not in failed:
                log.info(
                    "connector-watchdog: %s is healthy again (%d restart(s) so far)",
                    name,
                    self.restarts.get(name, 0),
                )
                del self._delay[name]
                self._not_before.pop(name, None)
        restarted = []
        for name, parts in failed.items():
            if now < self._not_before.get(name, float("-inf")):
                continue
            try:
                restart(self.connect_url, name, self.timeout)
            except ConnectUnavailable as err:
                log.warning("connector-watchdog: could not restart %s: %s", name, err)
                continue
            previous = self._delay.get(name)
            delay = self.first_delay if previous is None else min(previous * 2, self.max_delay)
            self._delay[name] = delay
            self._not_before[name] = now + delay
            self.restarts[name] = self.restarts.get(name, 0) + 1
            log.warning(
                "connector-watchdog: restarted %s (%s); restart %d, next no sooner than %.0f s",
                name,
                "; ".join(parts),
                self.restarts[name],
                delay,
            )
            restarted.append(name)
        return restarted

    def run(self, interval: float, stop: Callable[[], bool] = lambda: False) -> None:
        log.info(
            "connector-watchdog: watching %s every %.0f s (back-off %.0f-%.0f s per connector)",
            self.connect_url,
            interval,
            self.first_delay,
            self.max_delay,
        )
        while not stop():
            self.poll()
            time.sleep(interval)


@dataclass(frozen=True)
class WatchdogSettings:
    """The command line's defaults, from the environment (an empty value is unset).

    Not stack.settings: compose runs this module in a bare Python image, without pydantic.
    The native supervisor passes the stack's own Connect URL to :class:`Watchdog` instead.
    """

    connect_url: str = DEFAULT_URL
    interval: float = DEFAULT_INTERVAL

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WatchdogSettings:
        """Raises ValueError naming the variable and what it takes."""
        url = environ.get("CONNECT_URL") or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"CONNECT_URL={url!r} is not an http(s) URL like {DEFAULT_URL}")
        raw = environ.get("CONNECT_WATCHDOG_INTERVAL") or str(DEFAULT_INTERVAL)
        try:
            interval = float(raw)
        except ValueError:
            interval = 0.0
        if not interval > 0:
            raise ValueError(
                f"CONNECT_WATCHDOG_INTERVAL={raw!r} is not a positive number of seconds"
            )
        return cls(url, interval)


def main(argv: list[str] | None = None) -> int:
    """$ CONNECT_URL=http://connect:8083 python -m stack.connector_watchdog --interval 10"""
    parser = argparse.ArgumentParser(prog="connector-watchdog", description=__doc__.split("\n")[0])
    try:
        defaults = WatchdogSettings.from_environ(os.environ)
    except ValueError as err:
        parser.error(str(err))
    parser.add_argument(
        "--connect-url",
        default=defaults.connect_url,
        help="Kafka Connect REST API (env CONNECT_URL; default %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=defaults.interval,
        help="seconds between status checks (env CONNECT_WATCHDOG_INTERVAL; default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error(f"--interval must be positive, not {args.interval}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # As PID 1 in a container, SIGTERM has no default action: stop promptly on it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        Watchdog(args.connect_url).run(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
