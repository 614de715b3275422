"""Is a sink connector making progress? Committed offsets, lag and dead letters from Kafka.

Connect reports a sink task RUNNING even while it retries the same records forever, so
`make status` also asks Kafka: how far behind the connector's consumer group is, whether
its committed offsets move, and how many records it parked in its dead-letter topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

# Connect commits sink offsets every offset.flush.interval.ms (1 s natively): a group that
# is behind and has not moved in this long is stuck.
STALL_PROBE_S = 4.0


@dataclass(frozen=True)
class GroupOffsets:
    committed: int  # sum over partitions; a partition never committed counts as 0
    end: int  # sum of the partitions' end offsets

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


def probe_consumer(bootstrap: str, group: str) -> Consumer:
    # Never subscribes, so it only reads the group's offsets and never joins it.
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})


def partitions_of(consumer: Consumer, topics: list[str]) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=5)
    return [
        TopicPartition(topic, p)
        for topic in topics
        if topic in metadata.topics and not metadata.topics[topic].error
        for p in metadata.topics[topic].partitions
    ]


def group_offsets(bootstrap: str, group: str, topics: list[str]) -> GroupOffsets:
    consumer = probe_consumer(bootstrap, group)
    try:
        partitions = partitions_of(consumer, topics)
        if not partitions:
            return GroupOffsets(0, 0)
        committed = consumer.committed(partitions, timeout=5)
        end = sum(consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in partitions)
        return GroupOffsets(sum(max(tp.offset, 0) for tp in committed), end)
    finally:
        consumer.close()


def topic_size(bootstrap: str, topic: str) -> int:
    """Records ever written to a topic (0 if it does not exist)."""
    consumer = probe_consumer(bootstrap, "cap-stock-status")
    try:
        return sum(
            consumer.get_watermark_offsets(tp, timeout=5)[1]
            for tp in partitions_of(consumer, [topic])
        )
    finally:
        consumer.close()


def describe(bootstrap: str, connector: str, config: dict[str, str]) -> tuple[bool, str]:
    """(making progress, one status line) for a sink connector's config."""
    topics = [t.strip() for t in config.get("topics", "").split(",") if t.strip()]
    group = f"connect-{connector}"
    try:
        first = group_offsets(bootstrap, group, topics)
        if first.lag:
            time.sleep(STALL_PROBE_S)
            second = group_offsets(bootstrap, group, topics)
        else:
            second = first
        dead_letter = config.get("errors.deadletterqueue.topic.name")
        parked = topic_size(bootstrap, dead_letter) if dead_letter else 0
    except KafkaException as err:
        return False, f"cannot read its offsets from Kafka: {err}"
    parked_text = f", {parked} record(s) in dead-letter topic {dead_letter}" if parked else ""
    if second.lag and second.committed == first.committed:
        return False, (
            f"NOT COMMITTING: lag {second.lag} and no offset committed for "
            f"{STALL_PROBE_S:.0f}s (see connect.log){parked_text}"
        )
    return True, f"lag {second.lag}{parked_text}"
