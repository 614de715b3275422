"""Fault switches: make the simulator misbehave on purpose, for the next N requests or at random.

A fault is written on the command line as ``KIND[,key=value...]``, e.g.
``429,count=3,retry_after=2`` or ``5xx,probability=0.1,status=503``, and as JSON on
``POST /_sim/faults``: ``{"kind": "429", "count": 3, "retry_after": 2}``.

==========  ==============================================================================
kind        effect
==========  ==============================================================================
429         HTTP 429, ``Retry-After: retry_after``, body code -1003 (too much weight)
418         HTTP 418, ``Retry-After: retry_after``, body code -1003 (IP banned until ...)
5xx         HTTP ``status`` (500 default; 502/504 get an HTML gateway page, like a proxy)
slow        sleep ``delay`` seconds, then answer normally (trips client timeouts)
malformed   HTTP 200 with a body that is not valid JSON (cut in half, length consistent)
truncated   HTTP 200 announcing the full Content-Length, sending half, closing the socket
unfiltered  ignore the ``symbols`` filter: answer for every symbol, as if it had not been
            sent (the weight is still that of the request as sent)
==========  ==============================================================================

Without ``count`` or ``probability`` a fault fires on every request until cleared.
``paths`` limits it to some endpoints, e.g. ``paths=depth|trades`` (names after /api/v3/).

The ``ws_*`` kinds act on the websocket streams (:mod:`capstock.simulator.websocket`)
instead. They are consulted once per stream message about to be sent to a connection
(``count=1``: the next message; ``paths``: stream names such as ``btcusdt@depth``), and
never by a REST request:

===========  =============================================================================
kind         effect on the connection the message was for
===========  =============================================================================
ws_drop      cut the TCP connection, no close frame (as a network failure does)
ws_stall     go silent: no more messages, pings or control answers, socket left open;
             ``pongs=false`` also stops reading, so the client's pings go unanswered
ws_skip      leave this message out, for ``@trade``, ``@aggTrade`` and diff ``@depth``
             only: a hole in the trade ids (REST still has them) or a ``U`` that jumps
ws_rollover  close it with 1001 now, as the scheduled rollover (24 h) does
===========  =============================================================================
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

REST_KINDS = ("429", "418", "5xx", "slow", "malformed", "truncated", "unfiltered")
STREAM_KINDS = ("ws_drop", "ws_stall", "ws_skip", "ws_rollover")
KINDS = REST_KINDS + STREAM_KINDS
SEQUENCED_ONLY = ("ws_skip",)
"""Stream fault kinds that only apply to messages carrying sequence ids."""
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass
class Fault:
    kind: str
    count: int | None = None
    probability: float | None = None
    retry_after: int = 1
    status: int = 500
    delay: float = 1.0
    paths: list[str] | None = None
    pongs: bool = True
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.probability is not None and not 0 < self.probability <= 1:
            raise ValueError("probability must be in (0, 1]")
        if not isinstance(self.pongs, bool):
            raise ValueError("pongs must be true or false")
        if self.kind == "5xx" and not 500 <= self.status <= 599:
            raise ValueError("status must be 500..599")
        if self.retry_after < 0 or self.delay < 0:
            raise ValueError("retry_after and delay must not be negative")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``"429,count=3,retry_after=2"`` → Fault(kind='429', count=3, retry_after=2)."""
        kind, *pairs = [p.strip() for p in text.split(",") if p.strip()]
        kwargs: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"expected key=value, got {pair!r}")
            if key in ("count", "retry_after", "status"):
                kwargs[key] = int(value)
            elif key in ("probability", "delay"):
                kwargs[key] = float(value)
            elif key == "paths":
                kwargs[key] = value.split("|")
            elif key == "pongs":
                kwargs[key] = _flag(key, value)
            else:
                raise ValueError(f"unknown fault option {key!r}")
        return cls(kind, **kwargs)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        allowed = {
            "kind",
            "count",
            "probability",
            "retry_after",
            "status",
            "delay",
            "paths",
            "pongs",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**{k: data[k] for k in allowed if k in data})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultPlan:
    """The active faults, consulted once per API request (first match wins)."""

    seed: int = 0
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"faults:{self.seed}")

    def add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self.faults]

    def has_stream_faults(self) -> bool:
        with self._lock:
            return any(f.kind in STREAM_KINDS for f in self.faults)

    def pick(self, endpoint: str) -> Fault | None:
        """The fault to apply to a request for ``endpoint`` (e.g. ``"depth"``), if any."""
        return self._pick(endpoint, REST_KINDS)

    def pick_stream(self, stream: str, *, sequenced: bool) -> Fault | None:
        """The ``ws_*`` fault to apply to a message of ``stream`` (e.g. ``"btcusdt@trade"``),
        if any; ``sequenced`` says whether the message carries ids (``ws_skip`` needs it)."""
        kinds = STREAM_KINDS if sequenced else tuple(set(STREAM_KINDS) - set(SEQUENCED_ONLY))
        return self._pick(stream, kinds)

    def _pick(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind not in kinds:
                    continue
                if fault.paths and path not in fault.paths:
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                return fault
        return None


def _flag(key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{key} must be true or false, got {value!r}")
