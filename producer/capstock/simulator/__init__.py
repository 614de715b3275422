"""Stage 0 for offline work: a simulated Binance spot REST API.

In tests::

    from capstock.simulator import start_simulator
    with start_simulator(symbols=5, seed=1) as sim:   # free port on 127.0.0.1
        client.API_URL = sim.url                       # http://127.0.0.1:<port>/api
        sim.add_fault("429", count=1, retry_after=2)
"""

from capstock.simulator.faults import Fault, FaultPlan
from capstock.simulator.market import Market
from capstock.simulator.server import Simulator, start_simulator

__all__ = ["Fault", "FaultPlan", "Market", "Simulator", "start_simulator"]
