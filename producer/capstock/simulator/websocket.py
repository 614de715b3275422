"""The simulator's websocket streams: Binance's market-stream protocol over the same market.

Served on its own port (``--ws-port``; by default the API port + 1) by an asyncio
`websockets` server in a background thread::

    ws://127.0.0.1:8901/ws/btcusdt@trade                       raw: the payload alone
    ws://127.0.0.1:8901/ws/btcusdt@trade/ethusdt@depth         raw, several streams
    ws://127.0.0.1:8901/stream?streams=btcusdt@trade/btcusdt@kline_1m
                                    combined: {"stream":"btcusdt@trade","data":{...}}

Stream names and payloads: :mod:`capstock.simulator.streams`; what each stream carries
and when: :mod:`capstock.simulator.feed`. A name the exchange does not serve (an upper-case
symbol included) gets HTTP 400 at the handshake; more than :data:`MAX_STREAMS` too.

**Control messages** (JSON text frames), answered in order with the data::

    {"method":"SUBSCRIBE","params":["btcusdt@depth"],"id":1}     → {"result":null,"id":1}
    {"method":"UNSUBSCRIBE","params":["btcusdt@depth"],"id":2}   → {"result":null,"id":2}
    {"method":"LIST_SUBSCRIPTIONS","id":3}               → {"result":["btcusdt@trade"],"id":3}
    {"method":"SET_PROPERTY","params":["combined",true],"id":4}  → {"result":null,"id":4}
    {"method":"GET_PROPERTY","params":["combined"],"id":5}       → {"result":true,"id":5}

``id`` is an int64, an alphanumeric string of up to 36 characters, or null. A bad request
is answered ``{"error":{"code":2,"msg":"Invalid request: ..."},"id":...}`` (code 0 unknown
property, 1 not a boolean, 3 invalid JSON), and the subscriptions stay as they were; a
SUBSCRIBE that would pass :data:`MAX_STREAMS` is such an error. Well-formed names for
symbols the market lacks are accepted and stay silent, as on the exchange.

**Limits, as Binance documents them** (times: ping and rate on the wall clock, rollover on
the simulator's clock, so a test's fake clock can reach it):

* a ping frame every ``ping_interval`` seconds (20); a connection with a ping unanswered
  for ``pong_timeout`` seconds (60) is closed (1008 "Pong timeout"). Only a pong echoing a
  ping's payload answers it; unsolicited pongs are allowed but do not;
* more than :data:`MAX_INCOMING_PER_SECOND` incoming frames (text, ping or pong) within
  one second close the connection (1008 "Too many messages");
* ``rollover_seconds`` (24 h) after it opened, a connection is closed with 1001;
* :data:`MAX_STREAMS` streams per connection.

**Faults**: the ``ws_*`` kinds of :mod:`capstock.simulator.faults` (drop, stall, skip,
rollover), consulted per message.

**python-binance against the simulator.** Its stream URL is the class attribute
``BinanceSocketManager.STREAM_URL`` (``binance/ws/streams.py``),
``"wss://stream.binance.{}:9443/"``, formatted with the client's ``tld`` in
``__init__``; sockets connect to
``STREAM_URL + "ws/" + <stream>`` or ``STREAM_URL + "stream?" + "streams=a/b"``. A URL
without ``{}`` survives the ``format``, so either subclass it or set it on the instance
(``Simulator.ws_url`` ends with the ``/`` it needs)::

    client = AsyncClient()                        # the constructor does not ping
    bsm = BinanceSocketManager(client)
    bsm.STREAM_URL = sim.ws_url                   # ws://127.0.0.1:<port>/
    async with bsm.multiplex_socket(["btcusdt@trade", "btcusdt@depth@100ms"]) as s:
        msg = await s.recv()

``ThreadedWebsocketManager`` builds both itself on its own loop: its client with
``AsyncClient.create`` (which pings ``AsyncClient.API_URL``, Binance's REST API, first)
and its ``BinanceSocketManager`` in ``_before_socket_listener_start``. Point it at the
simulator by subclassing: override ``_before_socket_listener_start`` to set
``self._bsm.STREAM_URL = sim.ws_url`` after calling the parent, and make the ping reach
the simulator (an ``AsyncClient`` subclass whose ``API_URL`` is ``sim.url``, created in an
overridden ``socket_listener``); ``tests/support/stream_clients.py`` does exactly that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.http11 import Request, Response

from capstock.simulator.faults import FaultPlan
from capstock.simulator.feed import StreamFeed
from capstock.simulator.streams import BadStreamName, Stream, parse_stream

log = logging.getLogger(__name__)
protocol_log = logging.getLogger(__name__ + ".protocol")
"""The `websockets` library's own log: warnings and errors only (it says "connection open"
and "connection closed" at INFO for every client)."""
protocol_log.setLevel(logging.WARNING)

MAX_STREAMS = 1024
"""Streams per connection."""
MAX_INCOMING_PER_SECOND = 5
"""Incoming frames (text, ping, pong) per second and connection before a disconnect."""
PING_INTERVAL = 20.0
PONG_TIMEOUT = 60.0
ROLLOVER_SECONDS = 24 * 3600.0
TICK_SECONDS = 0.05
"""How often the feed is asked for new events (wall clock)."""
MAX_OUTBOX = 50_000
"""Messages queued for a client that does not read before it is cut off."""
CLOSE_TIMEOUT = 1.0
"""Seconds a closing handshake may take before the socket is closed anyway."""

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_COUNTED = (Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for the streams (``port`` 0: a free one)."""
    return socket.create_server((host, port))


# -- paths and control messages ----------------------------------------------------------------


class RequestError(ValueError):
    """A control message the exchange rejects: ``{"error": {"code", "msg"}, "id": ...}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def streams_of_path(target: str) -> tuple[list[str], bool]:
    """The stream names in a request target and whether payloads are wrapped (combined).

    >>> streams_of_path("/stream?streams=btcusdt@trade/ethusdt@ticker")
    (['btcusdt@trade', 'ethusdt@ticker'], True)
    >>> streams_of_path("/ws/btcusdt@trade")
    (['btcusdt@trade'], False)
    """
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    unit = query.get("timeUnit", ["MILLISECOND"])[0]
    if unit.upper() != "MILLISECOND":
        raise BadStreamName(f"timeUnit {unit!r} is not simulated (only MILLISECOND)")
    path = parts.path.rstrip("/")
    if path == "/stream":
        names = query.get("streams", [""])[0]
        return [n for n in names.split("/") if n], True
    if path == "/ws" or path.startswith("/ws/"):
        return [n for n in path.removeprefix("/ws").split("/") if n], False
    raise BadStreamName(f"no such path {parts.path!r}: use /ws/<stream> or /stream?streams=")


_ID_TEXT = re.compile(r"[A-Za-z0-9]{1,36}")


def _check_id(request_id: Any) -> Any:
    """A valid request ``id`` (int64, alphanumeric string up to 36, or null) or an error."""
    if request_id is None:
        return None
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        if -(2**63) <= request_id < 2**63:
            return request_id
    elif isinstance(request_id, str) and _ID_TEXT.fullmatch(request_id):
        return request_id
    raise RequestError(
        2,
        "Invalid request: request ID must be an int64, an alphanumeric string of up to "
        "36 characters, or null",
    )


@dataclass
class Subscriptions:
    """A connection's streams (in subscription order) and its ``combined`` property."""

    combined: bool
    streams: dict[str, Stream] = field(default_factory=dict)

    def add(self, names: Iterable[str]) -> None:
        """Subscribe to every name or, if one is bad or they pass the limit, to none."""
        parsed = [parse_stream(n) for n in names]
        fresh = {s.name: s for s in parsed if s.name not in self.streams}
        if len(self.streams) + len(fresh) > MAX_STREAMS:
            raise RequestError(
                2, f"Invalid request: too many streams (at most {MAX_STREAMS} per connection)"
            )
        self.streams.update(fresh)

    def handle(self, text: str | bytes) -> dict[str, Any]:
        """The answer to one control message."""
        request_id = None
        try:
            try:
                message = json.loads(text)
            except ValueError as e:
                raise RequestError(3, f"Invalid JSON: {e}") from None
            if not isinstance(message, dict):
                raise RequestError(2, "Invalid request: expected a JSON object")
            request_id = _check_id(message.get("id"))
            return {"result": self._call(message), "id": request_id}
        except RequestError as e:
            return {"error": {"code": e.code, "msg": e.msg}, "id": request_id}
        except BadStreamName as e:
            return {"error": {"code": 2, "msg": f"Invalid request: {e}"}, "id": request_id}

    def _call(self, message: dict[str, Any]) -> Any:
        method = message.get("method")
        if method is None:
            raise RequestError(2, "Invalid request: missing field `method`")
        if method not in METHODS:
            raise RequestError(
                2, f"Invalid request: unknown variant {method!r}, expected one of {METHODS}"
            )
        params = message.get("params", [])
        if not isinstance(params, list):
            raise RequestError(2, "Invalid request: params must be an array")
        if method == "SUBSCRIBE":
            self.add(params)
            return None
        if method == "UNSUBSCRIBE":
            for name in params:
                if not isinstance(name, str):
                    raise RequestError(2, "Invalid request: stream names must be strings")
            for name in params:
                self.streams.pop(name, None)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            return list(self.streams)
        if not params or not isinstance(params[0], str):
            raise RequestError(2, "Invalid request: property name must be a string")
        if params[0] != "combined":
            raise RequestError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return self.combined
        if len(params) != 2 or not isinstance(params[1], bool):
            raise RequestError(1, "Invalid value type: expected Boolean")
        self.combined = params[1]
        return None


# -- connections -------------------------------------------------------------------------------


@dataclass(eq=False)
class Session:
    """One client connection's state."""

    conn: StreamConnection
    subscriptions: Subscriptions
    opened_ms: int
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    incoming: deque[float] = field(default_factory=deque)
    stalled: bool = False
    closing: bool = False

    @property
    def live(self) -> bool:
        return not (self.stalled or self.closing)


class StreamConnection(ServerConnection):
    """Counts every incoming frame for the rate limit (pings and pongs are answered and
    consumed by `websockets` itself, so a handler never sees them)."""

    session: Session | None = None
    rate_exceeded: Callable[[Session], None] | None = None

    def process_event(self, event: Any) -> None:
        session = self.session
        if self.request is not None and session is not None and event.opcode in _COUNTED:
            now = time.monotonic()
            session.incoming.append(now)
            while session.incoming and session.incoming[0] <= now - 1.0:
                session.incoming.popleft()
            if len(session.incoming) > MAX_INCOMING_PER_SECOND and self.rate_exceeded:
                self.rate_exceeded(session)
        super().process_event(event)


class StreamServer:
    """Serves the streams of ``feed`` on ``sock`` in a thread of its own (:meth:`start`).

    ``lock`` is the market's lock (held around :meth:`StreamFeed.tick`), ``now_ms`` the
    simulator's clock and ``faults`` its fault plan (the ``ws_*`` kinds act here).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        feed: StreamFeed,
        lock: threading.Lock,
        now_ms: Callable[[], int],
        faults: FaultPlan,
        ping_interval: float = PING_INTERVAL,
        pong_timeout: float = PONG_TIMEOUT,
        rollover_seconds: float = ROLLOVER_SECONDS,
    ) -> None:
        self._sock = sock
        self.feed = feed
        self._lock = lock
        self._now_ms = now_ms
        self.faults = faults
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.rollover_seconds = rollover_seconds
        self.counts: Counter[str] = Counter()
        self._sessions: set[Session] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()

    @property
    def host(self) -> str:
        return self._sock.getsockname()[0]

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Serve in a background thread (returns once it accepts connections)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete,
            args=(self._serve(),),
            name="exchange-simulator-streams",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the stream server did not start")

    def close(self) -> None:
        """Close every connection (1001), stop serving and close the socket."""
        if self._thread is not None and self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(timeout=10)
            self._loop.close()
            self._thread = None
        with contextlib.suppress(OSError):
            self._sock.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        async with serve(
            self._handle,
            sock=self._sock,
            process_request=self._accept,
            create_connection=StreamConnection,
            compression=None,
            logger=protocol_log,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
        ) as server:
            ticker = asyncio.create_task(self._tick_forever())
            self._ready.set()
            await self._stopping.wait()
            ticker.cancel()
            for session in list(self._sessions):
                if session.stalled:
                    self._abort(session)
            server.close()
            await server.wait_closed()

    # -- connections -----------------------------------------------------------------------

    def _accept(self, conn: ServerConnection, request: Request) -> Response | None:
        """Check the path before the handshake; HTTP 400 for a stream the exchange lacks."""
        assert isinstance(conn, StreamConnection)
        try:
            names, combined = streams_of_path(request.path)
            subscriptions = Subscriptions(combined)
            if len(names) > MAX_STREAMS:
                raise BadStreamName(f"too many streams (at most {MAX_STREAMS} per connection)")
            subscriptions.add(names)
        except (BadStreamName, RequestError) as e:
            self.counts["rejected"] += 1
            return conn.respond(400, f"{e}\n")
        conn.session = Session(conn, subscriptions, opened_ms=self._now_ms())
        conn.rate_exceeded = self._too_many_messages
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, StreamConnection) and conn.session is not None
        session = conn.session
        self._sessions.add(session)
        self.counts["opened"] += 1
        tasks = [
            asyncio.create_task(self._write(session)),
            asyncio.create_task(self._ping(session)),
        ]
        try:
            async for message in conn:
                if session.live:
                    self._enqueue(session, json.dumps(session.subscriptions.handle(message)))
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(session)
            for task in tasks:
                task.cancel()

    async def _write(self, session: Session) -> None:
        while True:
            text = await session.outbox.get()
            if session.stalled:
                continue
            try:
                await session.conn.send(text)
            except ConnectionClosed:
                return

    async def _ping(self, session: Session) -> None:
        sent = 0
        while True:
            await asyncio.sleep(self.ping_interval)
            if not session.live:
                continue
            sent += 1
            try:
                await session.conn.ping(f"{self._now_ms()}:{sent}")
            except ConnectionClosed:
                return
            self.counts["pings"] += 1

    def _enqueue(self, session: Session, text: str) -> None:
        if session.outbox.qsize() >= MAX_OUTBOX:
            log.warning("simulator streams: a client reads too slowly, cutting it off")
            self.counts["slow_clients"] += 1
            self._abort(session)
            return
        session.outbox.put_nowait(text)

    # -- ending a connection ---------------------------------------------------------------

    def _close(self, session: Session, code: int, reason: str, counter: str) -> None:
        if session.closing:
            return
        session.closing = True
        self.counts[counter] += 1
        asyncio.get_running_loop().create_task(session.conn.close(code, reason))

    def _abort(self, session: Session) -> None:
        session.closing = True
        transport = session.conn.transport
        if transport is not None:
            transport.abort()

    def _too_many_messages(self, session: Session) -> None:
        self._close(session, CLOSE_POLICY, "Too many messages", "rate_limited")

    def _stall(self, session: Session, *, pongs: bool) -> None:
        session.stalled = True
        self.counts["stalled"] += 1
        while not session.outbox.empty():
            session.outbox.get_nowait()
        if not pongs and session.conn.transport is not None:
            session.conn.transport.pause_reading()

    # -- ticks -----------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.tick()
            except Exception:  # a bug here must not stop every stream
                log.exception("simulator streams: tick failed")

    def tick(self) -> None:
        """Send what the feed has for every open connection; end the ones whose time is up."""
        sessions = [s for s in self._sessions if not s.closing]
        wanted = {
            name: stream
            for session in sessions
            if session.live
            for name, stream in session.subscriptions.streams.items()
        }
        with self._lock:
            events = self.feed.tick(self._now_ms(), wanted.values())
            now_ms = self.feed.market.now_ms
        faulty = self.faults.has_stream_faults()
        rendered: dict[tuple[int, bool], str] = {}
        loop_now = asyncio.get_running_loop().time()
        for session in sessions:
            if self._expired(session, now_ms, loop_now) or not session.live:
                continue
            for index, (name, payload) in enumerate(events):
                stream = session.subscriptions.streams.get(name)
                if stream is None:
                    continue
                if faulty and self._fault_acts(session, stream):
                    if not session.live:
                        break
                    continue
                combined = session.subscriptions.combined
                text = rendered.get((index, combined))
                if text is None:
                    body = {"stream": name, "data": payload} if combined else payload
                    text = rendered[(index, combined)] = json.dumps(body, separators=(",", ":"))
                self._enqueue(session, text)
                self.counts["messages"] += 1
                if session.closing:
                    break

    def _expired(self, session: Session, now_ms: int, loop_now: float) -> bool:
        """Close a connection past its rollover, or a live one with a ping unanswered for
        longer than the pong timeout; True if it was."""
        if now_ms - session.opened_ms >= self.rollover_seconds * 1000:
            self._close(session, CLOSE_GOING_AWAY, "Connection lifetime reached", "rollovers")
            return True
        if session.stalled:
            return False
        sent = [sent_at for _, sent_at in session.conn.pending_pings.values()]
        if sent and loop_now - min(sent) > self.pong_timeout:
            self._close(session, CLOSE_POLICY, "Pong timeout", "pong_timeouts")
            return True
        return False

    def _fault_acts(self, session: Session, stream: Stream) -> bool:
        """Apply the ``ws_*`` fault picked for this message, if any; True if one was."""
        fault = self.faults.pick_stream(stream.name, sequenced=stream.sequenced)
        if fault is None:
            return False
        if fault.kind == "ws_drop":
            self.counts["dropped"] += 1
            self._abort(session)
        elif fault.kind == "ws_stall":
            self._stall(session, pongs=fault.pongs)
        elif fault.kind == "ws_rollover":
            self._close(session, CLOSE_GOING_AWAY, "Connection lifetime reached", "rollovers")
        else:
            self.counts["skipped"] += 1
        return True

    # -- observing -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What ``GET /_sim/streams`` shows: open connections, their streams and counters
        since the start (opened, messages, pings, rejected, dropped, stalled, skipped,
        rollovers, rate_limited, pong_timeouts, slow_clients), read in the server's
        thread, where connections change."""
        loop = self._loop
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._state(), loop)
            return future.result(timeout=5)
        return self._describe()

    async def _state(self) -> dict[str, Any]:
        return self._describe()

    def _describe(self) -> dict[str, Any]:
        sessions = list(self._sessions)
        return {
            "connections": len(sessions),
            "stalled": sum(1 for s in sessions if s.stalled),
            "streams": sorted({n for s in sessions for n in s.subscriptions.streams}),
            "ping_interval": self.ping_interval,
            "pong_timeout": self.pong_timeout,
            "rollover_seconds": self.rollover_seconds,
            "counts": dict(self.counts),
        }
