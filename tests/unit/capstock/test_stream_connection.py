"""A stream connection's control messages (capstock.exchange.streams): chunked, paced under
Binance's 5 incoming messages a second, and the URL of every later connection carries
what is wanted then."""

import json

from capstock.backoff import Sleeper
from capstock.exchange.streams import (
    CONTROL_MESSAGES_PER_SECOND,
    NAMES_PER_MESSAGE,
    StreamConnection,
)


class FakeSocket:
    def __init__(self):
        self.sent = []

    def send(self, text):
        self.sent.append(json.loads(text))


def connection(clock):
    return StreamConnection(
        "c1",
        "ws://127.0.0.1:1",
        ["btcusdt@trade"],
        lambda *a: None,
        sleeper=Sleeper(),
        stall_seconds=10,
        rollover_seconds=3600,
        clock=clock,
    )


def test_subscriptions_are_chunked_and_paced():
    now = [100.0]
    conn = connection(lambda: now[0])
    names = [f"s{i}@trade" for i in range(2 * NAMES_PER_MESSAGE + 10)]
    conn.subscribe(names)
    conn.unsubscribe(["btcusdt@trade"])
    ws = FakeSocket()
    conn._send_control(ws)
    conn._send_control(ws)
    assert len(ws.sent) == 1, "one message, then a pause"
    gap = 1.0 / CONTROL_MESSAGES_PER_SECOND
    for _ in range(5):
        now[0] += gap
        conn._send_control(ws)
    assert [(m["method"], len(m["params"])) for m in ws.sent] == [
        ("SUBSCRIBE", NAMES_PER_MESSAGE),
        ("SUBSCRIBE", NAMES_PER_MESSAGE),
        ("SUBSCRIBE", 10),
        ("UNSUBSCRIBE", 1),
    ]
    assert [m["id"] for m in ws.sent] == [1, 2, 3, 4]
    assert CONTROL_MESSAGES_PER_SECOND < 5, "pongs count against Binance's 5 a second too"
    assert conn.streams == names, "the next connection's URL"


def test_subscribing_what_is_there_sends_nothing():
    conn = connection(lambda: 0.0)
    conn.subscribe(["btcusdt@trade"])
    conn.unsubscribe(["ethusdt@trade"])
    ws = FakeSocket()
    conn._send_control(ws)
    assert ws.sent == []


def test_a_connection_that_never_opened_is_trouble_with_its_reason():
    conn = connection(lambda: 0.0)
    assert "stream connection c1 down: connecting" in conn.trouble().text
    conn._went_down("ConnectionRefusedError: [Errno 111] Connection refused")
    assert conn.trouble().text.endswith("Connection refused")
    conn._came_up()
    assert conn.trouble() is None
