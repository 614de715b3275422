"""Stand-ins for a Kafka message and a Cassandra session, for the sink's unit tests.

FakeSession stands in for cassandra.cluster.Session under the driver's own
execute_concurrent: it refuses any request holding POISON with InvalidRequest (as
Cassandra refuses an oversized key) and can fail the next N requests with a transient
error (a timeout, Cassandra down).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cassandra import InvalidRequest, OperationTimedOut
from cassandra.encoder import Encoder
from cassandra.query import BatchStatement, bind_params
from cassandra_sink.writer import PreparedTable

TOPIC = "cap_stock.public.latest_prices"
POISON = "BAD"


@dataclass
class FakeMessage:
    """The part of confluent_kafka.Message the sink reads."""

    value_bytes: bytes | None
    offset_number: int
    key_bytes: bytes | None = None
    headers_list: list[tuple[str, bytes]] = field(default_factory=list)
    topic_name: str = TOPIC
    error_value: Any = None  # a confluent_kafka.KafkaError for an error event

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return self.offset_number

    def key(self) -> bytes | None:
        return self.key_bytes

    def value(self) -> bytes | None:
        return self.value_bytes

    def headers(self) -> list[tuple[str, bytes]]:
        return self.headers_list

    def error(self) -> Any:
        return self.error_value


class FakeFuture:
    """The part of ResponseFuture that execute_concurrent uses; completes at once."""

    _col_names = None
    _col_types = None
    has_more_pages = False

    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def add_callbacks(self, callback, errback, callback_args=(), errback_args=()) -> None:  # type: ignore[no-untyped-def]
        if self.error is None:
            callback(None, *callback_args)
        else:
            errback(self.error, *errback_args)

    def clear_callbacks(self) -> None:
        pass


class FakeSession:
    """Refuses any request holding POISON with InvalidRequest; fails the first
    `transient_failures` requests with `transient`. `requests` has each request's
    statements (as bound CQL text), `stored` the statements of the requests taken."""

    def __init__(self, transient_failures: int = 0, transient: BaseException | None = None):
        self.transient_failures = transient_failures
        self.transient = transient or OperationTimedOut("no answer in 10 s")
        self.requests: list[list[str]] = []
        self.stored: list[str] = []

    def execute_async(self, statement, params, execution_profile=None) -> FakeFuture:  # type: ignore[no-untyped-def]
        if isinstance(statement, BatchStatement):
            texts = [text for _prepared, text, _ in statement._statements_and_parameters]
        else:
            texts = [bind_params(statement, params, Encoder())]
        self.requests.append(texts)
        if self.transient_failures:
            self.transient_failures -= 1
            return FakeFuture(self.transient)
        if any(POISON in text for text in texts):
            return FakeFuture(InvalidRequest("Key length of 70000 is longer than maximum of 65535"))
        self.stored.extend(texts)
        return FakeFuture(None)


def latest_prices_table(upsert: str = "INSERT") -> PreparedTable:
    """A prepared latest_prices table whose statements the fakes only carry, never run."""
    from cassandra_sink.config import TableMapping

    mapping = TableMapping(
        topic=TOPIC,
        keyspace="cap_stock",
        table="latest_prices",
        columns={"symbol": ("value", "symbol"), "ts": ("value", "ts"), "price": ("value", "price")},
        deletes_enabled=False,
    )
    return PreparedTable(
        mapping=mapping,
        column_types={"symbol": "text", "ts": "timestamp", "price": "decimal"},
        upsert=upsert,  # type: ignore[arg-type]
        delete=None,
        key_columns=["symbol", "ts"],
        partition_columns=["symbol"],
    )
