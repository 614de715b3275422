"""What unit tests may use besides the code: the jars `make fetch` resolved (no service)."""

from __future__ import annotations

import pytest

from stack.process import StackError
from stack.services.base import read_classpath
from stack.settings import StackSettings


@pytest.fixture
def kafka_classpath() -> str:
    """The Kafka broker and Connect worker classpath from `make fetch`.

    `make test` and `make test-unit` fetch first; without the fetch this is a failure that
    says to run it (a skip would count a test that never ran).
    """
    try:
        return read_classpath(StackSettings(), "kafka")
    except StackError as err:
        pytest.fail(str(err), pytrace=False)
