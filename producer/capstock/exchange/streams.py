"""The exchange as a streaming source: combined websocket streams, kept open.

One :class:`StreamConnection` is one websocket connection to ``<base>/stream?streams=a/b/...``
with at most ``INGEST_STREAMS_PER_CONNECTION`` streams (Binance allows 1,024), read by its
own thread, which hands every payload to a callback as ``(stream name, data, received
at)``. Combined payloads arrive wrapped::

    {"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1700000000123, ...}}

Delivery guarantee: at most once, in the exchange's order within one connection. Nothing
here can know what was missed while a connection was down; the consumer sees it in the
data (a trade id or a ``U`` that jumps) and fills or resyncs (:mod:`capstock.ingest.streaming`).

What keeps a connection alive (Binance's limits, ``binance-api.md`` §4):

=====================  ==========================================================================
event                  behaviour
=====================  ==========================================================================
silence                the watchdog: no message for ``INGEST_STALL_SECONDS`` (the server may
                       still answer pings, python-binance#1057) → closed and reopened
closed, refused,       reopened after :class:`~capstock.backoff.Backoff` (0.5 s doubling to
handshake failed       30 s, jittered, never giving up; reset by the first message)
24 h lifetime          after ``INGEST_ROLLOVER_SECONDS`` a new connection to the same streams
                       is opened first; the old one is read for :data:`ROLLOVER_DRAIN_SECONDS`
                       more, then closed: the two overlap, so the consumer sees some
                       messages twice and none lost (it deduplicates by id)
server pings (20 s)    answered by `websockets` itself, echoing the payload
SUBSCRIBE/UNSUBSCRIBE  sent on the open connection, at most :data:`CONTROL_MESSAGES_PER_SECOND`
                       (Binance counts every incoming frame, pongs included, against 5 per
                       second), :data:`NAMES_PER_MESSAGE` names each
=====================  ==========================================================================

Why `websockets` and not python-binance's sockets: python-binance 1.0.37's
``ReconnectingWebsocket`` puts messages on a queue of 100 and *stops* when it overflows
(python-binance#1016, #1295, #1647: ``max_queue_size`` ignored), gives up after 5
reconnects (#1654), reports a reconnect only as an in-band ``{"e": "error"}`` message
after the fact, has no watchdog for a silent socket (#670, #1057) and owns its socket,
so two connections cannot overlap for the 24-hour rollover; it is also asyncio-only while
the producer is threads. `websockets` (which python-binance uses underneath) gives a
plain blocking client with ping/pong handled, a ``recv`` timeout for the watchdog and
full control over reconnecting.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from capstock.backoff import Backoff, Sleeper
from capstock.exchange.client import ExchangeTrouble

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
CONTROL_MESSAGES_PER_SECOND = 3
"""Our SUBSCRIBE/UNSUBSCRIBE rate: Binance disconnects above 5 incoming frames a second on
one connection, pongs and pings included, so this leaves room for them."""
NAMES_PER_MESSAGE = 100
"""Stream names per SUBSCRIBE/UNSUBSCRIBE message."""
ROLLOVER_DRAIN_SECONDS = 1.0
"""After the replacement connection is open, how long the old one is still read."""
READ_TICK_SECONDS = 0.25
"""The reader wakes at least this often to check the watchdog, stop and rollover."""
OPEN_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 1.0
CLIENT_PING_SECONDS = 20.0
"""Our own pings (a dead TCP connection shows up within twice this)."""
MAX_MESSAGE_BYTES = 4 * 2**20
MAX_QUEUED_FRAMES = 4096
RECONNECT_BASE_SECONDS = 0.5
RECONNECT_CAP_SECONDS = 30.0

Receiver = Callable[[str, Any, float], None]
"""``(stream name, data, received at (time.time()))``, called in the connection's thread."""


def combined_url(base: str, streams: Iterable[str]) -> str:
    """``ws://host:9443`` and ``["btcusdt@trade", "btcusdt@ticker"]`` →
    ``ws://host:9443/stream?streams=btcusdt@trade/btcusdt@ticker``."""
    return f"{base.rstrip('/')}/stream?streams={'/'.join(streams)}"


def shard(streams: list[str], per_connection: int) -> list[list[str]]:
    """Split ``streams`` into lists of at most ``per_connection`` (and at most 1,024),
    keeping their order.

    >>> shard(["a", "b", "c"], 2)
    [['a', 'b'], ['c']]
    """
    size = max(1, min(per_connection, MAX_STREAMS_PER_CONNECTION))
    return [streams[i : i + size] for i in range(0, len(streams), size)]


@dataclass
class ConnectionStats:
    """What happened to one connection slot, for logs, the heartbeat and tests."""

    connects: int = 0
    messages: int = 0
    reconnects: int = 0
    stalls: int = 0
    """Reopened by the watchdog."""
    rollovers: int = 0
    """Replaced with an overlapping connection at ``INGEST_ROLLOVER_SECONDS``."""
    closed_by_server: int = 0
    control_sent: int = 0
    errors: list[str] = field(default_factory=list)
    """Error answers to control messages."""


class StreamConnection:
    """One combined-stream connection slot, reopened whenever it fails (see the module
    docstring). ``on_connect(self)`` runs in its thread after each reconnection that
    followed a loss (not after a rollover, which loses nothing); :attr:`last_outage` says
    how long it lasted.

    Thread-safe API: :meth:`subscribe`, :meth:`unsubscribe`, :attr:`streams`,
    :meth:`trouble`, :meth:`stop`.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        streams: Iterable[str],
        receive: Receiver,
        *,
        sleeper: Sleeper,
        stall_seconds: float,
        rollover_seconds: float,
        on_connect: Callable[[StreamConnection], None] | None = None,
        backoff: Callable[[], Backoff] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self._streams = list(dict.fromkeys(streams))
        self.receive = receive
        self.sleeper = sleeper
        self.stall_seconds = stall_seconds
        self.rollover_seconds = rollover_seconds
        self.on_connect = on_connect
        self._backoff = backoff or (
            lambda: Backoff(
                base=RECONNECT_BASE_SECONDS, cap=RECONNECT_CAP_SECONDS, max_attempts=None
            )
        )
        self.clock = clock
        self.stats = ConnectionStats()
        self._lock = threading.Lock()
        self._control: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._next_control_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: ClientConnection | None = None
        self.connected = False
        self.down_since: float | None = time.time()
        """Epoch seconds since when it has no open connection (None while it has one)."""
        self.last_error: str | None = None
        self.last_outage: tuple[float, float] | None = None
        """(down since, up again), epoch seconds, of the last loss it recovered from: what
        ``on_connect`` may need to catch up on."""

    # -- any thread ------------------------------------------------------------------------

    @property
    def streams(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def subscribe(self, names: Iterable[str]) -> None:
        """Add streams: on the open connection by SUBSCRIBE (paced), and to the URL of
        every later one."""
        self._change("SUBSCRIBE", names)

    def unsubscribe(self, names: Iterable[str]) -> None:
        self._change("UNSUBSCRIBE", names)

    def _change(self, method: str, names: Iterable[str]) -> None:
        with self._lock:
            if method == "SUBSCRIBE":
                fresh = [n for n in names if n not in self._streams]
                self._streams.extend(fresh)
            else:
                gone = set(names)
                fresh = [n for n in self._streams if n in gone]
                self._streams = [n for n in self._streams if n not in gone]
            for i in range(0, len(fresh), NAMES_PER_MESSAGE):
                self._control.append({"method": method, "params": fresh[i : i + NAMES_PER_MESSAGE]})

    def trouble(self) -> ExchangeTrouble | None:
        if self.connected or self.down_since is None:
            return None
        return ExchangeTrouble(
            f"stream connection {self.name} down: {self.last_error or 'connecting'}",
            self.down_since,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end (it closes its connection); :meth:`stop` also waits."""
        self._stop.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or self.sleeper.stopped

    # -- the connection's thread -----------------------------------------------------------

    def _open(self) -> ClientConnection:
        with self._lock:
            streams = list(self._streams)
            self._control.clear()  # the URL carries every stream wanted now
        ws = connect(
            combined_url(self.base_url, streams),
            open_timeout=OPEN_TIMEOUT_SECONDS,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
            ping_interval=CLIENT_PING_SECONDS,
            ping_timeout=CLIENT_PING_SECONDS,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=MAX_QUEUED_FRAMES,
            compression=None,
        )
        # Newer `websockets` warn unless a connection is used as a context manager;
        # entering it is all they ask for (closing it stays ours: _close).
        return ws.__enter__()

    def _run(self) -> None:
        backoff = self._backoff()
        lost = False
        while not self.stopping:
            if not self.streams:
                self._stop.wait(READ_TICK_SECONDS)
                continue
            try:
                ws = self._open()
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as e:
                self._went_down(f"{type(e).__name__}: {e}")
                self._wait(backoff.next_delay())
                lost = True
                continue
            self.stats.connects += 1
            if lost:
                self.stats.reconnects += 1
            self._came_up()
            if lost and self.on_connect is not None:
                self.on_connect(self)
            self._current = ws
            try:
                reason = self._read(backoff)
            finally:
                _close(self._current or ws)  # the replacement, after a rollover
            lost = reason != "stopped"
            if lost:
                self._went_down(reason)
                self._wait(backoff.next_delay())
        self.connected = False

    def _read(self, backoff: Backoff) -> str:
        """Read :attr:`_current` until it fails, goes silent or the slot stops (replacing
        it at each rollover); returns why it ended."""
        ws = self._current
        opened = last_message = self.clock()
        while not self.stopping:
            if self.clock() - opened >= self.rollover_seconds:
                replacement = self._replace(ws)
                if replacement is not None:
                    ws = self._current = replacement
                    opened = last_message = self.clock()
                else:
                    opened = self.clock() - self.rollover_seconds + READ_TICK_SECONDS * 4
            self._send_control(ws)
            try:
                text = ws.recv(timeout=READ_TICK_SECONDS)
            except TimeoutError:
                if self.clock() - last_message >= self.stall_seconds:
                    self.stats.stalls += 1
                    log.warning(
                        "stream connection %s silent for %.0fs: reopening it",
                        self.name,
                        self.clock() - last_message,
                    )
                    return f"silent for {self.stall_seconds:g}s"
                continue
            except ConnectionClosed as e:
                self.stats.closed_by_server += 1
                return _closed_reason(e)
            last_message = self.clock()
            if backoff.failures:
                backoff.reset()
            self._dispatch(text)
        return "stopped"

    def _replace(self, old: ClientConnection) -> ClientConnection | None:
        """The rollover: open the new connection, read the old one a little longer, close it."""
        try:
            new = self._open()
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as e:
            log.warning("stream connection %s: rollover failed to open (%s)", self.name, e)
            return None
        self.stats.connects += 1
        self.stats.rollovers += 1
        log.info("stream connection %s: rollover, the replacement is open", self.name)
        deadline = self.clock() + ROLLOVER_DRAIN_SECONDS
        while self.clock() < deadline:
            try:
                self._dispatch(old.recv(timeout=max(0.0, deadline - self.clock())))
            except (TimeoutError, ConnectionClosed):
                break
        _close(old)
        return new

    def _dispatch(self, text: str | bytes) -> None:
        received = time.time()
        try:
            message = json.loads(text)
        except ValueError:
            log.warning("stream connection %s: not JSON: %.200r", self.name, text)
            return
        if not isinstance(message, dict):
            return
        if "stream" in message and "data" in message:
            self.stats.messages += 1
            try:
                self.receive(message["stream"], message["data"], received)
            except Exception:  # a bug in the consumer must not end the connection's thread
                log.exception("stream %s: handling a message failed", message["stream"])
        elif "error" in message:
            self.stats.errors.append(str(message["error"]))
            log.error("stream connection %s: control message refused: %s", self.name, message)

    def _send_control(self, ws: ClientConnection) -> None:
        now = self.clock()
        if now < self._next_control_at:
            return
        with self._lock:
            if not self._control:
                return
            request = self._control.pop(0)
        request["id"] = next(self._ids)
        ws.send(json.dumps(request))
        self.stats.control_sent += 1
        self._next_control_at = now + 1.0 / CONTROL_MESSAGES_PER_SECOND

    def _came_up(self) -> None:
        if self.down_since is not None and self.stats.connects > 1:
            self.last_outage = (self.down_since, time.time())
            log.info(
                "stream connection %s open again after %.1fs (%d streams)",
                self.name,
                time.time() - self.down_since,
                len(self.streams),
            )
        self.connected = True
        self.down_since = None
        self.last_error = None

    def _went_down(self, reason: str) -> None:
        if self.connected or self.down_since is None:
            self.down_since = time.time()
            log.warning("stream connection %s lost: %s; reconnecting", self.name, reason)
        self.connected = False
        self.last_error = reason

    def _wait(self, seconds: float) -> None:
        deadline = self.clock() + seconds
        while not self.stopping and self.clock() < deadline:
            self._stop.wait(min(READ_TICK_SECONDS, max(0.0, deadline - self.clock())))


def _closed_reason(e: ConnectionClosed) -> str:
    frame = e.rcvd
    if frame is None:
        return "connection dropped (no close frame)"
    return f"closed by the server: {frame.code} {frame.reason}".rstrip()


def _close(ws: ClientConnection) -> None:
    try:
        ws.close()
    except Exception:  # closing a broken socket: nothing to save
        log.debug("closing a stream connection failed", exc_info=True)
