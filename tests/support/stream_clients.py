"""Clients for the simulator's streams in tests.

* :class:`RawStreamClient`: a websocket client that shows every frame (pings included) and
  answers pings only when told to (websockets' sans-I/O protocol over a plain socket);
* :class:`SimulatorWebsocketManager`: python-binance's ThreadedWebsocketManager pointed at
  a simulator (its REST ping and its stream URL, see capstock.simulator.websocket);
* :class:`LocalBook`: Binance's documented local order book procedure (snapshot plus
  buffered diff events, with its sequence checks), as a consumer implements it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from binance.async_client import AsyncClient
from binance.ws.streams import ThreadedWebsocketManager
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class RawStreamClient:
    """One websocket connection whose frames the test reads and answers itself."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        uri = parse_uri(url)
        self.protocol = ClientProtocol(uri)
        self.sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        self.pending: list[Any] = []
        self.closed = False
        self.response = self._handshake(timeout)

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def _discard_automatic_answers(self) -> None:
        self.protocol.data_to_send()

    def _handshake(self, timeout: float) -> Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._receive(deadline, answer=False)
            for event in self.pending:
                if isinstance(event, Response):
                    self.pending.remove(event)
                    return event
        raise TimeoutError("no handshake response")

    def _receive(self, deadline: float, *, answer: bool) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        except ConnectionResetError:
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
            self.closed = True
        self.pending += self.protocol.events_received()
        if answer:
            self._flush()
        else:
            self._discard_automatic_answers()

    def frames(self, seconds: float, *, answer_pings: bool) -> list[Frame]:
        """Every frame received within ``seconds`` (fewer if the connection ends);
        pings are answered (an echoing pong) only with ``answer_pings``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.closed:
            self._receive(deadline, answer=answer_pings)
        frames, self.pending = [f for f in self.pending if isinstance(f, Frame)], []
        return frames

    def until_closed(self, seconds: float, *, answer_pings: bool = False) -> list[Frame]:
        return self.frames(seconds, answer_pings=answer_pings)

    def pong(self, payload: bytes) -> None:
        self.protocol.send_pong(payload)
        self._flush()

    def close(self) -> None:
        self.sock.close()


def close_frame(frames: list[Frame]) -> Frame | None:
    return next((f for f in frames if f.opcode is Opcode.CLOSE), None)


class SimulatorWebsocketManager(ThreadedWebsocketManager):
    """ThreadedWebsocketManager against a simulator.

    The parent creates its client with ``AsyncClient.create``, which pings Binance's REST
    API before anything else, and its BinanceSocketManager after that; here the client
    pings ``api_url`` and the socket manager connects to ``stream_url``.
    """

    def __init__(self, api_url: str, stream_url: str, **options: Any) -> None:
        super().__init__(**options)
        self.api_url = api_url
        self.stream_url = stream_url

    async def socket_listener(self) -> None:
        client_class = type("SimulatorAsyncClient", (AsyncClient,), {"API_URL": self.api_url})
        self._client = await client_class.create(loop=self._loop, **self._client_params)
        await self._before_socket_listener_start()
        while self._running:
            await asyncio.sleep(0.2)
        while self._socket_running:
            await asyncio.sleep(0.2)

    async def _before_socket_listener_start(self) -> None:
        await super()._before_socket_listener_start()
        assert self._bsm is not None
        self._bsm.STREAM_URL = self.stream_url


class Gap(Exception):
    """A diff event's U is past the book's update id + 1: events were missed."""


class LocalBook:
    """A local order book kept the way Binance documents (web-socket-streams, "How to
    manage a local order book correctly"):

    1. buffer the diff events, noting the first one's U;
    2. get a depth snapshot (``snapshot()``, limit 5000);
    3. if its lastUpdateId is below that first U, get another;
    4. drop buffered events with u <= lastUpdateId;
    5. take the snapshot as the book, its update id = lastUpdateId;
    6. apply the buffered events, then each new one: ignore u < the book's id; a U above
       the book's id + 1 means events were missed (discard the book, start again);
       quantities are absolute, "0" removes the level; the book's id becomes u.
    """

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot
        self.buffer: list[dict[str, Any]] = []
        self.levels: dict[str, dict[Decimal, Decimal]] | None = None
        self.update_id = 0
        self.resyncs = 0
        self.gaps = 0

    def on_event(self, event: dict[str, Any]) -> None:
        if self.levels is None:
            self.buffer.append(event)
            self._try_sync()
            return
        try:
            self._apply(event)
        except Gap:
            self.gaps += 1
            self.levels = None
            self.buffer = [event]
            self._try_sync()

    def _try_sync(self) -> None:
        first_u = self.buffer[0]["U"]
        snap = self.snapshot()
        if snap["lastUpdateId"] < first_u:
            return  # step 3: too old; the next event tries again
        self.resyncs += 1
        self.levels = {
            side: {Decimal(p): Decimal(q) for p, q in snap[key]}
            for side, key in (("b", "bids"), ("a", "asks"))
        }
        self.update_id = snap["lastUpdateId"]
        buffered = [e for e in self.buffer if e["u"] > self.update_id]
        self.buffer = []
        if buffered and not buffered[0]["U"] <= self.update_id + 1 <= buffered[0]["u"]:
            raise AssertionError("the first event after the snapshot must contain its id + 1")
        for event in buffered:
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        assert self.levels is not None
        if event["u"] < self.update_id:
            return
        if event["U"] > self.update_id + 1:
            raise Gap(f"U={event['U']} after {self.update_id}")
        for side in ("b", "a"):
            levels = self.levels[side]
            for price, qty in event[side]:
                if Decimal(qty) == 0:
                    levels.pop(Decimal(price), None)
                else:
                    levels[Decimal(price)] = Decimal(qty)
        self.update_id = event["u"]

    def as_depth(self) -> tuple[int, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(update id, bids best first, asks best first), like the REST snapshot."""
        assert self.levels is not None
        bids = sorted(self.levels["b"].items(), reverse=True)
        asks = sorted(self.levels["a"].items())
        return self.update_id, bids, asks
