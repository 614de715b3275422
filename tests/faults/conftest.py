"""Fixtures of the fault matrix: the real native stack, its supervisor, an isolated chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.pipeline import SupervisorProcess
from stack.settings import StackSettings
from tests.integration.conftest import (  # noqa: F401
    cassandra_session,
    cdc_chain,
    native_stack,
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
