"""The consume → write → commit loop.

Guarantee: offsets are committed only after every row of the batch is written (and every
dead letter acknowledged), so a crash replays the batch; the writes are upserts by
primary key, so the replay leaves Cassandra exactly as before. Records that cannot become
rows are handled per the config's error policy (deadletter.py): parked in the dead-letter
topic, skipped, or the sink stops before writing the batch.

The sink has its own consumer group, `cap-stock-python-sink-<connector name>` by default:
Connect's sink uses `connect-<connector name>`, and sharing it would make one sink
silently continue from the other's offsets when you switch between them.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session
from cassandra.query import UNSET_VALUE
from confluent_kafka import Consumer, KafkaError, Message

from cassandra_sink.config import SinkConfig
from cassandra_sink.deadletter import Action, DeadLetterQueue, action_for, ensure_topic
from cassandra_sink.records import BadRecord, decode
from cassandra_sink.writer import PreparedTable, connect, prepare, write

log = logging.getLogger("cassandra_sink")

BATCH_MAX_RECORDS = 2000
POLL_TIMEOUT_S = 0.2
RETRY_BASE_S = 0.5
RETRY_CAP_S = 30.0
STATS_EVERY_S = 30.0
GROUP_PREFIX = "cap-stock-python-sink-"


def default_group_id(connector_name: str) -> str:
    return GROUP_PREFIX + connector_name


@dataclass
class SinkStats:
    written: Counter = field(default_factory=Counter)
    tombstones: int = 0
    bad_records: Counter = field(default_factory=Counter)
    dead_lettered: int = 0

    def line(self) -> str:
        total = sum(self.written.values())
        per_table = " ".join(f"{t}={n}" for t, n in sorted(self.written.items()))
        return (
            f"sink: written={total} ({per_table or 'none'}) tombstones={self.tombstones} "
            f"bad_records={sum(self.bad_records.values())} dead_lettered={self.dead_lettered}"
        )


@dataclass(frozen=True)
class Failure:
    """A record one table could not take, and why."""

    msg: Message
    table: str
    reason: str

    def describe(self) -> str:
        return (
            f"{self.msg.topic()}[{self.msg.partition()}]@{self.msg.offset()} "
            f"for {self.table}: {self.reason}"
        )


class RecordFailed(RuntimeError):
    """errors.tolerance=none and a record could not be mapped: the sink stops."""


@dataclass
class Plan:
    """One batch: rows per statement, the table owning each statement, failed records."""

    batches: dict[Any, list[list[Any]]] = field(default_factory=lambda: defaultdict(list))
    owners: dict[Any, PreparedTable] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    tombstones: int = 0


Image = tuple[Any, list[Any]]  # (statement, values)


def _merge(older: Image, newer: Image, table: PreparedTable) -> Image:
    """Newer image over older for one key, column by column, as the engine's writes of
    both would leave it: an unset (null) column keeps the older value; after a delete it
    stays null."""
    old_statement, old_values = older
    statement, values = newer
    if statement is not table.upsert:
        return newer
    if old_statement is table.upsert:
        return statement, [
            o if v is UNSET_VALUE else v for v, o in zip(values, old_values, strict=True)
        ]
    return statement, [None if v is UNSET_VALUE else v for v in values]


def plan_batch(messages: Sequence[Message], tables: dict[str, list[PreparedTable]]) -> Plan:
    """Map every record of a batch onto its tables, keeping one write per primary key."""
    plan = Plan()
    latest: dict[tuple[str, tuple], tuple[PreparedTable, Image]] = {}
    for msg in messages:
        topic_tables = tables.get(msg.topic() or "", [])
        try:
            record = decode(msg.key(), msg.value())
        except BadRecord as err:
            plan.failures.extend(Failure(msg, t.name, str(err)) for t in topic_tables)
            continue
        if record is None:
            plan.tombstones += 1
            continue
        for table in topic_tables:
            try:
                statement, values = table.bind(record)
            except BadRecord as err:
                plan.failures.append(Failure(msg, table.name, str(err)))
                continue
            # Upserts carry the whole row, deletes only the primary key.
            is_upsert = statement is table.upsert
            key = tuple(values[i] for i in table.key_positions) if is_upsert else tuple(values)
            slot = (table.name, key)
            image: Image = (statement, values)
            if slot in latest:
                image = _merge(latest.pop(slot)[1], image, table)
            latest[slot] = (table, image)
    for table, (statement, values) in latest.values():
        plan.batches[statement].append(values)
        plan.owners[statement] = table
    return plan


class CassandraSink:
    def __init__(self, config: SinkConfig, bootstrap_servers: str, group_id: str | None = None):
        self.config = config
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id or default_group_id(config.name)
        self.stats = SinkStats()
        self.action = action_for(config.errors)
        self._dead_letters: DeadLetterQueue | None = None
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

    def handle_failures(self, failures: Iterable[Failure]) -> None:
        """Log and count each failed record once, then park, skip or stop (RecordFailed).

        The log line starts like the Connect adapter's ("Rejected record <topic>[<partition>]
        @<offset>"), so one grep finds bad records whichever sink runs."""
        for failure in failures:
            self.stats.bad_records[failure.table] += 1
            if self.action is Action.STOP:
                raise RecordFailed(
                    f"Rejected record {failure.describe()} (errors.tolerance=none: set "
                    "errors.tolerance=all and errors.deadletterqueue.topic.name to park bad "
                    "records instead of stopping)"
                )
            if self.action is Action.DEAD_LETTER and self._dead_letters:
                self._dead_letters.send(failure.msg, f"{failure.table}: {failure.reason}")
                self.stats.dead_lettered += 1
                log.error(
                    "sink: Rejected record %s (sent to %s)",
                    failure.describe(),
                    self._dead_letters.topic,
                )
            else:
                log.error("sink: Rejected record %s (skipped)", failure.describe())

    def _write_with_retry(self, session: Session, plan: Plan) -> None:
        attempt = 0
        while True:
            try:
                for statement, rows in plan.batches.items():
                    owner = plan.owners[statement]
                    # A delete binds the key only; its partition columns come first.
                    positions = (
                        owner.partition_positions
                        if statement is owner.upsert
                        else list(range(len(owner.partition_columns)))
                    )
                    write(session, statement, rows, positions, self.config.max_concurrent_requests)
                for statement, rows in plan.batches.items():
                    self.stats.written[plan.owners[statement].mapping.table] += len(rows)
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
        dead_letter_topic = self.config.errors.dead_letter_topic
        if self.action is Action.DEAD_LETTER and dead_letter_topic:
            ensure_topic(
                self.bootstrap_servers,
                dead_letter_topic,
                self.config.errors.dead_letter_replication_factor,
            )
            self._dead_letters = DeadLetterQueue(
                self.bootstrap_servers, dead_letter_topic, self.config.name
            )
        cluster, session = connect(self.config)
        tables = {
            topic: [prepare(session, m, self.config.codecs[topic]) for m in mappings]
            for topic, mappings in self.config.mappings.items()
        }
        consumer = self._consumer()
        log.info(
            "sink: %s consuming %s as group %s; bad records: %s",
            self.config.name,
            ", ".join(self.config.topics),
            self.group_id,
            self.action.value,
        )
        last_stats = time.monotonic()
        try:
            while not self._stopping:
                messages = consumer.consume(BATCH_MAX_RECORDS, POLL_TIMEOUT_S)
                records = [m for m in messages if not m.error()]
                _log_errors(m for m in messages if m.error())
                if records:
                    plan = plan_batch(records, tables)
                    self.stats.tombstones += plan.tombstones
                    self.handle_failures(plan.failures)
                    self._write_with_retry(session, plan)
                    if self._dead_letters:
                        self._dead_letters.flush()
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
        error = msg.error()
        if error is not None and error.code() not in quiet:
            log.warning("sink: kafka error %s", error)
