"""A JSON-speaking HTTP handler for fake servers (Kafka Connect's REST API in the tests)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


class JsonHandler(BaseHTTPRequestHandler):
    """Subclasses implement do_GET/do_POST/...; answer() sends one JSON reply, quietly."""

    def answer(self, code: int, body: object = None) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_: object) -> None:
        pass
