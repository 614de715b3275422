"""The consume → write → commit loop.

Guarantee: offsets are committed only after every row of the batch is written,
so a crash replays the batch; the writes are upserts by primary key, so the
replay leaves Cassandra exactly as before. Records that cannot become rows are
logged with topic/partition/offset, counted and skipped.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cassandra.query import PreparedStatement
from confluent_kafka import Consumer, KafkaError, Message

from cassandra_sink.config import SinkConfig
from cassandra_sink.records import BadRecord, decode
from cassandra_sink.writer import PreparedTable, connect, prepare, write

log = logging.getLogger("cassandra_sink")

BATCH_MAX_RECORDS = 2000
POLL_TIMEOUT_S = 0.2
RETRY_BASE_S = 0.5
RETRY_CAP_S = 30.0
STATS_EVERY_S = 30.0


@dataclass
class SinkStats:
    written: Counter = field(default_factory=Counter)
    deletes_ignored: Counter = field(default_factory=Counter)
    bad_records: Counter = field(default_factory=Counter)

    def line(self) -> str:
        total = sum(self.written.values())
        per_table = " ".join(f"{t}={n}" for t, n in sorted(self.written.items()))
        return (
            f"sink: written={total} ({per_table or 'none'}) "
            f"deletes_ignored={sum(self.deletes_ignored.values())} "
            f"bad_records={sum(self.bad_records.values())}"
        )


class CassandraSink:
    def __init__(self, config: SinkConfig, bootstrap_servers: str, group_id: str | None = None):
        self.config = config
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id or f"connect-{config.name}"
        self.stats = SinkStats()
        self._stopping = False

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit, then leave the loop."""
        self._stopping = True

    def _consumer(self) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "allow.auto.create.topics": False,
                # Debezium creates a table's topic on its first change: notice it soon.
                "topic.metadata.refresh.interval.ms": 5000,
                "log_level": 3,
            }
        )
        consumer.subscribe(self.config.topics)
        return consumer

    def _group(self, messages: list[Message], tables: dict[str, list[PreparedTable]]):
        """Split a batch into rows per statement, keeping only the newest image per key.

        Later events for a key supersede earlier ones (an open kline updated
        several times), so one write per key and batch is enough and correct.
        """
        latest: dict[tuple[str, tuple], tuple[PreparedStatement, list[Any], str]] = {}
        for msg in messages:
            if msg.error():
                if msg.error().code() not in (
                    KafkaError._PARTITION_EOF,
                    KafkaError.UNKNOWN_TOPIC_OR_PART,
                ):
                    log.warning("sink: kafka error %s", msg.error())
                continue
            for table in tables.get(msg.topic(), []):
                name = table.mapping.table
                try:
                    change = decode(msg.key(), msg.value(), self.config.unwrap)
                    if change is None:
                        continue
                    if change.row is None:
                        if table.delete is None or self.config.drop_deletes:
                            self.stats.deletes_ignored[name] += 1
                            continue
                        statement, values = table.delete, table.key_values(change)
                        key = tuple(values)
                    else:
                        statement, values = table.upsert, table.row_values(change)
                        key = tuple(values[i] for i in table.key_positions)
                except BadRecord as err:
                    self.stats.bad_records[name] += 1
                    log.error(
                        "sink: skipped bad record %s[%d]@%d for %s.%s: %s",
                        msg.topic(),
                        msg.partition(),
                        msg.offset(),
                        table.mapping.keyspace,
                        name,
                        err,
                    )
                    continue
                latest.pop((f"{table.mapping.keyspace}.{name}", key), None)
                latest[(f"{table.mapping.keyspace}.{name}", key)] = (statement, values, table)
        batches: dict[PreparedStatement, list[list[Any]]] = defaultdict(list)
        owners: dict[PreparedStatement, PreparedTable] = {}
        for statement, values, table in latest.values():
            batches[statement].append(values)
            owners[statement] = table
        return batches, owners

    def _write_with_retry(self, session, batches, owners) -> None:  # type: ignore[no-untyped-def]
        attempt = 0
        while True:
            try:
                for statement, rows in batches.items():
                    owner = owners[statement]
                    # A delete binds the key only; its partition columns come first.
                    positions = (
                        owner.partition_positions
                        if statement is owner.upsert
                        else list(range(len(owner.partition_columns)))
                    )
                    write(session, statement, rows, positions, self.config.max_concurrent_requests)
                for statement, rows in batches.items():
                    self.stats.written[owners[statement].mapping.table] += len(rows)
                return
            except Exception as err:
                attempt += 1
                delay = min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("sink: write failed (%s); retry %d in %.1fs", err, attempt, delay)
                if self._stopping and attempt > 3:
                    raise
                time.sleep(delay)

    def run(self, install_signal_handlers: bool = True) -> int:
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        cluster, session = connect(self.config)
        tables = {
            topic: [prepare(session, m) for m in mappings]
            for topic, mappings in self.config.mappings.items()
        }
        consumer = self._consumer()
        log.info(
            "sink: %s consuming %s as group %s",
            self.config.name,
            ", ".join(self.config.topics),
            self.group_id,
        )
        last_stats = time.monotonic()
        try:
            while not self._stopping:
                messages = consumer.consume(BATCH_MAX_RECORDS, POLL_TIMEOUT_S)
                records = [m for m in messages if not m.error()]
                _log_errors(m for m in messages if m.error())
                if records:
                    batches, owners = self._group(records, tables)
                    self._write_with_retry(session, batches, owners)
                    consumer.commit(asynchronous=False)
                if time.monotonic() - last_stats > STATS_EVERY_S:
                    log.info(self.stats.line())
                    last_stats = time.monotonic()
        finally:
            consumer.close()
            cluster.shutdown()
            log.info(self.stats.line())
        return 0


def _log_errors(errors: Iterable[Message]) -> None:
    # A subscribed topic that does not exist yet is normal: Debezium creates it
    # on the table's first change.
    quiet = (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART)
    for msg in errors:
        if msg.error().code() not in quiet:
            log.warning("sink: kafka error %s", msg.error())
