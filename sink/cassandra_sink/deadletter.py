"""What happens to a record the engine could not map, and the dead-letter topic.

The decision follows the connector config, as Connect and the engine would act:

    ignoreErrors=All                      skip it (the engine swallows its own failures)
    errors.tolerance=all + a DLQ topic    produce it to errors.deadletterqueue.topic.name
    errors.tolerance=all, no DLQ topic    skip it
    otherwise (tolerance none, default)   stop the sink, exit non-zero: Connect fails the task

plus, as the Connect adapter does, ignoreErrors=Driver skips a record Cassandra refused
(a write failure) but not one that could not be mapped.

A skipped or dead-lettered record is logged once (topic/partition/offset, table, reason)
and counted either way. A dead letter keeps the original key, value, timestamp and
headers and adds Connect's error-context headers (`__connect.errors.topic`, `.partition`,
`.offset`, `.exception.message`...), so tools written for Connect's DLQ read it as is.
Dead letters are flushed before the batch's offsets are committed: a crash in between
replays the batch and may park a record twice, never lose it. While Kafka is away the
flush waits for it (the producer never gives a dead letter up), unless the sink is
stopping.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cassandra_sink.config import ErrorPolicy, SinkConfigError
from cassandra_sink.kafka import UNREACHABLE, KafkaState, client_config

log = logging.getLogger("cassandra_sink")

# Header names and stage value of Kafka Connect's DeadLetterQueueReporter.
HEADER_PREFIX = "__connect.errors."
STAGE_TASK_PUT = "TASK_PUT"
FLUSH_SLICE_S = 1.0


class Action(enum.Enum):
    DEAD_LETTER = "dead-letter"
    SKIP = "skip"
    STOP = "stop"


def action_for(policy: ErrorPolicy, write: bool = False) -> Action:
    """What to do with a failed record; `write`: Cassandra refused it (else: unmappable)."""
    if policy.ignore_errors == "all" or (policy.ignore_errors == "driver" and write):
        return Action.SKIP
    if policy.tolerance_all:
        return Action.DEAD_LETTER if policy.dead_letter_topic else Action.SKIP
    return Action.STOP


class DeadLetterError(RuntimeError):
    """A dead letter could not be delivered; the batch must not be committed."""


# exception.class.name of a record that could not be mapped; one Cassandra refused gets
# the driver's exception class (cassandra.InvalidRequest...).
MAPPING_ERROR = "cassandra_sink.records.BadRecord"


def error_headers(
    topic: str,
    partition: int,
    offset: int,
    connector: str,
    reason: str,
    error_class: str = MAPPING_ERROR,
) -> list[tuple[str, bytes]]:
    """Connect's error-context headers for one failed record (values are UTF-8 text)."""
    values = {
        "topic": topic,
        "partition": str(partition),
        "offset": str(offset),
        "connector.name": connector,
        "task.id": "0",
        "stage": STAGE_TASK_PUT,
        "class.name": "cassandra_sink.runner.CassandraSink",
        "exception.class.name": error_class,
        "exception.message": reason,
    }
    return [(HEADER_PREFIX + name, value.encode()) for name, value in values.items()]


def ensure_topic(
    bootstrap_servers: str, topic: str, replication_factor: int, state: KafkaState
) -> None:
    """Create the dead-letter topic (one partition) when missing, as Connect does."""
    admin = AdminClient(client_config(bootstrap_servers, state))
    future = admin.create_topics([NewTopic(topic, 1, replication_factor)])[topic]
    try:
        future.result(timeout=30)
    except TimeoutError:
        raise DeadLetterError(f"Kafka at {bootstrap_servers} did not answer in 30 s") from None
    except KafkaException as err:
        code = err.args[0].code()
        if code in UNREACHABLE or code == KafkaError._TIMED_OUT:
            # Not the config's fault: exit 1, so that a supervisor starts the sink again.
            raise DeadLetterError(
                f"cannot create {topic}: Kafka at {bootstrap_servers} is unreachable "
                f"({err.args[0].str()})"
            ) from None
        if code != KafkaError.TOPIC_ALREADY_EXISTS:
            raise SinkConfigError(
                f"errors.deadletterqueue.topic.name={topic}: cannot create it with "
                f"errors.deadletterqueue.topic.replication.factor={replication_factor}: "
                f"{err.args[0].str()}"
            ) from None


class DeadLetterQueue:
    def __init__(
        self, bootstrap_servers: str, topic: str, connector: str, state: KafkaState
    ) -> None:
        self.topic = topic
        self.connector = connector
        self._failures: list[str] = []
        self._producer = Producer(
            {
                **client_config(bootstrap_servers, state),
                "enable.idempotence": True,
                "linger.ms": 5,
                # Never give a dead letter up while Kafka is away (the default is 5 min):
                # the batch's offsets wait for it, and a restart would replay it anyway.
                "message.timeout.ms": 0,
            }
        )

    def send(self, msg: Message, reason: str, error_class: str = MAPPING_ERROR) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        timestamp_type, timestamp = msg.timestamp()
        self._producer.produce(
            self.topic,
            key=msg.key(),
            value=msg.value(),
            headers=list(msg.headers() or [])
            + error_headers(topic, partition, offset, self.connector, reason, error_class),
            timestamp=timestamp if timestamp_type != 0 else 0,
            on_delivery=self._delivered,
        )
        self._producer.poll(0)

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failures.append(err.str())

    def flush(self, keep_waiting: Callable[[], bool] = lambda: True) -> None:
        """Wait until every dead letter is acknowledged, through a Kafka outage as long as
        `keep_waiting()`; raise if one was refused or the wait was given up."""
        remaining = self._producer.flush(FLUSH_SLICE_S)
        while remaining and keep_waiting() and not self._failures:
            remaining = self._producer.flush(FLUSH_SLICE_S)
        if remaining or self._failures:
            failures, self._failures = self._failures, []
            raise DeadLetterError(
                f"{len(failures) + remaining} dead letter(s) to {self.topic} not delivered: "
                + "; ".join(failures[:3] or ["the sink stopped while Kafka was unreachable"])
            )
