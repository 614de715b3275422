"""The simulator's HTTP server: routes requests to a :class:`Simulator` and writes its responses.

``GET /api/v3/<endpoint>`` goes to :meth:`Simulator.respond`, ``/_sim/...`` to the control
endpoints (:mod:`capstock.simulator.control`); anything else is 404
``{"code": -1000, "msg": "Unknown path."}``. One thread per connection, HTTP/1.1 keep-alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from capstock.exchange import limits
from capstock.simulator import control
from capstock.simulator.responses import Response, json_response

if TYPE_CHECKING:
    from capstock.simulator.exchange import Simulator

log = logging.getLogger(__name__)

API_PREFIX = "/api/v3/"
UNKNOWN_PATH = {"code": -1000, "msg": "Unknown path."}


def query_params(query: str) -> dict[str, str]:
    """``symbol=BTCUSDT&limit=5`` → ``{"symbol": "BTCUSDT", "limit": "5"}`` (first value wins)."""
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


class SimulatorServer(ThreadingHTTPServer):
    """Binds at construction; ``serve_forever`` answers for ``simulator``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, RequestHandler)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client
    # waits for a delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True
    server_version = "cap-stock-simulator"
    sys_version = ""
    server: SimulatorServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        try:
            self._send(self._route(method))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, method: str) -> Response:
        sim = self.server.simulator
        parts = urlsplit(self.path)
        if parts.path.startswith(control.PREFIX):
            return control.handle(sim, method, parts.path, self._read_json)
        if method == "GET" and parts.path.startswith(API_PREFIX):
            return sim.respond(parts.path[len(API_PREFIX) :], query_params(parts.query))
        return json_response(404, UNKNOWN_PATH)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _send(self, response: Response) -> None:
        self.server.simulator.statuses[response.status] += 1
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(response.declared_length or len(response.body)))
        if response.used_weight is not None:
            self.send_header(limits.USED_WEIGHT_HEADER, str(response.used_weight))
            self.send_header(limits.USED_WEIGHT_HEADER_BARE, str(response.used_weight))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)
        if response.hang_up:
            self.close_connection = True
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
