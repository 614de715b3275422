"""The exchange for offline work (stands in for stage 1's Binance): simulated spot REST API and
market streams.

In tests::

    from capstock.simulator import start_simulator
    with start_simulator(symbols=5, seed=1) as sim:   # free port on 127.0.0.1
        client.API_URL = sim.url                       # http://127.0.0.1:<port>/api
        bsm.STREAM_URL = sim.ws_url                    # ws://127.0.0.1:<ws port>/
        sim.add_fault("429", count=1, retry_after=2)
        sim.add_fault("ws_drop", count=1)              # the next stream message: cut

The modules, in the order a request meets them:

=============  ==========================================================================
server         HTTP: ``/api/v3/*`` to the simulator, ``/_sim/*`` to control; writes responses
exchange       :class:`Simulator`: ties market, faults, ledger and saved state together
ledger         request weights and the per-minute budget (429, then 418 bans)
faults         fault switches: 429, 418, 5xx, slow, malformed, truncated, unfiltered, ws_*
rest           Binance's market-data endpoints: query parameters in, JSON body out
responses      the :class:`~capstock.simulator.responses.Response` value, refusals, broken bodies
control        the ``/_sim/`` endpoints for tests and demos
websocket      the streams: ``/ws/<stream>``, ``/stream?streams=``, control messages, limits
feed           what each stream carries, tick by tick, from the market
streams        stream names and payloads
market         the seeded random-walk market
book           each symbol's order book, one event per update id
state          the market saved at a clean stop and continued by the next start
settings       ``SIMULATOR_*`` settings, one class
cli            ``cap-stock simulator``
=============  ==========================================================================
"""

from capstock.simulator.exchange import Simulator, start_simulator
from capstock.simulator.faults import Fault, FaultPlan
from capstock.simulator.market import Market

__all__ = ["Fault", "FaultPlan", "Market", "Simulator", "start_simulator"]
