"""Fixtures of the fault matrix: the real native stack, its supervisor, an isolated chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack import pipeline, status
from stack.pipeline import SupervisorProcess
from stack.settings import StackSettings
from tests.integration.conftest import (  # noqa: F401
    cassandra_session,
    cdc_chain,
    leaves_no_trace,
    native_stack,
)


@pytest.fixture(scope="session", autouse=True)
def no_running_pipeline(native_stack: StackSettings) -> None:  # noqa: F811
    """The fault matrix kills and stops the shared Kafka, Connect, Postgres and Cassandra
    and caps the WAL of every slot: with a pipeline of yours running it would be hit too."""
    run = status.read_run(native_stack)
    running = [p.name for p in pipeline.pipeline_components(native_stack) if p.pid()]
    if run or running:
        pytest.fail(
            "a pipeline is running on this stack (make demo / make up): the fault matrix "
            "would disturb it. Stop it with `make down`, then run the tests again",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def supervisor(native_stack: StackSettings) -> Iterator[SupervisorProcess]:  # noqa: F811
    """The stack's supervisor, as `make demo` runs it (started here if it is not running)."""
    process = SupervisorProcess(native_stack)
    started = process.pid() is None
    if started:
        process.start()
    yield process
    if started:
        process.stop()
