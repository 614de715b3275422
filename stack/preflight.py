"""What `python -m stack pipeline` checks before it starts anything.

1. Every variable in the environment or .env that looks like ours (``POSTGRES_``,
   ``UNIVERSE_``, ...) is one a component reads; a typo is named with a guess::

       UNIVERSE_TOP_N is not a setting of cap-stock; did you mean UNIVERSE_SIZE?

2. Every setting of the producer, the schema set-up and the sink choice validates, with
   the values the processes will get (the runner's environment for them).
3. ``--source live``: the exchange answers one ping through the real client, or the run
   stops with the URL, the cause and the fix (offline: `make demo`).

Settings problems exit 2, an unreachable exchange 1; in both cases nothing was started.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from stack.process import StackError
from stack.settings import StackSettings, dotenv, variable_names

EXIT_SETTINGS = 2
EXIT_UNREACHABLE = 1


class PreflightError(Exception):
    """Why the pipeline was not started; ``exit_code`` says which kind of problem."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ with ``values`` on top, restored afterwards (settings classes read it)."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def process_env(settings: StackSettings, source: str) -> dict[str, str]:
    """What the producer will see: the runner's environment plus pipeline_env."""
    from stack import pipeline

    values = pipeline.pipeline_env(settings)
    if source == "demo":
        values["BINANCE_API_URL"] = pipeline.Simulator(settings).api_url
    return values


def check_settings(settings: StackSettings, source: str) -> None:
    from capstock.config import CassandraSettings, ConfigError, load, load_settings
    from capstock.variables import unknown_names

    from stack import pipeline

    problems = unknown_names([*os.environ, *dotenv()], extra=variable_names())
    try:
        pipeline.sink_choice()
    except StackError as err:
        problems.append(str(err))
    with environment({**process_env(settings, source), **pipeline.admin_env(settings)}):
        for check in (lambda: load_settings(env_file=None), lambda: load(CassandraSettings)):
            try:
                check()
            except ConfigError as err:
                problems.extend(str(err).splitlines())
    if problems:
        listed = "\n".join(f"  - {p}" for p in dict.fromkeys(problems))
        raise PreflightError(
            f"settings: nothing was started, fix these first (.env or the environment):\n{listed}",
            EXIT_SETTINGS,
        )


def check_exchange(settings: StackSettings) -> str:
    """One ping through the real client; returns the URL that answered."""
    from capstock.config import BinanceSettings, load
    from capstock.exchange.client import ExchangeUnreachable, probe

    with environment(process_env(settings, "live")):
        binance = load(BinanceSettings, _env_file=None)
    try:
        probe(binance)
    except ExchangeUnreachable as err:
        raise PreflightError(f"exchange: {err}", EXIT_UNREACHABLE) from None
    return binance.api_url


def check(settings: StackSettings, source: str) -> None:
    """Raise PreflightError before anything starts; print what was checked."""
    check_settings(settings, source)
    if source == "live":
        print(f"exchange: {check_exchange(settings)} answers", flush=True)
