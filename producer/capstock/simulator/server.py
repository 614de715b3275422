"""The simulator's HTTP server: Binance spot public REST endpoints over a :class:`Market`.

Served under ``/api/v3``: ``ping``, ``time``, ``exchangeInfo``, ``klines``, ``trades``,
``aggTrades``, ``depth``, ``ticker/24hr``, ``ticker/price``. Shapes follow the exchange:
decimals as 8-decimal strings, times as integer milliseconds, klines as 12-element arrays,
errors as ``{"code": ..., "msg": ...}`` with HTTP 400, and every response carries
``x-mbx-used-weight-1m`` and ``x-mbx-used-weight``.

Weights are charged per request from :mod:`capstock.exchange.limits` into fixed one-minute
windows of the simulator's clock. Going over ``weight_limit`` answers 429 with
``Retry-After`` (seconds to the next window); more than ``ban_after_429s`` 429s in one
window bans the client for ``ban_seconds`` (418 with ``Retry-After``). The simulator has
one IP's worth of budget, shared by all clients.

Control endpoints for tests and demos (not part of Binance):

* ``GET /_sim/state``: symbols, active faults, weight per window, requests per endpoint;
* ``POST /_sim/faults``: add faults (one JSON object, a list, or ``{"faults": [...]}``);
* ``DELETE /_sim/faults``: clear them;
* ``POST /_sim/trade_gap`` ``{"symbol": "BTCUSDT", "skip": 5}``: skip trade ids;
* ``POST /_sim/reset``: forget used weight and bans.

With ``--state-dir`` the market is saved at a clean stop and continued by the next start,
so trade ids go on where they were (:mod:`capstock.simulator.state`).

Limitations: kline intervals ``1s``, ``3d``, ``1w`` and ``1M`` answer -1120; each
aggregate trade holds exactly one trade; limits above an endpoint's maximum are capped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from capstock.exchange import limits
from capstock.simulator import state
from capstock.simulator.faults import Fault, FaultPlan
from capstock.simulator.market import MINUTE_MS, Market, fmt, fmt_exact

log = logging.getLogger(__name__)

API_PREFIX = "/api/v3/"
KLINE_INTERVAL_MINUTES = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
}
SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
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
GATEWAY_PAGE = "<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"


class ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def bad_symbol() -> ApiError:
    return ApiError(limits.ERR_BAD_SYMBOL, "Invalid symbol.")


def missing(name: str) -> ApiError:
    return ApiError(
        limits.ERR_MANDATORY_PARAM,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def illegal(name: str, legal: str) -> ApiError:
    return ApiError(
        limits.ERR_ILLEGAL_CHARS,
        f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.",
    )


class WeightLedger:
    """Used request weight per fixed minute window, with 429s and 418 bans."""

    def __init__(
        self, limit: int, clock: Callable[[], float], *, ban_after_429s: int, ban_seconds: int
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.ban_after_429s = ban_after_429s
        self.ban_seconds = ban_seconds
        self.windows: dict[int, int] = {}
        self.rejections: dict[int, int] = {}
        self.banned_until: float = 0.0
        self._lock = threading.Lock()

    def used(self) -> int:
        with self._lock:
            return self.windows.get(math.floor(self.clock() / 60), 0)

    def charge(self, weight: int) -> tuple[int, str | None, int]:
        """Count a request. Returns (used weight, "429"/"418"/None, Retry-After seconds)."""
        with self._lock:
            now = self.clock()
            window = math.floor(now / 60)
            used = self.windows.get(window, 0) + weight
            self.windows[window] = used
            if now < self.banned_until:
                return used, "418", math.ceil(self.banned_until - now)
            if used > self.limit:
                self.rejections[window] = self.rejections.get(window, 0) + 1
                if self.rejections[window] > self.ban_after_429s:
                    self.banned_until = now + self.ban_seconds
                    return used, "418", self.ban_seconds
                return used, "429", max(1, math.ceil((window + 1) * 60 - now))
            return used, None, 0

    def reset(self) -> None:
        with self._lock:
            self.windows.clear()
            self.rejections.clear()
            self.banned_until = 0.0

    def max_used(self) -> int:
        with self._lock:
            return max(self.windows.values(), default=0)


class Simulator:
    """The simulated exchange. ``start()`` serves in a background thread; ``url`` is what
    ``BINANCE_API_URL`` should be set to.

    With ``state_dir`` the market outlives the process: it continues the market saved
    there (if saved with the same seed, symbols and trade rate) and saves it again in
    :meth:`close` / :meth:`save_state` (see :mod:`capstock.simulator.state`).
    """

    def __init__(
        self,
        *,
        symbols: int = 20,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        trade_rate: float = 1.0,
        history_minutes: int = 30,
        weight_limit: int = limits.REQUEST_WEIGHT_LIMIT_1M,
        ban_after_429s: int = 3,
        ban_seconds: int = 120,
        faults: Iterable[Fault] = (),
        state_dir: Path | None = None,
    ) -> None:
        self.clock = clock
        # Bound first: a taken port must not consume the saved market.
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.simulator = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self.state_dir = state_dir
        restored = None
        if state_dir is not None:
            restored = state.load(
                state_dir, seed=seed, symbols=symbols, trade_rate=trade_rate, now_ms=self.now_ms()
            )
        self.market = restored or Market(
            symbol_count=symbols,
            seed=seed,
            now_ms=self.now_ms(),
            trade_rate=trade_rate,
            history_minutes=history_minutes,
        )
        self.market_lock = threading.Lock()
        self.faults = FaultPlan(seed=seed)
        for f in faults:
            self.faults.add(f)
        self.weight_limit = weight_limit
        self.ledger = WeightLedger(
            weight_limit, clock, ban_after_429s=ban_after_429s, ban_seconds=ban_seconds
        )
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

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

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="exchange-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
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
            path = state.save(self.market, self.state_dir, now_ms=self.market.now_ms)
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

    def symbols(self) -> list[str]:
        return list(self.market.symbols)

    def state(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "symbols": self.symbols(),
            "faults": self.faults.snapshot(),
            "weight_limit": self.weight_limit,
            "used_weight_1m": self.ledger.used(),
            "max_window_weight": self.ledger.max_used(),
            "weight_by_window": {str(k * 60): v for k, v in sorted(self.ledger.windows.items())},
            "requests": dict(self.requests),
            "statuses": {str(k): v for k, v in self.statuses.items()},
        }

    # -- API -------------------------------------------------------------------------------

    def weight(self, endpoint: str, params: dict[str, str]) -> int:
        def count(name: str) -> int | None:
            if "symbol" in params:
                return 1
            if name in params:
                try:
                    return max(1, len(json.loads(params[name])))
                except (ValueError, TypeError):
                    return 1
            return None

        if endpoint == "depth":
            try:
                return limits.depth_weight(min(int(params.get("limit", 100)), 5000))
            except ValueError:
                return limits.depth_weight(100)
        if endpoint == "ticker/24hr":
            return limits.ticker_24hr_weight(count("symbols"))
        if endpoint == "ticker/price":
            return limits.ticker_price_weight("symbol" in params)
        return {
            "ping": limits.WEIGHT_PING,
            "time": limits.WEIGHT_TIME,
            "exchangeInfo": limits.WEIGHT_EXCHANGE_INFO,
            "klines": limits.WEIGHT_KLINES,
            "trades": limits.WEIGHT_TRADES,
            "aggTrades": limits.WEIGHT_AGG_TRADES,
        }.get(endpoint, 1)

    def answer(self, endpoint: str, params: dict[str, str]) -> Any:
        """The JSON body for one API request; raises :class:`ApiError` for 4xx answers."""
        handler = _ENDPOINTS.get(endpoint)
        if handler is None:
            raise ApiError(-1000, "Unknown endpoint.", status=404)
        with self.market_lock:
            self.market.advance(self.now_ms())
            return handler(self, params)

    # endpoint implementations (called with the market lock held)

    def _symbol(self, params: dict[str, str]) -> str:
        symbol = params.get("symbol")
        if not symbol:
            raise missing("symbol")
        if symbol not in self.market.symbols:
            raise bad_symbol()
        return symbol

    def _symbols(self, params: dict[str, str]) -> list[str] | None:
        """``symbol`` or ``symbols`` (JSON array) or neither (None = all)."""
        if "symbol" in params and "symbols" in params:
            raise ApiError(limits.ERR_BAD_COMBO, "Combination of optional parameters invalid.")
        if "symbol" in params:
            return [self._symbol(params)]
        if "symbols" not in params:
            return None
        try:
            names = json.loads(params["symbols"])
        except ValueError:
            raise illegal("symbols", SYMBOLS_RANGE) from None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise illegal("symbols", SYMBOLS_RANGE)
        if len(set(names)) != len(names):
            raise ApiError(-1151, "Symbol is present multiple times in the list.")
        for n in names:
            if n not in self.market.symbols:
                raise bad_symbol()
        return names

    @staticmethod
    def _int(params: dict[str, str], name: str, default: int | None) -> int | None:
        value = params.get(name)
        if value is None:
            return default
        if not value.isdigit() or len(value) > 20:
            raise illegal(name, "^[0-9]{1,20}$")
        return int(value)

    def _limit(self, params: dict[str, str], default: int, maximum: int) -> int:
        limit = self._int(params, "limit", default)
        assert limit is not None
        if limit < 1:
            raise ApiError(
                limits.ERR_INVALID_PARAMETER, "Data sent for parameter 'limit' is not valid."
            )
        return min(limit, maximum)

    def ep_ping(self, params: dict[str, str]) -> Any:
        return {}

    def ep_time(self, params: dict[str, str]) -> Any:
        return {"serverTime": self.market.now_ms}

    def ep_exchange_info(self, params: dict[str, str]) -> Any:
        names = self._symbols(params) or list(self.market.symbols)
        symbols = []
        for name in names:
            s = self.market.symbols[name]
            symbols.append(
                {
                    "symbol": s.symbol,
                    "status": "TRADING",
                    "baseAsset": s.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": s.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "otoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": False,
                    "cancelReplaceAllowed": False,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": fmt(s.tick),
                            "maxPrice": "1000000.00000000",
                            "tickSize": fmt(s.tick),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": fmt(s.step),
                            "maxQty": "90000000000.00000000",
                            "stepSize": fmt(s.step),
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "NONE",
                    "allowedSelfTradePreventionModes": ["NONE"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": self.market.now_ms,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.weight_limit,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": limits.RAW_REQUESTS_LIMIT_5M,
                },
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def ep_trades(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        limit = self._limit(params, 500, limits.TRADES_MAX_LIMIT)
        return [
            {
                "id": t.id,
                "price": fmt(t.price),
                "qty": fmt(t.qty),
                "quoteQty": fmt_exact(t.quote_qty),
                "time": t.time_ms,
                "isBuyerMaker": t.is_buyer_maker,
                "isBestMatch": True,
            }
            for t in self.market.trades(symbol, limit)
        ]

    def ep_agg_trades(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        limit = self._limit(params, 500, limits.TRADES_MAX_LIMIT)
        from_id = self._int(params, "fromId", None)
        start = self._int(params, "startTime", None)
        end = self._int(params, "endTime", None)
        trades = self.market.trades(symbol, limits.TRADES_MAX_LIMIT)
        if from_id is not None:
            trades = [t for t in trades if t.id >= from_id][:limit]
        elif start is not None or end is not None:
            trades = [
                t
                for t in trades
                if (start is None or t.time_ms >= start) and (end is None or t.time_ms <= end)
            ][:limit]
        else:
            trades = trades[-limit:]
        return [
            {
                "a": t.id,
                "p": fmt(t.price),
                "q": fmt(t.qty),
                "f": t.id,
                "l": t.id,
                "T": t.time_ms,
                "m": t.is_buyer_maker,
                "M": True,
            }
            for t in trades
        ]

    def ep_klines(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        interval = params.get("interval")
        if not interval:
            raise missing("interval")
        if interval not in KLINE_INTERVAL_MINUTES:
            raise ApiError(limits.ERR_BAD_INTERVAL, "Invalid interval.")
        limit = self._limit(params, 500, limits.KLINES_MAX_LIMIT)
        rows = self.market.klines(
            symbol,
            KLINE_INTERVAL_MINUTES[interval] * MINUTE_MS,
            limit,
            self._int(params, "startTime", None),
            self._int(params, "endTime", None),
        )
        return [
            [o, fmt(op), fmt(hi), fmt(lo), fmt(cl), fmt(vol), c, fmt(qv), n, fmt(tb), fmt(tq), "0"]
            for (o, op, hi, lo, cl, vol, c, qv, n, tb, tq) in rows
        ]

    def ep_depth(self, params: dict[str, str]) -> Any:
        symbol = self._symbol(params)
        limit = self._limit(params, 100, limits.DEPTH_MAX_LIMIT)
        update_id, bids, asks = self.market.book(symbol, limit)
        return {
            "lastUpdateId": update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    def ep_ticker_24hr(self, params: dict[str, str]) -> Any:
        kind = params.get("type", "FULL")
        if kind not in ("FULL", "MINI"):
            raise ApiError(-1139, "Invalid ticker type.")
        names = self._symbols(params)
        tickers = [self.market.ticker_24hr(n) for n in (names or self.market.symbols)]
        if kind == "MINI":
            keep = (
                "symbol",
                "openPrice",
                "highPrice",
                "lowPrice",
                "lastPrice",
                "volume",
                "quoteVolume",
                "openTime",
                "closeTime",
                "firstId",
                "lastId",
                "count",
            )
            tickers = [{k: t[k] for k in keep} for t in tickers]
        return tickers[0] if "symbol" in params else tickers

    def ep_ticker_price(self, params: dict[str, str]) -> Any:
        names = self._symbols(params)
        prices = [
            {"symbol": n, "price": fmt(self.market.symbols[n].price)}
            for n in (names or self.market.symbols)
        ]
        return prices[0] if "symbol" in params else prices


_ENDPOINTS: dict[str, Callable[[Simulator, dict[str, str]], Any]] = {
    "ping": Simulator.ep_ping,
    "time": Simulator.ep_time,
    "exchangeInfo": Simulator.ep_exchange_info,
    "trades": Simulator.ep_trades,
    "aggTrades": Simulator.ep_agg_trades,
    "klines": Simulator.ep_klines,
    "depth": Simulator.ep_depth,
    "ticker/24hr": Simulator.ep_ticker_24hr,
    "ticker/price": Simulator.ep_ticker_price,
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client
    # waits for a delayed ACK (~40 ms) on every request.
    disable_nagle_algorithm = True
    server_version = "cap-stock-simulator"
    sys_version = ""

    @property
    def sim(self) -> Simulator:
        return self.server.simulator  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        used: int | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json;charset=UTF-8",
        declared_length: int | None = None,
    ) -> None:
        self.sim.statuses[status] += 1
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(declared_length or len(body)))
        if used is not None:
            self.send_header(limits.USED_WEIGHT_HEADER, str(used))
            self.send_header(limits.USED_WEIGHT_HEADER_BARE, str(used))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    # -- control API -----------------------------------------------------------------------

    def _control(self, method: str, path: str) -> None:
        sim = self.sim
        try:
            if method == "GET" and path == "/_sim/state":
                self._send(200, _dumps(sim.state()))
            elif method == "POST" and path == "/_sim/faults":
                data = self._read_json()
                items = (
                    data.get("faults", []) if isinstance(data, dict) and "faults" in data else data
                )
                items = items if isinstance(items, list) else [items]
                for item in items:
                    sim.faults.add(Fault.from_json(item))
                self._send(200, _dumps({"faults": sim.faults.snapshot()}))
            elif method == "DELETE" and path == "/_sim/faults":
                sim.clear_faults()
                self._send(200, _dumps({"faults": []}))
            elif method == "POST" and path == "/_sim/trade_gap":
                data = self._read_json()
                sim.skip_trade_ids(str(data["symbol"]), int(data.get("skip", 1)))
                self._send(200, _dumps({"ok": True}))
            elif method == "POST" and path == "/_sim/reset":
                sim.ledger.reset()
                self._send(200, _dumps({"ok": True}))
            else:
                self._send(404, _dumps({"error": f"no control endpoint {method} {path}"}))
        except (ValueError, KeyError, TypeError) as e:
            self._send(400, _dumps({"error": str(e)}))

    # -- API -------------------------------------------------------------------------------

    def _api(self) -> None:
        sim = self.sim
        parts = urlsplit(self.path)
        endpoint = parts.path[len(API_PREFIX) :]
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        sim.requests[endpoint] += 1
        weight = sim.weight(endpoint, params)
        used, limited, retry_after = sim.ledger.charge(weight)
        fault = sim.faults.pick(endpoint)
        if fault is not None and fault.kind in ("429", "418", "5xx"):
            self._fault_status(fault, used)
            return
        if limited == "429":
            body = {
                "code": limits.ERR_TOO_MANY_REQUESTS,
                "msg": TOO_MUCH_WEIGHT.format(limit=sim.weight_limit),
            }
            self._send(429, _dumps(body), used=used, headers={"Retry-After": str(retry_after)})
            return
        if limited == "418":
            until = int((sim.ledger.banned_until) * 1000)
            body = {"code": limits.ERR_TOO_MANY_REQUESTS, "msg": BANNED.format(until=until)}
            self._send(418, _dumps(body), used=used, headers={"Retry-After": str(retry_after)})
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "unfiltered":
            params = {k: v for k, v in params.items() if k != "symbols"}
        try:
            body = _dumps(sim.answer(endpoint, params))
            status = 200
        except ApiError as e:
            body = _dumps({"code": e.code, "msg": e.msg})
            status = e.status
        if fault is not None and fault.kind == "malformed":
            self._send(status, body[: len(body) // 2], used=used)
        elif fault is not None and fault.kind == "truncated":
            self._send(status, body[: len(body) // 2], used=used, declared_length=len(body) + 1)
            self.close_connection = True
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._send(status, body, used=used)

    def _fault_status(self, fault: Fault, used: int) -> None:
        if fault.kind == "429":
            body = {
                "code": limits.ERR_TOO_MANY_REQUESTS,
                "msg": TOO_MUCH_WEIGHT.format(limit=self.sim.weight_limit),
            }
            self._send(
                429, _dumps(body), used=used, headers={"Retry-After": str(fault.retry_after)}
            )
        elif fault.kind == "418":
            until = self.sim.now_ms() + fault.retry_after * 1000
            body = {"code": limits.ERR_TOO_MANY_REQUESTS, "msg": BANNED.format(until=until)}
            self._send(
                418, _dumps(body), used=used, headers={"Retry-After": str(fault.retry_after)}
            )
        elif fault.status in (502, 504):
            phrase = f"{fault.status} {HTTPStatus(fault.status).phrase}"
            self._send(
                fault.status,
                GATEWAY_PAGE.format(status=phrase).encode(),
                used=None,
                content_type="text/html",
            )
        else:
            body = SERVER_ERRORS.get(fault.status, SERVER_ERRORS[500])
            self._send(fault.status, _dumps(body), used=used)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_sim/"):
                self._control(method, path)
            elif method == "GET" and path.startswith(API_PREFIX):
                self._api()
            else:
                self._send(404, _dumps({"code": -1000, "msg": "Unknown path."}))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


def start_simulator(**options: Any) -> Simulator:
    """Build a :class:`Simulator` (same keyword options) and serve it in a background thread.

    ``port=0`` (the default) picks a free port; read it back from ``.url``/``.port``.
    Call ``.close()`` when done (or use it as a context manager).
    """
    return Simulator(**options).start()


# -- command line ----------------------------------------------------------------------------


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"SIMULATOR_{name}", default)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cap-stock simulator``; each falls back to a SIMULATOR_* variable."""
    parser.add_argument(
        "--host", default=_env("HOST", "127.0.0.1"), help="bind address [SIMULATOR_HOST]"
    )
    parser.add_argument(
        "--port", type=int, default=int(_env("PORT", 8900)), help="[SIMULATOR_PORT]"
    )
    parser.add_argument(
        "--symbols",
        type=_positive,
        default=int(_env("SYMBOLS", 20)),
        help="USDT pairs to simulate (two BTC pairs are added) [SIMULATOR_SYMBOLS]",
    )
    parser.add_argument("--seed", type=int, default=int(_env("SEED", 1)), help="[SIMULATOR_SEED]")
    parser.add_argument(
        "--trade-rate",
        type=float,
        default=float(_env("TRADE_RATE", 1.0)),
        help="mean trades per second per symbol [SIMULATOR_TRADE_RATE]",
    )
    parser.add_argument(
        "--history-minutes",
        type=int,
        default=int(_env("HISTORY_MINUTES", 30)),
        help="market history generated at start [SIMULATOR_HISTORY_MINUTES]",
    )
    parser.add_argument(
        "--weight-limit",
        type=int,
        default=int(_env("WEIGHT_LIMIT", limits.REQUEST_WEIGHT_LIMIT_1M)),
        help="request weight per minute before 429 [SIMULATOR_WEIGHT_LIMIT]",
    )
    parser.add_argument(
        "--ban-seconds",
        type=int,
        default=int(_env("BAN_SECONDS", 120)),
        help="418 ban length after repeated 429s [SIMULATOR_BAN_SECONDS]",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=_env("STATE_DIR", None),
        help="keep the market here across restarts, so trade ids continue "
        "[SIMULATOR_STATE_DIR] (default: none, a fresh market on every start)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[,key=value...]",
        help="inject a fault, repeatable: 429,count=3,retry_after=2 | 418,count=1 | "
        "5xx,probability=0.1,status=503 | slow,delay=3 | malformed,count=2 | "
        "truncated,paths=depth | unfiltered,paths=ticker/price",
    )


def serve_forever_from_args(args: argparse.Namespace) -> int:
    try:
        faults = [Fault.parse(text) for text in args.fault]
    except (ValueError, TypeError) as e:
        print(f"cap-stock simulator: bad --fault: {e}", file=sys.stderr, flush=True)
        return 2
    sim = Simulator(
        symbols=args.symbols,
        seed=args.seed,
        host=args.host,
        port=args.port,
        trade_rate=args.trade_rate,
        history_minutes=args.history_minutes,
        weight_limit=args.weight_limit,
        ban_seconds=args.ban_seconds,
        faults=faults,
        state_dir=args.state_dir,
    )
    log.info(
        "simulator serving %d symbols at %s (BINANCE_API_URL=%s)",
        len(sim.symbols()),
        sim.url,
        sim.url,
    )

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim._server.server_close()
    try:
        sim.save_state()
    except OSError as e:
        log.error("simulator: cannot save the market to %s: %s", args.state_dir, e)
        return 1
    return 0
