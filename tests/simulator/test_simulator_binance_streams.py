"""python-binance's own websocket clients against the simulator's streams: its
BinanceSocketManager (STREAM_URL set on the instance or a subclass), its
ThreadedWebsocketManager (pointed at the simulator by tests.support.stream_clients) and
its reconnection after a dropped connection."""

import asyncio
import time

import pytest
from binance.async_client import AsyncClient
from binance.ws.streams import BinanceSocketManager
from capstock.simulator import start_simulator

from tests.support.stream_clients import SimulatorWebsocketManager

WAIT = 15.0


@pytest.fixture
def sim():
    with start_simulator(symbols=3, seed=1, trade_rate=50, history_minutes=1) as s:
        yield s


async def first_messages(socket, count, seconds=WAIT):
    got = []
    async with socket as s:
        while len(got) < count:
            got.append(await asyncio.wait_for(s.recv(), seconds))
    return got


def test_the_socket_manager_with_stream_url_set_on_the_instance(sim):
    async def run():
        client = AsyncClient()  # the constructor does not ping; create() would
        try:
            bsm = BinanceSocketManager(client)
            bsm.STREAM_URL = sim.ws_url
            trades = await first_messages(bsm.trade_socket("BTCUSDT"), 3)
            streams = ["btcusdt@trade", "ethusdt@depth@100ms", "btcusdt@kline_1m"]
            combined = await first_messages(bsm.multiplex_socket(streams), 30)
            depth = await first_messages(bsm.depth_socket("SOLUSDT", depth="5"), 1)
            diff = await first_messages(bsm.depth_socket("SOLUSDT", interval=100), 1)
            ticker = await first_messages(bsm.symbol_ticker_socket("BTCUSDT"), 1)
            return trades, combined, depth, diff, ticker
        finally:
            await client.close_connection()

    trades, combined, depth, diff, ticker = asyncio.run(run())
    assert [t["e"] for t in trades] == ["trade"] * 3
    assert [t["t"] for t in trades] == sorted(t["t"] for t in trades)
    assert {m["stream"] for m in combined} <= {
        "btcusdt@trade",
        "ethusdt@depth@100ms",
        "btcusdt@kline_1m",
    }
    assert {"btcusdt@trade", "ethusdt@depth@100ms"} <= {m["stream"] for m in combined}
    assert set(depth[0]) == {"lastUpdateId", "bids", "asks"} and len(depth[0]["bids"]) == 5
    assert diff[0]["e"] == "depthUpdate" and diff[0]["s"] == "SOLUSDT"
    assert ticker[0]["e"] == "24hrTicker"


def test_a_socket_manager_subclass_with_the_simulators_stream_url(sim):
    local = type("LocalSocketManager", (BinanceSocketManager,), {"STREAM_URL": sim.ws_url})

    async def run():
        client = AsyncClient()
        try:
            return await first_messages(local(client).kline_socket("BTCUSDT", "1m"), 1)
        finally:
            await client.close_connection()

    (kline,) = asyncio.run(run())
    assert kline["e"] == "kline" and kline["k"]["i"] == "1m" and kline["k"]["x"] is False


def test_the_threaded_websocket_manager(sim):
    trades, combined = [], []
    twm = SimulatorWebsocketManager(sim.url, sim.ws_url)
    twm.start()
    try:
        twm.start_trade_socket(callback=trades.append, symbol="BTCUSDT")
        twm.start_multiplex_socket(
            callback=combined.append, streams=["ethusdt@trade", "btcusdt@miniTicker"]
        )
        deadline = time.monotonic() + WAIT
        while (len(trades) < 5 or len(combined) < 5) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        twm.stop()
        twm.join(timeout=WAIT)
    assert len(trades) >= 5 and all(t["e"] == "trade" for t in trades)
    assert {m["stream"] for m in combined} <= {"ethusdt@trade", "btcusdt@miniTicker"}
    assert sim.requests["ping"] == 1, "AsyncClient.create pinged the simulator, not Binance"


def test_python_binance_reconnects_after_a_dropped_connection(sim):
    async def run():
        client = AsyncClient()
        try:
            bsm = BinanceSocketManager(client)
            bsm.STREAM_URL = sim.ws_url
            got = []
            async with bsm.trade_socket("BTCUSDT") as s:
                got.append(await asyncio.wait_for(s.recv(), WAIT))
                sim.add_fault("ws_drop", count=1)
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline:
                    got.append(await asyncio.wait_for(s.recv(), WAIT))
                    if any(m["e"] == "error" for m in got) and got[-1]["e"] == "trade":
                        break
            return got
        finally:
            await client.close_connection()

    got = asyncio.run(run())
    errors = [m for m in got if m["e"] == "error"]
    assert errors and errors[0]["type"] == "ConnectionClosedError"
    assert got[-1]["e"] == "trade", "trades again after python-binance reconnected"
    counts = sim.streams.state()["counts"]
    assert counts["dropped"] == 1 and counts["opened"] == 2
