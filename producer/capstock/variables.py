"""Every environment variable cap-stock reads, so a misspelled one is named with a guess.

The names come from the settings classes (:mod:`capstock.config`, the simulator's) plus
:data:`OTHER_NAMES`; the native runner passes its own (``stack.settings.variable_names``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pydantic_settings import BaseSettings

from capstock.config import (
    BinanceSettings,
    IngestSettings,
    JobSettings,
    KafkaSettings,
    LogSettings,
    PostgresSettings,
    SpoolSettings,
    UniverseSettings,
)
from capstock.simulator.settings import SimulatorSettings

# A variable with one of these prefixes that no component reads is a typo.
PREFIXES = (
    "POSTGRES_",
    "BINANCE_",
    "UNIVERSE_",
    "JOB_",
    "LOG_",
    "PRODUCER_",
    "INGEST_",
    "CASSANDRA_",
    "KAFKA_",
    "CONNECT_",
    "SIMULATOR_",
    "STACK_",
    "GRAFANA_",
    "AKHQ_",
)

# Read by no Python settings class: by docker-compose.yml, connect_connectors.sh, the
# connector watchdog, and the tools the stack starts (Kafka's and Cassandra's scripts).
# The native runner's names come from its own class (stack.settings.variable_names).
OTHER_NAMES = frozenset(
    {
        # docker-compose.yml
        "AKHQ_PORT",
        "GRAFANA_ADMIN_USER",
        "KAFKA_ADVERTISED_HOST",
        "KAFKA_CLUSTER_ID",
        "POSTGRES_ADMIN_PASSWORD",
        "POSTGRES_MAX_SLOT_WAL_KEEP_SIZE",
        "CASSANDRA_MAX_HEAP_SIZE",
        "CASSANDRA_HEAP_NEWSIZE",
        # connect_connectors.sh and the connector watchdog
        "CONNECT_URL",
        "CONNECT_WAIT_SECONDS",
        "CONNECT_WATCHDOG_INTERVAL",
        # read by Kafka's and Cassandra's own launch scripts
        "KAFKA_HEAP_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_LOG4J_OPTS",
        "CONNECT_HEAP_OPTS",
        "CASSANDRA_HOME",
        "CASSANDRA_CONF",
    }
)


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class whose variables users set (producer, schema set-up, simulator)."""
    from capstock.history.setup import CassandraSettings

    return [
        PostgresSettings,
        BinanceSettings,
        UniverseSettings,
        JobSettings,
        LogSettings,
        SpoolSettings,
        IngestSettings,
        CassandraSettings,
        KafkaSettings,
        SimulatorSettings,
    ]


def known_names(extra: Iterable[str] = ()) -> set[str]:
    """Every variable some part reads: the settings classes here, OTHER_NAMES, ``extra``."""
    names = set(OTHER_NAMES) | set(extra)
    for model in settings_classes():
        prefix = str(model.model_config.get("env_prefix", ""))
        names.update(f"{prefix}{name}".upper() for name in model.model_fields)
    return names


def unknown_names(names: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """One message per variable that looks like ours but that nothing reads (``extra``:
    the names other settings classes read, e.g. the native runner's)."""
    known = known_names(extra)
    problems = []
    for name in sorted(set(names)):
        if not name.startswith(PREFIXES) or name in known:
            continue
        guess = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {guess[0]}?" if guess else "; see .env.example for the settings"
        problems.append(f"{name} is not a setting of cap-stock{hint}")
    return problems
