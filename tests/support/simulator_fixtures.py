"""Pytest fixtures that run the exchange simulator in-process on 127.0.0.1 (a free port).

Use from any conftest::

    from tests.support.simulator_fixtures import simulator, simulator_url  # noqa: F401

``simulator`` is a started :class:`capstock.simulator.Simulator`, fresh per test: seed 1,
real clock, 8 USDT pairs (BTC ETH SOL BNB XRP DOGE SHIB PEPE) plus ETHBTC and BNBBTC.
``simulator_url`` is its API base for ``BINANCE_API_URL``: ``http://127.0.0.1:<port>/api``.
"""

from collections.abc import Iterator

import pytest
from capstock.simulator import Simulator, start_simulator

SIMULATOR_SYMBOLS = 8


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = start_simulator(symbols=SIMULATOR_SYMBOLS, seed=1, history_minutes=10)
    try:
        yield sim
    finally:
        sim.close()


@pytest.fixture
def simulator_url(simulator: Simulator) -> str:
    return simulator.url
