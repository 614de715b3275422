"""The Kafka clients' shared settings, and one log line per change in Kafka's reachability.

While a broker is away librdkafka reports a refused connection on every reconnect attempt
(several a second). Routed through `KafkaState`, an outage reads as two lines:

    WARNING sink: kafka unreachable (... Connection refused ...); retrying every second
    INFO sink: kafka reachable again after 46s

Other errors are logged once a minute per error code at most, with a count of the
repeats in between. A fatal error (this consumer fenced by another process with the same
group.instance.id) stops the sink: the runner checks `KafkaState.fatal`.

Kafka counts as reachable again on the first record consumed or the first statistics
report (every STATS_INTERVAL_MS) in which a broker connection is up.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

log = logging.getLogger("cassandra_sink")

# Errors that mean no broker can be reached; librdkafka repeats them on every attempt.
UNREACHABLE = frozenset({KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE})
# Normal for this sink: the end of a partition, and a subscribed topic Debezium has not
# created yet (it does on the table's first change).
QUIET = frozenset({KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART})
REPEAT_LOG_S = 60.0
STATS_INTERVAL_MS = 5000
# librdkafka backs off up to 10 s between reconnects by default; a returning broker is
# then noticed within a second instead.
RECONNECT_BACKOFF_MAX_MS = 1000
# syslog levels: librdkafka's own log lines are errors that error_cb reports anyway, one
# per reconnect attempt; only critical ones are let through (to the Python logger).
LIBRDKAFKA_LOG_LEVEL = 2


class KafkaState:
    """Kafka's reachability as this process sees it, logged on change only.

    `on_error` is the clients' `error_cb` and `on_stats` their `stats_cb`; librdkafka calls
    them from inside poll/consume/flush, on the caller's thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.reachable = True
        self.fatal: KafkaError | None = None
        self._clock = clock
        self._down_since = 0.0
        self._last_logged: dict[int, float] = {}
        self._repeats: Counter[int] = Counter()

    def on_error(self, error: KafkaError, context: str = "") -> None:
        code = error.code()
        if code in QUIET:
            return
        if error.fatal():
            self.fatal = error
            log.error("sink: kafka fatal error%s: %s", _where(context), error.str())
        elif code in UNREACHABLE:
            self._unreachable(error)
        elif self.reachable:
            self._rate_limited(error, context)

    def on_stats(self, stats_json: str) -> None:
        brokers = json.loads(stats_json).get("brokers", {})
        if any(broker.get("state") == "UP" for broker in brokers.values()):
            self.mark_reachable()

    def mark_reachable(self) -> None:
        if not self.reachable:
            self.reachable = True
            log.info("sink: kafka reachable again after %.0fs", self._clock() - self._down_since)

    def _unreachable(self, error: KafkaError) -> None:
        if self.reachable:
            self.reachable = False
            self._down_since = self._clock()
            log.warning(
                "sink: kafka unreachable (%s); retrying every %.0f s",
                error.str(),
                RECONNECT_BACKOFF_MAX_MS / 1000,
            )

    def _rate_limited(self, error: KafkaError, context: str) -> None:
        code, now = error.code(), self._clock()
        last = self._last_logged.get(code)
        if last is not None and now - last < REPEAT_LOG_S:
            self._repeats[code] += 1
            return
        repeats = self._repeats.pop(code, 0)
        self._last_logged[code] = now
        log.warning(
            "sink: kafka error%s: %s%s",
            _where(context),
            error.str(),
            f" ({repeats} more since the last report)" if repeats else "",
        )


def _where(context: str) -> str:
    return f" ({context})" if context else ""


def client_config(bootstrap_servers: str, state: KafkaState) -> dict[str, Any]:
    """Settings every Kafka client of the sink shares: errors to `state`, quiet logs."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "error_cb": state.on_error,
        "logger": logging.getLogger("cassandra_sink.librdkafka"),
        "log_level": LIBRDKAFKA_LOG_LEVEL,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
    }


def instance_id(group_id: str) -> str:
    """The consumer's static group membership id: the same on every start of the sink."""
    return f"{group_id}-0"


def consumer_config(bootstrap_servers: str, group_id: str, state: KafkaState) -> dict[str, Any]:
    return {
        **client_config(bootstrap_servers, state),
        "group.id": group_id,
        # Static membership: a sink restarted after a crash (SIGKILL, OOM) rejoins as the
        # same member and gets its partitions back at once, instead of waiting for the
        # dead member's session to expire. Only one process per group may run: a second
        # one fences the first (a fatal error that stops it).
        "group.instance.id": instance_id(group_id),
        # A member that does not come back loses its partitions after 10 s, not 45.
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 2000,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
        # Debezium creates a table's topic on its first change: notice it soon.
        "topic.metadata.refresh.interval.ms": 5000,
        "stats_cb": state.on_stats,
        "statistics.interval.ms": STATS_INTERVAL_MS,
    }
