"""What unit tests may use besides the code: the jars `make fetch` resolved (no service)."""

from __future__ import annotations

import os

import pytest

from stack.components import read_classpath
from stack.process import StackError
from stack.settings import StackSettings


@pytest.fixture
def kafka_classpath() -> str:
    """The Kafka broker and Connect worker classpath from `make fetch`.

    `make test` fetches first. Without it the test is skipped, except in CI (``CI`` set),
    where a missing fetch is a failure.
    """
    try:
        return read_classpath(StackSettings(), "kafka")
    except StackError as err:
        if os.environ.get("CI"):
            pytest.fail(str(err))
        pytest.skip(str(err))
