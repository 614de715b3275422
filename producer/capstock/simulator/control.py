"""The simulator's own endpoints, for tests and demos (not part of Binance; no weight).

* ``GET /_sim/state``: symbols, active faults, weight per window, requests per endpoint;
* ``POST /_sim/faults``: add faults (one JSON object, a list, or ``{"faults": [...]}``),
  e.g. ``{"kind": "5xx", "count": 1, "status": 503}``;
* ``DELETE /_sim/faults``: clear them;
* ``POST /_sim/trade_gap`` ``{"symbol": "BTCUSDT", "skip": 5}``: skip trade ids;
* ``POST /_sim/reset``: forget used weight and bans;
* ``GET /_sim/streams``: websocket connections, their streams and counters (opened,
  messages, dropped, stalled, skipped, rollovers, rate_limited, pong_timeouts, ...);
* ``POST /_sim/streams`` ``{"rollover_seconds": 5}``: reschedule the streams' rollover.

Stream faults (``ws_drop``, ``ws_stall``, ``ws_skip``, ``ws_rollover``) go through
``/_sim/faults`` like the others.

Answers are JSON; a bad request body is 400 ``{"error": "..."}``, another path 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from capstock.simulator.faults import Fault
from capstock.simulator.responses import Response, json_response

if TYPE_CHECKING:
    from capstock.simulator.exchange import Simulator

PREFIX = "/_sim/"

ReadJson = Callable[[], Any]
"""Reads the request body as JSON (``{}`` when empty); only the routes that need it call it."""


def fault_items(data: Any) -> list[Any]:
    """The faults in a ``POST /_sim/faults`` body: one object, a list, or ``{"faults": [...]}``."""
    if isinstance(data, dict) and "faults" in data:
        data = data["faults"]
    return data if isinstance(data, list) else [data]


def _state(sim: Simulator, read_json: ReadJson) -> Any:
    return sim.state()


def _add_faults(sim: Simulator, read_json: ReadJson) -> Any:
    for item in fault_items(read_json()):
        sim.faults.add(Fault.from_json(item))
    return {"faults": sim.faults.snapshot()}


def _clear_faults(sim: Simulator, read_json: ReadJson) -> Any:
    sim.clear_faults()
    return {"faults": []}


def _trade_gap(sim: Simulator, read_json: ReadJson) -> Any:
    data = read_json()
    sim.skip_trade_ids(str(data["symbol"]), int(data.get("skip", 1)))
    return {"ok": True}


def _streams(sim: Simulator, read_json: ReadJson) -> Any:
    return sim.streams.state()


def _set_streams(sim: Simulator, read_json: ReadJson) -> Any:
    data = read_json()
    unknown = set(data) - {"rollover_seconds"}
    if unknown:
        raise ValueError(f"unknown stream settings: {sorted(unknown)}")
    if "rollover_seconds" in data:
        sim.set_rollover(float(data["rollover_seconds"]))
    return sim.streams.state()


def _reset(sim: Simulator, read_json: ReadJson) -> Any:
    sim.ledger.reset()
    return {"ok": True}


ROUTES: dict[tuple[str, str], Callable[[Simulator, ReadJson], Any]] = {
    ("GET", "/_sim/state"): _state,
    ("POST", "/_sim/faults"): _add_faults,
    ("DELETE", "/_sim/faults"): _clear_faults,
    ("POST", "/_sim/trade_gap"): _trade_gap,
    ("POST", "/_sim/reset"): _reset,
    ("GET", "/_sim/streams"): _streams,
    ("POST", "/_sim/streams"): _set_streams,
}


def handle(sim: Simulator, method: str, path: str, read_json: ReadJson) -> Response:
    """The response to ``method path`` (``path`` starts with :data:`PREFIX`)."""
    route = ROUTES.get((method, path))
    if route is None:
        return json_response(404, {"error": f"no control endpoint {method} {path}"})
    try:
        return json_response(200, route(sim, read_json))
    except (ValueError, KeyError, TypeError) as e:
        return json_response(400, {"error": str(e)})
