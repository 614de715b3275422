"""The simulator's websocket streams with a real client (the `websockets` library): Binance's
paths, wrapping, control messages, limits, ping/pong, the local order book procedure and
each stream fault. Timing comes from the simulator's fake clock where the simulator has
one; waits are bounded."""

import json
import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import requests
from capstock.cli import build_parser
from capstock.simulator import Simulator, start_simulator
from capstock.simulator.cli import given_flags
from capstock.simulator.settings import load_simulator_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode
from websockets.sync.client import connect as ws_connect

from tests.support.clock import FakeClock
from tests.support.stream_clients import LocalBook, RawStreamClient, close_frame

WAIT = 10.0
"""Upper bound of every wait for something the simulator is expected to send."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock):
    """A simulator on a fake clock: nothing trades until the test moves the clock."""
    with start_simulator(symbols=3, seed=1, clock=clock, trade_rate=20, history_minutes=2) as s:
        yield s


@pytest.fixture
def live_sim():
    """A simulator on the real clock, trading fast enough that silence means a fault."""
    with start_simulator(symbols=3, seed=1, trade_rate=50, history_minutes=1) as s:
        yield s


def connect(url, **options):
    """A client that queues whatever arrives (with the default bounded queue it stops
    reading when a test reads less than it is sent, and its close waits out a timeout)."""
    return ws_connect(url, max_queue=None, **{"close_timeout": 1, **options})


def receive(ws, until, *, seconds=WAIT):
    """JSON messages until ``until(message)`` holds for one (returned last)."""
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        got.append(message)
        if until(message):
            return got
    raise AssertionError(f"not received within {seconds} s; last: {got[-3:]}")


def answer_to(ws, request):
    ws.send(json.dumps(request))
    return receive(ws, lambda m: m.get("id") == request["id"] and "e" not in m)[-1]


def silent_for(ws, seconds):
    """True if nothing arrives within ``seconds``."""
    try:
        ws.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


def rest(sim, path, **params):
    return requests.get(f"{sim.url}/v3/{path}", params=params, timeout=5).json()


def control(sim, method, path, body=None):
    base = sim.url.removesuffix("/api")
    return requests.request(method, f"{base}/_sim/{path}", json=body, timeout=5)


# -- paths and wrapping ------------------------------------------------------------------------


def test_a_raw_stream_sends_the_payload_alone(sim, clock):
    with connect(sim.ws_url + "ws/btcusdt@trade") as ws:
        clock.advance(2)
        (trade,) = receive(ws, lambda m: True)
    assert trade["e"] == "trade" and trade["s"] == "BTCUSDT"
    assert isinstance(trade["t"], int) and isinstance(trade["p"], str)


def test_a_combined_stream_wraps_each_payload_with_its_stream_name(sim, clock):
    names = {"btcusdt@trade", "ethusdt@trade"}
    with connect(sim.ws_url + "stream?streams=btcusdt@trade/ethusdt@trade") as ws:
        clock.advance(2)
        got = receive(ws, until_each_stream(names))
    assert all(set(m) == {"stream", "data"} for m in got)
    for m in got:
        assert m["stream"] in names and m["data"]["s"] == m["stream"].split("@")[0].upper()


def until_each_stream(names):
    """A ``receive`` condition: a message of every stream in ``names`` has come."""
    seen = set()

    def until(message):
        seen.add(message["stream"])
        return names <= seen

    return until


def test_several_raw_streams_on_one_path(sim, clock):
    with connect(sim.ws_url + "ws/btcusdt@trade/btcusdt@depth@100ms") as ws:
        clock.advance(2)
        got = receive(ws, lambda m: m.get("e") == "depthUpdate")
    assert {m["e"] for m in got} >= {"depthUpdate"} and "stream" not in got[-1]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("ws/BTCUSDT@trade", "lowercase"),
        ("stream?streams=btcusdt@trade/btcusdt@nope", "unknown stream"),
        ("ws/btcusdt@kline_7m", "kline interval"),
        ("api/v3/ping", "no such path"),
    ],
)
def test_a_stream_the_exchange_lacks_is_refused_at_the_handshake(sim, path, reason):
    with pytest.raises(InvalidStatus) as err:
        connect(sim.ws_url + path, open_timeout=5)
    assert err.value.response.status_code == 400
    assert reason in err.value.response.body.decode()


def test_a_well_formed_stream_of_an_unknown_symbol_is_accepted_and_silent(sim, clock):
    with connect(sim.ws_url + "ws/nopeusdt@trade") as ws:
        clock.advance(2)
        assert silent_for(ws, 0.5)


# -- control messages --------------------------------------------------------------------------


def test_live_subscribe_list_combined_and_unsubscribe(sim, clock):
    with connect(sim.ws_url + "ws") as ws:
        assert answer_to(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": [], "id": 1}
        subscribe = {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 2}
        assert answer_to(ws, subscribe) == {"result": None, "id": 2}
        clock.advance(1)
        assert receive(ws, lambda m: True)[-1]["e"] == "trade", "raw: no wrapping"
        combined = {"method": "SET_PROPERTY", "params": ["combined", True], "id": "c1"}
        assert answer_to(ws, combined) == {"result": None, "id": "c1"}
        clock.advance(1)
        wrapped = receive(ws, lambda m: "stream" in m)[-1]
        assert wrapped["stream"] == "btcusdt@trade" and wrapped["data"]["e"] == "trade"
        unsubscribe = {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 4}
        # Answers and data leave in one queue: every trade sent before it was read above.
        assert answer_to(ws, unsubscribe) == {"result": None, "id": 4}
        clock.advance(2)
        assert silent_for(ws, 0.5), "no stream left"
        error = answer_to(ws, {"method": "SUBSCRIBE", "params": ["BTCUSDT@trade"], "id": 5})
        assert error["error"]["code"] == 2 and "lowercase" in error["error"]["msg"]


def test_1024_streams_per_connection(sim):
    names = [f"sym{i}usdt@trade" for i in range(1024)]
    with connect(sim.ws_url + "ws") as ws:
        answer = answer_to(ws, {"method": "SUBSCRIBE", "params": names, "id": 1})
        assert answer == {"result": None, "id": 1}
        over = answer_to(ws, {"method": "SUBSCRIBE", "params": ["one@trade"], "id": 2})
        assert over["error"]["code"] == 2 and "1024" in over["error"]["msg"]
        assert len(answer_to(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})["result"]) == 1024


# -- limits ------------------------------------------------------------------------------------


def test_five_messages_a_second_are_fine_a_sixth_disconnects(sim):
    with connect(sim.ws_url + "ws") as ws:
        for i in range(5):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        assert [m["id"] for m in receive(ws, lambda m: m["id"] == 4)] == [0, 1, 2, 3, 4]
    with connect(sim.ws_url + "ws") as ws:
        for i in range(6):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, lambda m: False)
    assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason == "Too many messages"
    assert sim.streams.state()["counts"]["rate_limited"] == 1


def pinging(pong_timeout):
    return start_simulator(
        symbols=3, seed=1, history_minutes=1, ws_ping_interval=0.2, ws_pong_timeout=pong_timeout
    )


@pytest.fixture
def pinging_sim():
    with pinging(pong_timeout=0.6) as s:
        yield s


def test_the_server_pings_and_an_echoing_pong_keeps_the_connection():
    with pinging(pong_timeout=5) as sim:  # past the observed 1.5 s: a slow machine passes
        pings_answered_for(sim, 1.5)


def pings_answered_for(sim, seconds):
    client = RawStreamClient(sim.ws_url + "ws/btcusdt@trade")
    try:
        frames = client.frames(seconds, answer_pings=True)
        pings = [f for f in frames if f.opcode is Opcode.PING]
        assert len(pings) >= 3 and len({bytes(f.data) for f in pings}) == len(pings)
        pending = client.frames(0.2, answer_pings=True)  # the answer to the last one
        assert not client.closed and close_frame(frames + pending) is None
    finally:
        client.close()
    assert sim.streams.state()["counts"].get("pong_timeouts", 0) == 0


def test_no_pong_within_the_timeout_closes_the_connection(pinging_sim):
    client = RawStreamClient(pinging_sim.ws_url + "ws/btcusdt@trade")
    try:
        closing = close_frame(client.until_closed(WAIT))
    finally:
        client.close()
    assert closing is not None and (closing.data[:2], closing.data[2:]) == (
        (1008).to_bytes(2, "big"),
        b"Pong timeout",
    )


def test_a_pong_with_another_payload_does_not_count(pinging_sim):
    client = RawStreamClient(pinging_sim.ws_url + "ws/btcusdt@trade")
    try:
        deadline = time.monotonic() + WAIT
        frames = []
        while not client.closed and time.monotonic() < deadline:
            for frame in client.frames(0.1, answer_pings=False):
                frames.append(frame)
                if frame.opcode is Opcode.PING:
                    client.pong(b"not-" + bytes(frame.data))
    finally:
        client.close()
    assert close_frame(frames) is not None and b"Pong timeout" in close_frame(frames).data


# -- the same market ---------------------------------------------------------------------------


def test_stream_trade_ids_are_the_rest_trade_ids(sim, clock):
    with connect(sim.ws_url + "ws/btcusdt@trade") as ws:
        for _ in range(5):
            clock.advance(1)
            time.sleep(0.06)
        last = rest(sim, "trades", symbol="BTCUSDT", limit=1)[-1]["id"]
        trades = receive(ws, lambda m: m["t"] == last)
    ids = [t["t"] for t in trades]
    history = rest(sim, "trades", symbol="BTCUSDT", limit=1000)
    assert ids == [t["id"] for t in history if t["id"] >= ids[0]]
    assert len(ids) > 20
    by_id = {t["id"]: t for t in history}
    for t in trades:
        match = by_id[t["t"]]
        assert (t["p"], t["q"], t["T"], t["m"]) == (
            match["price"],
            match["qty"],
            match["time"],
            match["isBuyerMaker"],
        )


def snapshot_of(sim, symbol="BTCUSDT"):
    return lambda: rest(sim, "depth", symbol=symbol, limit=5000)


def as_levels(depth):
    return (
        depth["lastUpdateId"],
        [(Decimal(p), Decimal(q)) for p, q in depth["bids"]],
        [(Decimal(p), Decimal(q)) for p, q in depth["asks"]],
    )


def follow(sim, clock, ws, book, seconds):
    """Move the clock a second at a time, then feed ``book`` every diff event up to the
    simulator's current update id (returned)."""
    for _ in range(seconds):
        clock.advance(1)
        time.sleep(0.06)
    target = rest(sim, "depth", symbol="BTCUSDT", limit=1)["lastUpdateId"]
    for event in receive(ws, lambda m: m["u"] >= target):
        book.on_event(event)
    return target


@pytest.mark.parametrize("stream", ["btcusdt@depth", "btcusdt@depth@100ms"])
def test_the_documented_local_book_procedure_reproduces_the_simulators_book(sim, clock, stream):
    with connect(sim.ws_url + "ws/" + stream) as ws:
        book = LocalBook(snapshot_of(sim))
        target = follow(sim, clock, ws, book, 3)
        assert book.levels is not None and book.update_id == target
        assert book.as_depth() == as_levels(snapshot_of(sim)())
        follow(sim, clock, ws, book, 3)
        assert book.as_depth() == as_levels(snapshot_of(sim)())
        assert book.gaps == 0 and book.resyncs == 1


def test_a_skipped_depth_event_is_a_gap_and_a_resync_restores_the_book(sim, clock):
    with connect(sim.ws_url + "ws/btcusdt@depth@100ms") as ws:
        book = LocalBook(snapshot_of(sim))
        follow(sim, clock, ws, book, 2)
        assert book.resyncs == 1
        sim.add_fault("ws_skip", count=1, paths=["btcusdt@depth@100ms"])
        follow(sim, clock, ws, book, 3)
    assert book.gaps == 1 and book.resyncs == 2
    assert book.as_depth() == as_levels(snapshot_of(sim)())
    assert sim.streams.state()["counts"]["skipped"] == 1


def test_a_skipped_trade_is_a_hole_in_the_stream_that_rest_fills(sim, clock):
    with connect(sim.ws_url + "ws/btcusdt@trade") as ws:
        clock.advance(1)
        first = receive(ws, lambda m: True)[-1]["t"]
        sim.add_fault("ws_skip", count=1, paths=["btcusdt@trade"])
        for _ in range(3):
            clock.advance(1)
            time.sleep(0.06)
        last = rest(sim, "trades", symbol="BTCUSDT", limit=1)[-1]["id"]
        ids = [first] + [m["t"] for m in receive(ws, lambda m: m["t"] == last)]
    history = [t["id"] for t in rest(sim, "trades", symbol="BTCUSDT", limit=1000)]
    missing = sorted(set(range(first, last + 1)) - set(ids))
    assert len(missing) == 1 and missing[0] in history


def test_klines_partial_books_and_tickers_over_the_wire(sim, clock):
    names = ["btcusdt@kline_1m", "btcusdt@depth5", "btcusdt@ticker", "btcusdt@miniTicker"]
    with connect(sim.ws_url + "stream?streams=" + "/".join(names)) as ws:
        clock.advance(2)
        got = {m["stream"]: m["data"] for m in receive(ws, until_each_stream(set(names)))}
    assert got["btcusdt@kline_1m"]["k"]["x"] is False
    assert set(got["btcusdt@depth5"]) == {"lastUpdateId", "bids", "asks"}
    assert len(got["btcusdt@depth5"]["bids"]) == 5
    assert got["btcusdt@ticker"]["e"] == "24hrTicker"
    price = rest(sim, "ticker/price", symbol="BTCUSDT")["price"]
    assert got["btcusdt@miniTicker"]["c"] == got["btcusdt@ticker"]["c"] == price


# -- faults ------------------------------------------------------------------------------------


def test_ws_drop_cuts_the_connection_without_a_close_frame(live_sim):
    with connect(live_sim.ws_url + "ws/btcusdt@trade") as ws:
        receive(ws, lambda m: True)
        live_sim.add_fault("ws_drop", count=1)
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, lambda m: False)
    assert closed.value.rcvd is None, "no close frame"
    assert live_sim.streams.state()["counts"]["dropped"] == 1


@pytest.mark.parametrize("pongs", [True, False])
def test_ws_stall_keeps_the_socket_open_and_goes_silent(live_sim, pongs):
    with connect(live_sim.ws_url + "ws/btcusdt@trade", close_timeout=0.5) as ws:
        receive(ws, lambda m: True)
        live_sim.add_fault("ws_stall", count=1, pongs=pongs)
        deadline = time.monotonic() + WAIT
        while live_sim.streams.state()["stalled"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        while not silent_for(ws, 1.0):  # what was already on its way
            pass
        sent = live_sim.streams.state()["counts"]["messages"]
        assert silent_for(ws, 1.0), "no trades, although the market trades 50 a second"
        assert live_sim.streams.state()["counts"]["messages"] == sent
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        assert silent_for(ws, 0.5), "no answer either"
        pong = ws.ping()
        assert pong.wait(WAIT if pongs else 1.0) is pongs, "pings answered only with pongs=true"
    assert live_sim.streams.state()["counts"]["stalled"] == 1


def test_rollover_closes_with_1001_on_the_simulators_clock(clock):
    with (
        start_simulator(symbols=3, seed=1, clock=clock, ws_rollover_seconds=60) as sim,
        connect(sim.ws_url + "ws/btcusdt@trade") as ws,
    ):
        clock.advance(30)
        time.sleep(0.2)
        clock.advance(31)
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, lambda m: False)
        assert closed.value.rcvd.code == 1001
        assert sim.streams.state()["counts"]["rollovers"] == 1


def test_rollover_from_the_control_endpoint_and_the_ws_rollover_fault(sim, clock):
    with connect(sim.ws_url + "ws/btcusdt@trade") as ws:
        assert control(sim, "POST", "streams", {"rollover_seconds": 5}).status_code == 200
        clock.advance(6)
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, lambda m: False)
        assert closed.value.rcvd.code == 1001
    assert control(sim, "POST", "streams", {"rollover_seconds": 0}).status_code == 400
    assert control(sim, "POST", "streams", {"later": 1}).status_code == 400
    control(sim, "POST", "streams", {"rollover_seconds": 3600})
    with connect(sim.ws_url + "ws/btcusdt@trade") as ws:
        r = control(sim, "POST", "faults", {"kind": "ws_rollover", "count": 1})
        assert r.status_code == 200 and r.json()["faults"][0]["kind"] == "ws_rollover"
        clock.advance(1)
        with pytest.raises(ConnectionClosed) as closed:
            receive(ws, lambda m: False)
        assert closed.value.rcvd.code == 1001
    state = control(sim, "GET", "streams").json()
    assert state["counts"]["rollovers"] == 2 and state["rollover_seconds"] == 3600
    assert control(sim, "GET", "state").json()["ws_url"] == sim.ws_url


# -- settings and the command ------------------------------------------------------------------


def test_stream_settings_from_flags(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIMULATOR_WS_ROLLOVER_SECONDS", "600")
    args = build_parser().parse_args(
        ["simulator", "--ws-port", "0", "--ws-ping-interval", "5", "--fault", "ws_stall,pongs=0"]
    )
    settings = load_simulator_settings(given_flags(args))
    assert (settings.ws_port, settings.ws_ping_interval, settings.ws_rollover_seconds) == (
        0,
        5.0,
        600.0,
    )
    monkeypatch.setenv("SIMULATOR_WS_PORT", "")
    assert load_simulator_settings({}).ws_port is None


def simulator_below(taken: socket.socket) -> Simulator | None:
    """A simulator on the port just below ``taken``'s, or None when that one is busy."""
    try:
        return Simulator(symbols=3, port=taken.getsockname()[1] - 1, history_minutes=1)
    except OSError:
        return None


def test_streams_next_to_the_api_port_or_on_a_free_one_when_it_is_taken(caplog):
    # Hold a port and start the simulator just below it; when that neighbour is busy,
    # try another pair (the OS hands out ports at random).
    held: list[socket.socket] = []
    sim = None
    try:
        for _ in range(50):
            taken = socket.socket()
            held.append(taken)
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            if (sim := simulator_below(taken)) is not None:
                break
        assert sim is not None, "no free port below 50 held ones"
        api_port = sim.port
        try:
            assert sim.streams.port not in (api_port + 1, 0)
            assert "for the streams is not available" in caplog.text
        finally:
            sim.close()
        with pytest.raises(OSError):
            Simulator(symbols=3, port=0, ws_port=api_port + 1, history_minutes=1)
    finally:
        for taken in held:
            taken.close()
    caplog.clear()
    with start_simulator(symbols=3, history_minutes=1) as probe:
        free = probe.port
    sim = Simulator(symbols=3, port=free, history_minutes=1)
    try:
        assert sim.streams.port == free + 1 or "not available" in caplog.text
    finally:
        sim.close()


def test_the_command_serves_the_streams_next_to_the_api(tmp_path):
    with start_simulator(symbols=3) as probe:  # two free ports, released at once
        port, ws_port = probe.port, probe.streams.port
    argv = [sys.executable, "-m", "capstock.cli", "simulator", "--port", str(port)]
    argv += ["--ws-port", str(ws_port), "--symbols", "3", "--history-minutes", "1"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                ws = connect(f"ws://127.0.0.1:{ws_port}/ws/btcusdt@trade", open_timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the streams did not start")
                time.sleep(0.1)
        with ws:
            assert receive(ws, lambda m: True)[-1]["e"] == "trade"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert f"streams at ws://127.0.0.1:{ws_port}/" in out
