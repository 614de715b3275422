"""What every sub-command shares: its declaration, the exit statuses, the log format.

Exit status (the ``EXIT_*`` constants): 0 success, 1 a job or command failed (or the
producer lost rows), 2 bad configuration or usage, 3 the producer stopped with rows it
could not store in Postgres: they are safe in the spool (``PRODUCER_SPOOL_DIR``) and are
written on its next start.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_SPOOLED = 3
"""``run``/``once`` stopped with rows still in the spool: nothing lost, not yet in Postgres."""


@dataclass(frozen=True)
class Command:
    """One sub-command. ``run`` receives the parsed arguments and returns the exit status;
    ``description`` starts with an example the help shows."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None


def setup_logging(level: str = "INFO") -> None:
    """One line per event, e.g.
    ``2026-11-21T05:35:00 INFO capstock.ingest.jobs job=klines rows=60 ...``."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
