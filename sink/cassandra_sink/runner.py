"""The consume → write → commit loop.

Guarantee: offsets are committed only after every row of the batch is written (and every
dead letter acknowledged), so a crash replays the batch; the writes are upserts by
primary key, so the replay leaves Cassandra exactly as before. Records that cannot become
rows are handled per the config's error policy (deadletter.py): parked in the dead-letter
topic, skipped, or the sink stops before writing the batch. So is a record Cassandra
refuses as invalid: that record alone (its batch neighbours are still written, see
writer.py), after which the sink moves on.

Cassandra away, restarting, overloaded or slow: the batch is retried, never skipped,
with a pause doubling from RETRY_BASE_S up to RETRY_CAP_S, cut short as soon as the
driver reconnects to a node, so writes resume within seconds of Cassandra's return.
Kafka away: one log line when it goes, one when it is back (kafka.py); the consumer uses
static group membership, so a crashed and restarted sink gets its partitions back at once.

The sink has its own consumer group, `cap-stock-python-sink-<connector name>` by default:
Connect's sink uses `connect-<connector name>`, and sharing it would make one sink
silently continue from the other's offsets when you switch between them.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from capstock.backoff import Backoff
from cassandra import AuthenticationFailed
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.query import UNSET_VALUE
from confluent_kafka import Consumer, KafkaException, Message

from cassandra_sink.config import SinkConfig, SinkConfigError
from cassandra_sink.deadletter import (
    MAPPING_ERROR,
    Action,
    DeadLetterQueue,
    action_for,
    ensure_topic,
)
from cassandra_sink.kafka import KafkaState, consumer_config, instance_id
from cassandra_sink.records import BadRecord, decode
from cassandra_sink.writer import (
    PreparedTable,
    Refusal,
    Row,
    Source,
    TransientWriteError,
    connect,
    hosts_up,
    prepare,
    write_rows,
)

log = logging.getLogger("cassandra_sink")

BATCH_MAX_RECORDS = 2000
POLL_TIMEOUT_S = 0.2
RETRY_BASE_S = 0.5
# Short enough that writes resume within seconds of Cassandra's return even when the
# driver's reconnection is not noticed (a node up but failing requests).
RETRY_CAP_S = 5.0
# Attempts left to a batch in hand once SIGTERM has arrived, before giving it up unwritten
# (uncommitted: the next start replays it).
STOP_ATTEMPTS = 3
WAIT_STEP_S = 0.2
STILL_FAILING_LOG_S = 60.0
STATS_EVERY_S = 30.0
GROUP_PREFIX = "cap-stock-python-sink-"


def default_group_id(connector_name: str) -> str:
    return GROUP_PREFIX + connector_name


@dataclass
class SinkStats:
    """What this process did since it started (the committed offsets, which `make status`
    and `make watch` read, are the lasting count)."""

    written: Counter = field(default_factory=Counter)
    tombstones: int = 0
    bad_records: Counter = field(default_factory=Counter)
    dead_lettered: int = 0

    def line(self) -> str:
        total = sum(self.written.values())
        per_table = " ".join(f"{t}={n}" for t, n in sorted(self.written.items()))
        return (
            f"sink since start: written={total} ({per_table or 'none'}) "
            f"tombstones={self.tombstones} "
            f"bad_records={sum(self.bad_records.values())} dead_lettered={self.dead_lettered}"
        )


@dataclass(frozen=True)
class Failure:
    """A record one table could not take, and why."""

    msg: Message
    table: str
    reason: str
    write: bool = False  # Cassandra refused it (else: it could not be mapped)
    error_class: str = MAPPING_ERROR

    def describe(self) -> str:
        return (
            f"{self.msg.topic()}[{self.msg.partition()}]@{self.msg.offset()} "
            f"for {self.table}: {self.reason}"
        )


class RecordFailed(RuntimeError):
    """errors.tolerance=none and a record could not be written: the sink stops."""


class WriteAbandoned(RuntimeError):
    """Stopping while Cassandra does not take the batch in hand; it stays uncommitted."""


class KafkaFailed(RuntimeError):
    """A fatal Kafka client error (e.g. fenced by another sink with the same instance id)."""


def retry_backoff() -> Backoff:
    """The pauses between Cassandra retries: doubling from RETRY_BASE_S, capped at
    RETRY_CAP_S, jittered so that a restarted Cassandra does not see every client at
    once; never exhausted (a batch is never skipped)."""
    return Backoff(base=RETRY_BASE_S, cap=RETRY_CAP_S, max_attempts=None)


@dataclass
class Plan:
    """One batch: a row per primary key written, the records that cannot be mapped."""

    rows: list[Row] = field(default_factory=list)
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
    """Map every record of a batch onto its tables, keeping one write per primary key
    (and, per row, each record's own image, for writing them alone if Cassandra refuses
    the row)."""
    plan = Plan()
    rows: dict[tuple[str, tuple], Row] = {}
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
            source = Source(msg, statement, values)
            row = rows.get((table.name, key))
            if row is None:
                rows[(table.name, key)] = Row(table, statement, values, [source])
                continue
            row.statement, row.values = _merge(
                (row.statement, row.values), (statement, values), table
            )
            row.sources.append(source)
    plan.rows = list(rows.values())
    return plan


def written_per_table(rows: Iterable[Row], refusals: Iterable[Refusal]) -> Counter[str]:
    """Rows stored per table: those with at least one record Cassandra did not refuse."""
    refused = {id(r.source) for r in refusals}
    return Counter(
        row.table.mapping.table for row in rows if any(id(s) not in refused for s in row.sources)
    )


class CassandraSink:
    def __init__(self, config: SinkConfig, bootstrap_servers: str, group_id: str | None = None):
        self.config = config
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id or default_group_id(config.name)
        self.stats = SinkStats()
        self.action = action_for(config.errors)
        self.kafka = KafkaState()
        self._dead_letters: DeadLetterQueue | None = None
        self._stopping = False

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit, then leave the loop."""
        self._stopping = True

    # --- bad records ------------------------------------------------------------------

    def handle_failures(self, failures: Iterable[Failure]) -> None:
        """Log and count each failed record once, then park, skip or stop (RecordFailed).

        The log line starts like the Connect adapter's ("Rejected record <topic>[<partition>]
        @<offset>"), so one grep finds bad records whichever sink runs."""
        for failure in failures:
            self.stats.bad_records[failure.table] += 1
            action = action_for(self.config.errors, failure.write)
            if action is Action.STOP:
                raise RecordFailed(
                    f"Rejected record {failure.describe()} (errors.tolerance=none: set "
                    "errors.tolerance=all and errors.deadletterqueue.topic.name to park bad "
                    "records instead of stopping)"
                )
            if action is Action.DEAD_LETTER and self._dead_letters:
                reason = f"{failure.table}: {failure.reason}"
                self._dead_letters.send(failure.msg, reason, failure.error_class)
                self.stats.dead_lettered += 1
                log.error(
                    "sink: Rejected record %s (sent to %s)",
                    failure.describe(),
                    self._dead_letters.topic,
                )
            else:
                log.error("sink: Rejected record %s (skipped)", failure.describe())

    @staticmethod
    def refused(refusals: Iterable[Refusal]) -> list[Failure]:
        """Cassandra's refusals as failures; a dead letter names the driver's exception."""
        return [
            Failure(
                r.source.origin,
                r.table.name,
                f"Cassandra refused the write: {type(r.error).__name__}: {r.error}",
                write=True,
                error_class=f"{type(r.error).__module__}.{type(r.error).__qualname__}",
            )
            for r in refusals
        ]

    # --- Cassandra --------------------------------------------------------------------

    def write(self, session: Session, rows: list[Row], cassandra_up: Callable[[], bool]) -> None:
        """Write a batch's rows, retrying while Cassandra is away, then settle the records
        it refused for good."""
        refusals = self._write_with_retry(session, rows, cassandra_up)
        self.stats.written.update(written_per_table(rows, refusals))
        self.handle_failures(self.refused(refusals))

    def _write_with_retry(
        self, session: Session, rows: list[Row], cassandra_up: Callable[[], bool]
    ) -> list[Refusal]:
        backoff, first_failure, last_log = retry_backoff(), 0.0, 0.0
        while True:
            try:
                refusals = write_rows(session, rows, self.config.max_concurrent_requests)
            except TransientWriteError as err:
                attempt = backoff.failures + 1
                now = time.monotonic()
                if attempt == 1:
                    first_failure = last_log = now
                    log.warning("sink: Cassandra write failed (%s); retrying", err)
                elif now - last_log >= STILL_FAILING_LOG_S:
                    last_log = now
                    log.warning(
                        "sink: Cassandra still failing after %d attempts in %.0fs (%s)",
                        attempt,
                        now - first_failure,
                        err,
                    )
                if self._stopping and attempt > STOP_ATTEMPTS:
                    raise WriteAbandoned(
                        f"Cassandra did not take the batch in hand ({err}); its offsets are "
                        "not committed, so the next start writes it again"
                    ) from err
                self.wait(backoff.next_delay(), cassandra_up)
                continue
            if backoff.failures:
                log.info(
                    "sink: Cassandra writes succeed again after %d retries in %.0fs",
                    backoff.failures,
                    time.monotonic() - first_failure,
                )
            return refusals

    def wait(self, delay: float, cassandra_up: Callable[[], bool]) -> None:
        """Sleep `delay` seconds before a retry, less when stopping; and if the driver had
        lost every node, only until it reconnects to one."""
        if self._stopping:
            delay = min(delay, RETRY_BASE_S)
        deadline = time.monotonic() + delay
        was_down = not cassandra_up()
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(WAIT_STEP_S, left))
            if was_down and cassandra_up():
                return

    def _connect(self) -> tuple[Cluster, Session] | None:
        """Connect to Cassandra, waiting for it if it is away (None: stopped meanwhile)."""
        backoff = retry_backoff()
        while not self._stopping:
            try:
                return connect(self.config)
            except NoHostAvailable as err:
                if any(isinstance(e, AuthenticationFailed) for e in err.errors.values()):
                    raise SinkConfigError(
                        f"Cassandra refused auth.username={self.config.username}: {err}"
                    ) from None
                if not backoff.failures:
                    log.warning("sink: Cassandra is not reachable (%s); waiting for it", err)
                self.wait(backoff.next_delay(), lambda: False)
        return None

    # --- Kafka ------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        consumer = Consumer(consumer_config(self.bootstrap_servers, self.group_id, self.kafka))
        consumer.subscribe(self.config.topics)
        return consumer

    def _open_dead_letters(self) -> None:
        dead_letter_topic = self.config.errors.dead_letter_topic
        if self.action is Action.DEAD_LETTER and dead_letter_topic:
            ensure_topic(
                self.bootstrap_servers,
                dead_letter_topic,
                self.config.errors.dead_letter_replication_factor,
                self.kafka,
            )
            self._dead_letters = DeadLetterQueue(
                self.bootstrap_servers, dead_letter_topic, self.config.name, self.kafka
            )

    def poll(self, consumer: Consumer) -> list[Message]:
        """The next records; errors go to the Kafka state, one log line per change."""
        if self.kafka.fatal is not None:
            raise KafkaFailed(self.kafka.fatal.str())
        records = []
        for msg in consumer.consume(BATCH_MAX_RECORDS, POLL_TIMEOUT_S):
            error = msg.error()
            if error is None:
                records.append(msg)
            else:
                self.kafka.on_error(error)
        if records:
            self.kafka.mark_reachable()
        return records

    def commit(self, consumer: Consumer) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as err:
            # Kafka away or the group rebalancing: the next commit covers these offsets,
            # or a restart writes the batch again (idempotent upserts).
            self.kafka.on_error(err.args[0], "commit")

    # --- the loop ---------------------------------------------------------------------

    def run(self, install_signal_handlers: bool = True) -> int:
        if install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self._open_dead_letters()
        connected = self._connect()
        if connected is None:
            return 0
        cluster, session = connected
        tables = {
            topic: [prepare(session, m, self.config.codecs[topic]) for m in mappings]
            for topic, mappings in self.config.mappings.items()
        }
        consumer = self._consumer()
        log.info(
            "sink: %s consuming %s as group %s (member %s); bad records: %s",
            self.config.name,
            ", ".join(self.config.topics),
            self.group_id,
            instance_id(self.group_id),
            self.action.value,
        )
        try:
            self._loop(consumer, session, tables, lambda: hosts_up(cluster))
        finally:
            # Leaves the group; a static member's partitions wait session.timeout.ms for it.
            consumer.close()
            cluster.shutdown()
            log.info(self.stats.line())
        return 0

    def _loop(
        self,
        consumer: Consumer,
        session: Session,
        tables: dict[str, list[PreparedTable]],
        cassandra_up: Callable[[], bool],
    ) -> None:
        last_stats = time.monotonic()
        while not self._stopping:
            records = self.poll(consumer)
            if records:
                plan = plan_batch(records, tables)
                self.stats.tombstones += plan.tombstones
                self.handle_failures(plan.failures)
                self.write(session, plan.rows, cassandra_up)
                if self._dead_letters:
                    self._dead_letters.flush(lambda: not self._stopping)
                self.commit(consumer)
            if time.monotonic() - last_stats > STATS_EVERY_S:
                log.info(self.stats.line())
                last_stats = time.monotonic()
