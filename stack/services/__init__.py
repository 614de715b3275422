"""The services of the native stack, one module each, on the shared :mod:`base`.

Start order is :func:`all_components`'s; Grafana is optional and started by the
pipeline, not by ``python -m stack up``.
"""

from __future__ import annotations

from stack.services.base import Component, prepare_home, wipe
from stack.services.cassandra import Cassandra
from stack.services.connect import Connect
from stack.services.grafana import Grafana
from stack.services.kafka import Kafka
from stack.services.postgres import Postgres
from stack.settings import StackSettings

__all__ = [
    "Cassandra",
    "Component",
    "Connect",
    "Grafana",
    "Kafka",
    "Postgres",
    "all_components",
    "prepare_home",
    "wipe",
]


def all_components(settings: StackSettings) -> list[Component]:
    """In start order; stop in reverse."""
    # Cassandra before Connect: the sink connector's task connects as soon as Connect starts.
    return [Postgres(settings), Kafka(settings), Cassandra(settings), Connect(settings)]
