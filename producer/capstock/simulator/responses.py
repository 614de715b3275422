"""What goes back over the wire: a :class:`Response` value and the exchange's refusals.

Every API response carries ``x-mbx-used-weight-1m`` and ``x-mbx-used-weight``; errors are
``{"code": ..., "msg": ...}``. A refusal for weight is 429 (or 418 for a banned IP) with
``Retry-After``; a 5xx is Binance's JSON error, except 502 and 504, which come from a proxy
in front of the exchange: an HTML page without weight headers. The broken bodies of the
``malformed`` and ``truncated`` faults (:mod:`capstock.simulator.faults`) are made here too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from capstock.exchange import limits
from capstock.simulator.faults import Fault
from capstock.simulator.rest import ApiError

JSON = "application/json;charset=UTF-8"
TOO_MUCH_WEIGHT = (
    "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
BANNED = (
    "Way too much request weight used; IP banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)
SERVER_ERRORS = {
    500: {"code": -1000, "msg": "An unknown error occurred while processing the request."},
    503: {
        "code": -1008,
        "msg": "Server is currently overloaded with other requests. "
        "Please try again in a few minutes.",
    },
}
GATEWAY_STATUSES = (502, 504)
GATEWAY_PAGE = "<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"


@dataclass(frozen=True)
class Response:
    """One HTTP response. ``used_weight`` adds the weight headers; ``declared_length`` is a
    Content-Length other than the body's; ``hang_up`` closes the socket after sending."""

    status: int
    body: bytes
    used_weight: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON
    declared_length: int | None = None
    hang_up: bool = False


def dumps(obj: Any) -> bytes:
    """Compact JSON, as the exchange sends it."""
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(status: int, obj: Any, *, used_weight: int | None = None) -> Response:
    return Response(status, dumps(obj), used_weight)


def api_error(error: ApiError, used_weight: int) -> Response:
    body = {"code": error.code, "msg": error.msg}
    return json_response(error.status, body, used_weight=used_weight)


def too_much_weight(used_weight: int, weight_limit: int, retry_after: int) -> Response:
    """429: over the minute's weight limit."""
    body = {"code": limits.ERR_TOO_MANY_REQUESTS, "msg": TOO_MUCH_WEIGHT.format(limit=weight_limit)}
    return _refusal(429, body, used_weight, retry_after)


def banned(used_weight: int, until_ms: int, retry_after: int) -> Response:
    """418: the IP is banned until ``until_ms``."""
    body = {"code": limits.ERR_TOO_MANY_REQUESTS, "msg": BANNED.format(until=until_ms)}
    return _refusal(418, body, used_weight, retry_after)


def _refusal(status: int, body: Any, used_weight: int, retry_after: int) -> Response:
    headers = {limits.RETRY_AFTER_HEADER: str(retry_after)}
    return Response(status, dumps(body), used_weight, headers)


def server_error(status: int, used_weight: int) -> Response:
    """A 5xx: Binance's JSON error, or a proxy's HTML page for 502 and 504."""
    if status in GATEWAY_STATUSES:
        page = GATEWAY_PAGE.format(status=f"{status} {HTTPStatus(status).phrase}")
        return Response(status, page.encode(), content_type="text/html")
    body = SERVER_ERRORS.get(status, SERVER_ERRORS[500])
    return json_response(status, body, used_weight=used_weight)


# -- faults ------------------------------------------------------------------------------------

REFUSING_FAULTS = ("429", "418", "5xx")
"""Fault kinds answered instead of the request, whatever the used weight."""


def fault_refusal(fault: Fault, used_weight: int, *, weight_limit: int, now_ms: int) -> Response:
    """The response of a refusing fault (``fault.kind`` in :data:`REFUSING_FAULTS`)."""
    if fault.kind == "429":
        return too_much_weight(used_weight, weight_limit, fault.retry_after)
    if fault.kind == "418":
        return banned(used_weight, now_ms + fault.retry_after * 1000, fault.retry_after)
    return server_error(fault.status, used_weight)


def spoil(response: Response, fault: Fault) -> Response:
    """Half the body: ``malformed`` with a matching Content-Length; ``truncated`` announcing
    more than was sent, then hanging up. Other kinds leave the response alone."""
    half = response.body[: len(response.body) // 2]
    if fault.kind == "malformed":
        return dataclasses.replace(response, body=half)
    if fault.kind == "truncated":
        announced = len(response.body) + 1
        return dataclasses.replace(response, body=half, declared_length=announced, hang_up=True)
    return response
