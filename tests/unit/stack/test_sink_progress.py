"""`make status` calls a RUNNING sink stuck when its lag stays and its offsets do not move."""

from __future__ import annotations

import pytest

from stack import sink_progress
from stack.sink_progress import GroupOffsets

CONFIG = {"topics": "a,b", "errors.deadletterqueue.topic.name": "dlq"}


def fake_kafka(
    monkeypatch: pytest.MonkeyPatch, samples: list[GroupOffsets], parked: int = 0
) -> list[str]:
    asked: list[str] = []

    def group_offsets(bootstrap: str, group: str, topics: list[str]) -> GroupOffsets:
        asked.append(group)
        assert topics == ["a", "b"]
        return samples.pop(0)

    monkeypatch.setattr(sink_progress, "group_offsets", group_offsets)
    monkeypatch.setattr(sink_progress, "topic_size", lambda bootstrap, topic: parked)
    monkeypatch.setattr(sink_progress, "STALL_PROBE_S", 0)
    return asked


def test_caught_up_is_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_kafka(monkeypatch, [GroupOffsets(10, 10)])
    assert sink_progress.describe("k", "sink", CONFIG) == (True, "lag 0")
    assert asked == ["connect-sink"]  # Connect's group for the connector


def test_behind_but_committing_is_healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kafka(monkeypatch, [GroupOffsets(10, 50), GroupOffsets(40, 60)], parked=2)
    ok, line = sink_progress.describe("k", "sink", CONFIG)
    assert ok
    assert line == "lag 20, 2 record(s) in dead-letter topic dlq"


def test_behind_and_not_moving_is_stuck(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kafka(monkeypatch, [GroupOffsets(10, 50), GroupOffsets(10, 55)])
    ok, line = sink_progress.describe("k", "sink", CONFIG)
    assert not ok
    assert line.startswith("NOT COMMITTING: lag 45")
