"""The simulated exchange: one market, its fault switches and its weight budget, served over HTTP.

A request for ``GET /api/v3/<endpoint>`` goes through :meth:`Simulator.respond`:

1. its weight is charged to the ledger (:mod:`capstock.simulator.ledger`), refused or not;
2. the fault switches are consulted (:mod:`capstock.simulator.faults`): a ``429``, ``418``
   or ``5xx`` fault answers instead of the exchange, whatever the used weight;
3. a request over the weight limit is refused: 429 with ``Retry-After`` (seconds to the next
   window), or 418 once the IP is banned;
4. ``slow`` waits, ``unfiltered`` drops the ``symbols`` parameter, the market is advanced
   to now and the endpoint answers (:mod:`capstock.simulator.rest`);
5. ``malformed`` and ``truncated`` break the body on its way out.

With ``state_dir`` the market outlives the process (:mod:`capstock.simulator.state`).
The same market is streamed over websockets at :attr:`Simulator.ws_url`
(:mod:`capstock.simulator.websocket`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from capstock.simulator import state as market_state
from capstock.simulator import websocket
from capstock.simulator.faults import Fault, FaultPlan
from capstock.simulator.feed import StreamFeed
from capstock.simulator.ledger import BAN_AFTER_429S, Charge, WeightLedger, request_weight
from capstock.simulator.market import Market
from capstock.simulator.responses import (
    REFUSING_FAULTS,
    Response,
    api_error,
    banned,
    fault_refusal,
    json_response,
    spoil,
    too_much_weight,
)
from capstock.simulator.rest import ApiError, Params, RestApi
from capstock.simulator.server import SimulatorServer
from capstock.simulator.settings import DEFAULTS

log = logging.getLogger(__name__)


class Simulator:
    """The simulated exchange. ``start()`` serves in a background thread; ``url`` is what
    ``BINANCE_API_URL`` should be set to, ``ws_url`` the streams' base (python-binance's
    ``BinanceSocketManager.STREAM_URL``).

    With ``state_dir`` the market outlives the process: it continues the market saved
    there (if saved with the same seed, symbols and trade rate) and saves it again in
    :meth:`close` / :meth:`save_state` (see :mod:`capstock.simulator.state`).
    """

    def __init__(
        self,
        *,
        symbols: int = DEFAULTS.symbols,
        seed: int = DEFAULTS.seed,
        host: str = DEFAULTS.host,
        port: int = 0,
        clock: Callable[[], float] = time.time,
        trade_rate: float = DEFAULTS.trade_rate,
        history_minutes: int = DEFAULTS.history_minutes,
        weight_limit: int = DEFAULTS.weight_limit,
        ban_after_429s: int = BAN_AFTER_429S,
        ban_seconds: int = DEFAULTS.ban_seconds,
        faults: Iterable[Fault] = (),
        state_dir: Path | None = DEFAULTS.state_dir,
        ws_port: int | None = DEFAULTS.ws_port,
        ws_ping_interval: float = DEFAULTS.ws_ping_interval,
        ws_pong_timeout: float = websocket.PONG_TIMEOUT,
        ws_rollover_seconds: float = DEFAULTS.ws_rollover_seconds,
    ) -> None:
        self.clock = clock
        # Bound first: a taken port must not consume the saved market.
        self._server = SimulatorServer((host, port), self)
        try:
            ws_socket = _bind_streams(host, port, ws_port)
        except OSError:
            self._server.server_close()
            raise
        self._thread: threading.Thread | None = None
        self.state_dir = state_dir
        self.market = self._continue_or_build_market(
            symbols=symbols, seed=seed, trade_rate=trade_rate, history_minutes=history_minutes
        )
        self.market_lock = threading.Lock()
        self.weight_limit = weight_limit
        self.rest = RestApi(self.market, weight_limit)
        self.faults = FaultPlan(seed=seed)
        for fault in faults:
            self.faults.add(fault)
        self.ledger = WeightLedger(
            weight_limit, clock, ban_after_429s=ban_after_429s, ban_seconds=ban_seconds
        )
        self.requests: Counter[str] = Counter()  # per endpoint, refused ones included
        self.statuses: Counter[int] = Counter()  # per HTTP status, control endpoints included
        self.streams = websocket.StreamServer(
            ws_socket,
            feed=StreamFeed(self.market),
            lock=self.market_lock,
            now_ms=self.now_ms,
            faults=self.faults,
            ping_interval=ws_ping_interval,
            pong_timeout=ws_pong_timeout,
            rollover_seconds=ws_rollover_seconds,
        )

    def _continue_or_build_market(
        self, *, symbols: int, seed: int, trade_rate: float, history_minutes: int
    ) -> Market:
        if self.state_dir is not None:
            restored = market_state.load(
                self.state_dir,
                seed=seed,
                symbols=symbols,
                trade_rate=trade_rate,
                now_ms=self.now_ms(),
            )
            if restored is not None:
                return restored
        return Market(
            symbol_count=symbols,
            seed=seed,
            now_ms=self.now_ms(),
            trade_rate=trade_rate,
            history_minutes=history_minutes,
        )

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The API base for python-binance / ``BINANCE_API_URL``: ``http://host:port/api``."""
        return f"http://{self.host}:{self.port}/api"

    @property
    def ws_url(self) -> str:
        """The streams' base, ``ws://host:port/``: raw streams at ``ws_url + "ws/<stream>"``,
        combined ones at ``ws_url + "stream?streams=a/b"``."""
        return f"ws://{self.streams.host}:{self.streams.port}/"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Serve (API and streams) in background threads; returns self."""
        self.streams.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="exchange-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve the API in this thread (the streams in another) until interrupted (the
        exception propagates), then close the sockets. The market is not saved: call
        :meth:`save_state`."""
        self.streams.start()
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self.streams.close()
            self._server.server_close()

    def close(self) -> None:
        """Stop serving, close the sockets and save the market (with ``state_dir``)."""
        self.streams.close()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.save_state()

    def save_state(self) -> Path | None:
        """Save the market to ``state_dir`` (nothing without one); returns the file."""
        if self.state_dir is None:
            return None
        with self.market_lock:
            path = market_state.save(self.market, self.state_dir, now_ms=self.market.now_ms)
        log.info("simulator: market saved to %s; the next start continues it", path)
        return path

    def __enter__(self) -> Simulator:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- controls --------------------------------------------------------------------------

    def add_fault(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind, **options)
        self.faults.add(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def skip_trade_ids(self, symbol: str, count: int) -> None:
        with self.market_lock:
            self.market.skip_trade_ids(symbol, count)

    def set_rollover(self, seconds: float) -> None:
        """Close each stream connection ``seconds`` after it opened (on the simulator's
        clock), from now on, open connections included."""
        if not seconds > 0:
            raise ValueError("rollover_seconds must be positive")
        self.streams.rollover_seconds = float(seconds)

    def symbols(self) -> list[str]:
        return list(self.market.symbols)

    def state(self) -> dict[str, Any]:
        """What ``GET /_sim/state`` shows: symbols, faults, used weight, requests, statuses,
        and the streams' connections and counters."""
        return {
            "url": self.url,
            "ws_url": self.ws_url,
            "symbols": self.symbols(),
            "faults": self.faults.snapshot(),
            "weight_limit": self.weight_limit,
            "used_weight_1m": self.ledger.used(),
            "max_window_weight": self.ledger.max_used(),
            "weight_by_window": {str(start): w for start, w in self.ledger.by_window().items()},
            "requests": dict(self.requests),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "streams": self.streams.state(),
        }

    # -- API -------------------------------------------------------------------------------

    def respond(self, endpoint: str, params: Params) -> Response:
        """The response to ``GET /api/v3/<endpoint>?<params>`` (see the module docstring)."""
        self.requests[endpoint] += 1
        charge = self.ledger.charge(request_weight(endpoint, params))
        fault = self.faults.pick(endpoint)
        if fault is not None and fault.kind in REFUSING_FAULTS:
            return fault_refusal(
                fault, charge.used, weight_limit=self.weight_limit, now_ms=self.now_ms()
            )
        if charge.refusal is not None:
            return self._refused(charge)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "unfiltered":
            params = {k: v for k, v in params.items() if k != "symbols"}
        response = self._answer(endpoint, params, charge.used)
        return response if fault is None else spoil(response, fault)

    def _refused(self, charge: Charge) -> Response:
        if charge.refusal == "429":
            return too_much_weight(charge.used, self.weight_limit, charge.retry_after)
        return banned(charge.used, int(charge.banned_until * 1000), charge.retry_after)

    def _answer(self, endpoint: str, params: Params, used_weight: int) -> Response:
        try:
            answer = self.rest.endpoint(endpoint)
            with self.market_lock:
                self.market.advance(self.now_ms())
                body = answer(params)
        except ApiError as e:
            return api_error(e, used_weight)
        return json_response(200, body, used_weight=used_weight)


def _bind_streams(host: str, api_port: int, ws_port: int | None) -> socket.socket:
    """The streams' socket: ``ws_port`` as given (0: a free one), or without one the API
    port + 1, a free port when that one is taken (logged) or the API port is free-picked."""
    if ws_port is not None:
        return websocket.bind(host, ws_port)
    if api_port == 0:
        return websocket.bind(host, 0)
    try:
        return websocket.bind(host, api_port + 1)
    except (OSError, OverflowError) as e:
        log.warning(
            "simulator: port %d for the streams is not available (%s); serving them on a "
            "free port instead (--ws-port / SIMULATOR_WS_PORT chooses one)",
            api_port + 1,
            e,
        )
        return websocket.bind(host, 0)


def start_simulator(**options: Any) -> Simulator:
    """Build a :class:`Simulator` (same keyword options) and serve it in a background thread.

    ``port=0`` (the default) picks a free port; read it back from ``.url``/``.port``.
    Call ``.close()`` when done (or use it as a context manager).
    """
    return Simulator(**options).start()
