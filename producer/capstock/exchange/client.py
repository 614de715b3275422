"""The exchange as a polling source: python-binance plus pacing, retries and error policy.

Delivery guarantee: each method either returns one complete, parsed JSON response or raises.
It never returns partial data. What happens on failure:

==========================================  =================================================
failure                                     behaviour
==========================================  =================================================
429 (-1003 too much weight)                 wait ``Retry-After`` seconds (logged), try again
418 (IP banned)                             :class:`Banned` at once; every call raises it
                                            without a request until ``Retry-After`` passed
5xx, timeout, connection error,             exponential backoff with jitter, at most
malformed or truncated body                 ``max_attempts`` tries, then :class:`RetriesExhausted`
other 4xx with a ``symbol`` (e.g. -1121)    :class:`SymbolRejected` at once (the caller skips it)
other 4xx                                   :class:`RequestRejected` at once
==========================================  =================================================
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException
from urllib3.exceptions import NewConnectionError

from capstock import config
from capstock.backoff import Backoff, RetriesExhausted, Sleeper
from capstock.config import BinanceSettings
from capstock.exchange import limits
from capstock.exchange.pacer import WeightPacer

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_SECONDS = 60.0
"""Wait used when a 429/418 arrives without a readable ``Retry-After`` header."""
MAX_RATE_LIMIT_WAITS = 10
"""429/418 answers tolerated for one request before giving up on it."""

UNREACHABLE_FIRST_DELAY_S = 5.0
UNREACHABLE_MAX_DELAY_S = 300.0
"""After a failed connection, no request for this long (doubling per failure up to the max)."""

TRANSIENT_ERRORS = (
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    BinanceRequestException,
)


class RequestRejected(Exception):
    """The exchange refused the request with a 4xx that retrying cannot fix."""

    def __init__(self, path: str, status: int, code: int | None, msg: str) -> None:
        super().__init__(f"{path}: HTTP {status} code={code} {msg}")
        self.path = path
        self.status = status
        self.code = code
        self.msg = msg


class Banned(Exception):
    """The exchange banned this IP (HTTP 418) until :attr:`until` (epoch seconds).

    No request is sent before then: a request during a ban makes Binance extend it. The
    caller skips its work instead of waiting, so jobs that need no exchange keep running.
    """

    def __init__(self, path: str, until: float) -> None:
        super().__init__(f"{path}: IP banned (HTTP 418) until {until:.0f}")
        self.path = path
        self.until = until


class Unreachable(RetriesExhausted):
    """No connection to the exchange (no name, no route, refused): raised at once, and by
    every call until ``until`` (epoch seconds) without a request, so a job neither waits
    through retries (the heartbeat runs on time) nor spends request weight."""

    def __init__(self, path: str, until: float, cause: str) -> None:
        super().__init__(f"{path}: exchange unreachable ({cause}); next try after {until:.0f}")
        self.path = path
        self.until = until
        self.cause = cause


class SymbolRejected(RequestRejected):
    """A request for one symbol was refused (typically -1121 Invalid symbol)."""

    def __init__(self, symbol: str, path: str, status: int, code: int | None, msg: str) -> None:
        super().__init__(path, status, code, msg)
        self.symbol = symbol


@dataclass(frozen=True)
class ExchangeTrouble:
    """Why the exchange cannot be used right now, and since when (epoch seconds): the
    heartbeat stores it, so `make status` and the dashboard show it, not only the log."""

    text: str
    since: float


@dataclass
class ExchangeStats:
    """Counters a status line or dashboard can show."""

    requests: int = 0
    weight_requested: int = 0
    retries: int = 0
    rate_limited: int = 0
    rate_limit_waits: list[float] = field(default_factory=list)


def make_binance_client(settings: BinanceSettings) -> Client:
    """The real python-binance client, pointed at ``settings.api_url``.

    python-binance 1.0.37 has no base-URL argument: the constructor formats the class
    attribute ``API_URL = "https://api{}.binance.{}/api"`` and ``_create_api_uri`` then
    returns ``API_URL + "/v3/" + path``. Setting the instance attribute after construction
    is enough. ``ping=False`` keeps the constructor offline; the timeout goes through
    ``requests_params``, which is merged into every request.
    """
    key = settings.api_key.get_secret_value() if settings.api_key else None
    secret = settings.api_secret.get_secret_value() if settings.api_secret else None
    client = Client(
        api_key=key,
        api_secret=secret,
        requests_params={"timeout": settings.request_timeout},
        ping=False,
    )
    client.API_URL = settings.api_url
    return client


def _header_int(headers: Any, name: str) -> int | None:
    if headers is None:
        return None
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _retry_after(headers: Any) -> float:
    value = headers.get(limits.RETRY_AFTER_HEADER) if headers is not None else None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(0.0, seconds)


class ExchangeClient:
    """Market-data calls with the weight budget and the retry policy in the module docstring."""

    def __init__(
        self,
        settings: BinanceSettings,
        *,
        sleeper: Sleeper | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] | None = None,
        client: Client | None = None,
    ) -> None:
        self.settings = settings
        self.sleeper = sleeper or Sleeper()
        self.client = client or make_binance_client(settings)
        self.pacer = WeightPacer(settings.weight_budget, sleeper=self.sleeper, clock=clock)
        self.stats = ExchangeStats()
        self._rng = rng
        self._clock = clock
        self.banned_until = 0.0
        """Epoch seconds until which the exchange bans us (418); 0 when not banned."""
        self.banned_since = 0.0
        self.unreachable_until = 0.0
        """Epoch seconds before which no request is tried after a failed connection."""
        self.unreachable_cause: str | None = None
        """Why the last connection failed (the root cause, whole); None while reachable."""
        self.unreachable_since = 0.0
        self._unreachable_delay = UNREACHABLE_FIRST_DELAY_S

    @property
    def banned(self) -> bool:
        return self._clock() < self.banned_until

    def trouble(self) -> ExchangeTrouble | None:
        """The exchange's current error state (a ban, or no connection); None when usable."""
        if self.banned:
            until = datetime.fromtimestamp(self.banned_until, UTC).isoformat(timespec="seconds")
            return ExchangeTrouble(f"banned (HTTP 418) until {until}", self.banned_since)
        if self.unreachable_cause is not None:
            return ExchangeTrouble(f"unreachable: {self.unreachable_cause}", self.unreachable_since)
        return None

    def _backoff(self) -> Backoff:
        if self._rng is None:
            return Backoff(max_attempts=self.settings.max_attempts)
        return Backoff(max_attempts=self.settings.max_attempts, rng=self._rng)

    def _observe(self, headers: Any) -> None:
        used = _header_int(headers, limits.USED_WEIGHT_HEADER)
        if used is None:
            used = _header_int(headers, limits.USED_WEIGHT_HEADER_BARE)
        self.pacer.observe(used)

    def call(self, path: str, weight: int, fn: Callable[..., Any], **params: Any) -> Any:
        """Call ``fn(**params)`` (a python-binance method for ``path``) under the policy."""
        backoff = self._backoff()
        rate_limited = 0
        symbol = params.get("symbol")
        while True:
            if self.banned:
                raise Banned(path, self.banned_until)
            if self._clock() < self.unreachable_until:
                raise Unreachable(path, self.unreachable_until, self.unreachable_cause or "")
            self.pacer.acquire(weight)
            self.stats.requests += 1
            self.stats.weight_requested += weight
            try:
                result = fn(**params)
            except BinanceAPIException as e:
                headers = getattr(e.response, "headers", None)
                self._observe(headers)
                status = e.status_code
                if status in (429, 418):
                    rate_limited += 1
                    self.stats.rate_limited += 1
                    wait = _retry_after(headers)
                    log.warning(
                        "rate limited path=%s status=%s code=%s retry_after=%.0fs msg=%r",
                        path,
                        status,
                        e.code,
                        wait,
                        e.message,
                    )
                    if status == 418:
                        if not self.banned:
                            self.banned_since = self._clock()
                        self.banned_until = max(self.banned_until, self._clock() + wait)
                        raise Banned(path, self.banned_until) from e
                    if rate_limited > MAX_RATE_LIMIT_WAITS:
                        raise RetriesExhausted(f"{path}: still rate limited") from e
                    self.stats.rate_limit_waits.append(wait)
                    self.sleeper.sleep(wait)
                    continue
                if 400 <= status < 500:
                    if symbol is not None:
                        raise SymbolRejected(symbol, path, status, e.code, e.message) from e
                    raise RequestRejected(path, status, e.code, e.message) from e
                error: Exception = e
            except TRANSIENT_ERRORS as e:
                error = e
                if never_sent(e):
                    self.pacer.refund(weight)
                    self.stats.weight_requested -= weight
                    raise self._unreachable(path, e) from e
            else:
                self._observe(self.client.response.headers if self.client.response else None)
                if self.unreachable_cause is not None:
                    log.info("exchange reachable again at %s", self.settings.api_url)
                    self.unreachable_cause = None
                    self._unreachable_delay = UNREACHABLE_FIRST_DELAY_S
                return result
            if backoff.failures + 1 >= self.settings.max_attempts:
                log.error(
                    "giving up path=%s params=%s attempts=%d error=%s",
                    path,
                    params,
                    backoff.failures + 1,
                    _brief(error),
                )
                raise RetriesExhausted(f"{path}: {_brief(error)}") from error
            delay = backoff.next_delay()
            self.stats.retries += 1
            log.warning(
                "retrying path=%s attempt=%d in %.2fs error=%s",
                path,
                backoff.failures,
                delay,
                _brief(error),
            )
            self.sleeper.sleep(delay)

    def _unreachable(self, path: str, error: BaseException) -> Unreachable:
        """Back off (5 s doubling to 5 min) and log once per outage, with the root cause."""
        cause = root_cause(error)
        text = f"{type(cause).__name__}: {cause}"
        wait = self._unreachable_delay
        self.unreachable_until = self._clock() + wait
        self._unreachable_delay = min(wait * 2, UNREACHABLE_MAX_DELAY_S)
        if self.unreachable_cause is None:
            self.unreachable_since = self._clock()
            log.error(
                "exchange unreachable at %s: %s; exchange jobs fail without a request until it "
                "answers (next try in %.0fs, then doubling up to %.0fs)",
                self.settings.api_url,
                text,
                wait,
                UNREACHABLE_MAX_DELAY_S,
            )
        self.unreachable_cause = text
        return Unreachable(path, self.unreachable_until, text)

    # -- endpoints -------------------------------------------------------------------------

    def ping(self) -> dict:
        return self.call("ping", limits.WEIGHT_PING, self.client.ping)

    def ticker_24hr(self, symbols: list[str] | None = None) -> list[dict]:
        """24h statistics: every symbol (weight 80) or the given ones (2/40/80 by count)."""
        if symbols is None:
            data = self.call("ticker/24hr", limits.ticker_24hr_weight(None), self.client.get_ticker)
        else:
            data = self.call(
                "ticker/24hr",
                limits.ticker_24hr_weight(len(symbols)),
                self.client.get_ticker,
                symbols=_json_array(symbols),
            )
        return data if isinstance(data, list) else [data]

    def ticker_24hr_one(self, symbol: str) -> dict:
        return self.call(
            "ticker/24hr", limits.ticker_24hr_weight(1), self.client.get_ticker, symbol=symbol
        )

    def ticker_price(self, symbols: list[str] | None = None) -> list[dict]:
        if symbols is None:
            data = self.call(
                "ticker/price", limits.ticker_price_weight(False), self.client.get_symbol_ticker
            )
        else:
            data = self.call(
                "ticker/price",
                limits.ticker_price_weight(False),
                self.client.get_symbol_ticker,
                symbols=_json_array(symbols),
            )
        return data if isinstance(data, list) else [data]

    def klines(
        self,
        symbol: str,
        interval: str,
        limit: int,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[list]:
        """Candles, oldest first (weight 2): the newest ``limit``, or with ``start_ms`` the
        first ``limit`` opening at or after it; ``end_ms`` bounds the open time (inclusive).
        Paging a range: the next ``start_ms`` is the last open time plus the interval."""
        return self.call(
            "klines",
            limits.WEIGHT_KLINES,
            self.client.get_klines,
            symbol=symbol,
            interval=interval,
            limit=limit,
            **_present(startTime=start_ms, endTime=end_ms),
        )

    def recent_trades(self, symbol: str, limit: int) -> list[dict]:
        return self.call(
            "trades",
            limits.WEIGHT_TRADES,
            self.client.get_recent_trades,
            symbol=symbol,
            limit=limit,
        )

    def trades_from_id(
        self, symbol: str, from_id: int, limit: int = limits.TRADES_MAX_LIMIT
    ) -> list[dict]:
        """Up to ``limit`` trades with id >= ``from_id`` in id order, in the shape of
        ``recent_trades`` (``GET /api/v3/historicalTrades``, weight 25, at most 1,000).

        Trade ids are consecutive per symbol, so a hole ``a..b`` is filled by calling this
        from ``a`` and again from the last id returned plus one until ``b`` is passed (see
        :func:`capstock.ingest.paging.trade_pages`). Ids the exchange never issued are
        simply absent. Not served by ``data-api.binance.vision`` (404 there)."""
        return self.call(
            "historicalTrades",
            limits.WEIGHT_HISTORICAL_TRADES,
            self.client.get_historical_trades,
            symbol=symbol,
            fromId=from_id,
            limit=limit,
        )

    def agg_trades(
        self,
        symbol: str,
        *,
        limit: int = limits.TRADES_MAX_LIMIT,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[dict]:
        """Aggregate trades, oldest first (``GET /api/v3/aggTrades``, weight 4): by
        aggregate id from ``from_id``, or between ``start_ms`` and ``end_ms`` (inclusive;
        keep the window under an hour, older docs require it), or the newest ``limit``.

        Sample (``a`` aggregate id, ``f``/``l`` first and last *trade* id, ``T`` time)::

            {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781,
             "T": 1498793709153, "m": true, "M": true}

        Aggregate ids are not trade ids: use ``f``/``l`` to find trade ids by time."""
        return self.call(
            "aggTrades",
            limits.WEIGHT_AGG_TRADES,
            self.client.get_aggregate_trades,
            symbol=symbol,
            limit=limit,
            **_present(fromId=from_id, startTime=start_ms, endTime=end_ms),
        )

    def order_book(self, symbol: str, limit: int) -> dict:
        return self.call(
            "depth",
            limits.depth_weight(limit),
            self.client.get_order_book,
            symbol=symbol,
            limit=limit,
        )


def _present(**params: Any) -> dict[str, Any]:
    """The optional parameters that have a value (python-binance would send ``None``)."""
    return {name: value for name, value in params.items() if value is not None}


def _json_array(symbols: list[str]) -> str:
    """The ``symbols`` parameter: a JSON array without spaces, as Binance's clients send it."""
    return json.dumps(list(symbols), separators=(",", ":"))


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception: requests wraps urllib3, which wraps the socket error."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None:
            # urllib3's MaxRetryError keeps its cause in .reason, requests in args[0]
            inner = getattr(error, "reason", None)
            if not isinstance(inner, BaseException) and error.args:
                inner = error.args[0] if isinstance(error.args[0], BaseException) else None
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


def _brief(error: BaseException) -> str:
    """The error and, when it wraps others, its root cause, in full (logs keep the why)."""
    text = f"{type(error).__name__}: {str(error) or type(error).__name__}"
    cause = root_cause(error)
    if cause is not error:
        text += f" (root cause {type(cause).__name__}: {cause})"
    return text


def never_sent(error: BaseException) -> bool:
    """The request never reached the exchange: no name, no route, connection refused."""
    cause = root_cause(error)
    return isinstance(error, requests.exceptions.ConnectionError) and isinstance(
        cause, socket.gaierror | ConnectionRefusedError | NewConnectionError
    )


class ExchangeUnreachable(Exception):
    """The configured exchange does not answer. ``str()`` names the URL, the cause and the fix."""


OFFLINE_FIX = (
    "check the network (a proxy goes in HTTPS_PROXY), or run offline against the bundled "
    "exchange simulator with `make demo`"
)


def probe(settings: BinanceSettings) -> None:
    """One GET /api/v3/ping with the real client, no retries; raises ExchangeUnreachable."""
    url = f"{settings.api_url}/v3/ping"
    client = make_binance_client(settings)
    try:
        client.ping()
    except BinanceAPIException as e:
        raise ExchangeUnreachable(_refusal(url, e.status_code, e.code, e.message)) from None
    except (*TRANSIENT_ERRORS, ValueError) as e:
        cause = root_cause(e)
        raise ExchangeUnreachable(
            f"{url} does not answer: {type(cause).__name__}: {cause}. Fix: {OFFLINE_FIX}"
        ) from None


def _refusal(url: str, status: int, code: int | None, message: str) -> str:
    said = f"{url} answered HTTP {status} (code {code}: {message})"
    if status == 451:
        return (
            f"{said}: Binance serves no API from this location. Fix: market data is also "
            f"served at BINANCE_API_URL={config.MARKET_DATA_API_URL}; or {OFFLINE_FIX}"
        )
    if status in (418, 429):
        return f"{said}: this IP is rate limited or banned; wait, then start again"
    return f"{said}. Fix: check BINANCE_API_URL (a REST base ending in /api)"
