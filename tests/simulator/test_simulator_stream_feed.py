"""The streams without a network: names, control messages, stream faults and what the feed
sends, tick by tick, over a market (the websocket behaviour is in
test_simulator_websocket.py)."""

import json
from decimal import Decimal

import pytest
from capstock.simulator import Fault, FaultPlan, Market
from capstock.simulator import streams as st
from capstock.simulator.feed import StreamFeed
from capstock.simulator.rest import RestApi
from capstock.simulator.streams import BadStreamName, parse_stream
from capstock.simulator.websocket import MAX_STREAMS, Subscriptions, streams_of_path

NOW_MS = 1_700_000_010_000
SECOND = 1000

TRADE_KEYS = {"e": str, "E": int, "s": str, "t": int, "p": str, "q": str, "T": int, "m": bool}


@pytest.fixture
def market() -> Market:
    return Market(symbol_count=4, seed=2, now_ms=NOW_MS, trade_rate=20, history_minutes=2)


@pytest.fixture
def feed(market) -> StreamFeed:
    return StreamFeed(market)


def streams(*names):
    return [parse_stream(n) for n in names]


def decimal_string(value):
    return isinstance(value, str) and Decimal(value).is_finite() and "." in value


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "symbol", "extra"),
    [
        ("btcusdt@trade", st.TRADE, "BTCUSDT", {}),
        ("btcusdt@aggTrade", st.AGG_TRADE, "BTCUSDT", {}),
        ("ethbtc@kline_15m", st.KLINE, "ETHBTC", {"interval": "15m", "every_ms": 2000}),
        ("btcusdt@depth", st.DEPTH, "BTCUSDT", {"every_ms": 1000}),
        ("btcusdt@depth@100ms", st.DEPTH, "BTCUSDT", {"every_ms": 100}),
        ("btcusdt@depth5", st.PARTIAL_DEPTH, "BTCUSDT", {"levels": 5, "every_ms": 1000}),
        ("btcusdt@depth20@100ms", st.PARTIAL_DEPTH, "BTCUSDT", {"levels": 20, "every_ms": 100}),
        ("btcusdt@ticker", st.TICKER, "BTCUSDT", {}),
        ("btcusdt@miniTicker", st.MINI_TICKER, "BTCUSDT", {}),
        ("!miniTicker@arr", st.ALL_MINI_TICKERS, None, {}),
        ("!miniTicker@arr@1000ms", st.ALL_MINI_TICKERS, None, {}),
        ("nopeusdt@trade", st.TRADE, "NOPEUSDT", {}),
    ],
)
def test_stream_names(name, kind, symbol, extra):
    stream = parse_stream(name)
    assert (stream.name, stream.kind, stream.symbol) == (name, kind, symbol)
    for key, value in extra.items():
        assert getattr(stream, key) == value
    assert stream.sequenced == (kind in (st.TRADE, st.AGG_TRADE, st.DEPTH))


@pytest.mark.parametrize(
    "name",
    [
        "BTCUSDT@trade",
        "btcUSDT@depth",
        "btcusdt@Trade",
        "btcusdt@aggtrade",
        "btcusdt@kline_2m",
        "btcusdt@kline_1s",
        "btcusdt@depth15",
        "btcusdt@depth@250ms",
        "btcusdt",
        "@trade",
        "btc-usdt@trade",
        "!ticker@arr",
        "",
    ],
)
def test_names_the_exchange_does_not_serve(name):
    with pytest.raises(BadStreamName):
        parse_stream(name)


def test_an_upper_case_symbol_is_named_as_the_reason():
    with pytest.raises(BadStreamName, match="lowercase"):
        parse_stream("BTCUSDT@trade")


def test_paths():
    assert streams_of_path("/ws/btcusdt@trade") == (["btcusdt@trade"], False)
    assert streams_of_path("/ws/btcusdt@trade/ethusdt@ticker") == (
        ["btcusdt@trade", "ethusdt@ticker"],
        False,
    )
    assert streams_of_path("/ws") == ([], False)
    assert streams_of_path("/stream?streams=a@trade/b@depth") == (["a@trade", "b@depth"], True)
    assert streams_of_path("/stream") == ([], True)
    assert streams_of_path("/ws/btcusdt@trade?timeUnit=MILLISECOND")[0] == ["btcusdt@trade"]
    for bad in ("/api/v3/ping", "/streams?streams=a@trade", "/ws/x?timeUnit=MICROSECOND"):
        with pytest.raises(BadStreamName):
            streams_of_path(bad)


# -- control messages --------------------------------------------------------------------------


def ask(subs: Subscriptions, message) -> dict:
    return subs.handle(message if isinstance(message, str) else json.dumps(message))


def test_subscribe_unsubscribe_list_and_properties():
    subs = Subscriptions(combined=False)
    assert ask(subs, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}) == {
        "result": None,
        "id": 1,
    }
    ask(subs, {"method": "SUBSCRIBE", "params": ["ethusdt@depth", "btcusdt@trade"], "id": 2})
    assert ask(subs, {"method": "LIST_SUBSCRIPTIONS", "id": "abc"}) == {
        "result": ["btcusdt@trade", "ethusdt@depth"],
        "id": "abc",
    }
    ask(subs, {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade", "never@trade"], "id": 3})
    assert ask(subs, {"method": "LIST_SUBSCRIPTIONS", "id": None})["result"] == ["ethusdt@depth"]
    assert ask(subs, {"method": "GET_PROPERTY", "params": ["combined"], "id": 4})["result"] is False
    assert ask(subs, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}) == {
        "result": None,
        "id": 5,
    }
    assert subs.combined is True


@pytest.mark.parametrize(
    ("message", "code", "text"),
    [
        ("{not json", 3, "Invalid JSON"),
        ([1, 2], 2, "Invalid request"),
        ({"params": [], "id": 1}, 2, "missing field `method`"),
        ({"method": "subscribe", "params": [], "id": 1}, 2, "unknown variant"),
        ({"method": "SUBSCRIBE", "params": ["BTCUSDT@trade"], "id": 1}, 2, "lowercase"),
        ({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 1}, 2, "params"),
        ({"method": "SUBSCRIBE", "params": [], "id": 1.5}, 2, "request ID"),
        ({"method": "SUBSCRIBE", "params": [], "id": "x" * 37}, 2, "request ID"),
        ({"method": "SUBSCRIBE", "params": [], "id": True}, 2, "request ID"),
        (
            {"method": "SET_PROPERTY", "params": ["compressed", True], "id": 1},
            0,
            "Unknown property",
        ),
        ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}, 1, "Boolean"),
        ({"method": "GET_PROPERTY", "params": [7], "id": 1}, 2, "property name"),
    ],
)
def test_bad_control_messages_are_answered_with_binance_error_codes(message, code, text):
    subs = Subscriptions(combined=True, streams={"btcusdt@trade": parse_stream("btcusdt@trade")})
    answer = ask(subs, message)
    assert answer["error"]["code"] == code and text in answer["error"]["msg"]
    assert "result" not in answer
    assert list(subs.streams) == ["btcusdt@trade"] and subs.combined is True, "unchanged"


def test_a_valid_id_is_echoed_in_an_error():
    answer = ask(Subscriptions(False), {"method": "NOPE", "id": 42})
    assert answer["id"] == 42 and answer["error"]["code"] == 2


def test_at_most_1024_streams_per_connection_and_none_of_a_refused_batch():
    subs = Subscriptions(combined=True)
    names = [f"sym{i}usdt@trade" for i in range(MAX_STREAMS)]
    assert ask(subs, {"method": "SUBSCRIBE", "params": names, "id": 1})["result"] is None
    assert len(subs.streams) == MAX_STREAMS == 1024
    again = ask(subs, {"method": "SUBSCRIBE", "params": names[:10], "id": 2})
    assert again == {"result": None, "id": 2}, "already subscribed: no new stream"
    over = ask(subs, {"method": "SUBSCRIBE", "params": ["x@trade", "y@trade"], "id": 3})
    assert over["error"]["code"] == 2 and "too many streams" in over["error"]["msg"]
    assert len(subs.streams) == 1024


# -- stream faults -----------------------------------------------------------------------------


def test_stream_fault_kinds_parse_and_never_reach_rest_requests():
    stall = Fault.parse("ws_stall,pongs=false,count=2")
    assert (stall.kind, stall.pongs, stall.count) == ("ws_stall", False, 2)
    assert Fault.parse("ws_drop").pongs is True
    assert Fault.from_json({"kind": "ws_skip", "paths": ["btcusdt@depth"]}).paths == [
        "btcusdt@depth"
    ]
    with pytest.raises(ValueError, match="pongs"):
        Fault.parse("ws_stall,pongs=maybe")
    with pytest.raises(ValueError, match="pongs"):
        Fault.from_json({"kind": "ws_stall", "pongs": "false"})
    plan = FaultPlan()
    plan.add(Fault("ws_drop"))
    assert plan.pick("depth") is None, "REST requests ignore stream faults"
    assert plan.has_stream_faults()
    assert plan.pick_stream("btcusdt@trade", sequenced=True).kind == "ws_drop"


def test_skip_only_takes_sequenced_messages_and_paths_name_streams():
    plan = FaultPlan()
    plan.add(Fault("ws_skip", count=1, paths=["btcusdt@depth"]))
    plan.add(Fault("429"))
    assert plan.pick_stream("btcusdt@ticker", sequenced=False) is None
    assert plan.pick_stream("ethusdt@depth", sequenced=True) is None
    assert plan.pick_stream("btcusdt@depth", sequenced=True).kind == "ws_skip"
    assert plan.pick_stream("btcusdt@depth", sequenced=True) is None, "count used up"
    assert not plan.has_stream_faults()
    assert plan.pick("ping").kind == "429"


# -- the feed ----------------------------------------------------------------------------------


def test_every_trade_once_in_id_order_with_binance_types(market, feed):
    wanted = streams("btcusdt@trade", "ethusdt@aggTrade")
    assert feed.tick(NOW_MS, wanted) == [], "recording starts when a stream is wanted"
    events = []
    for second in range(1, 4):
        events += feed.tick(NOW_MS + second * SECOND, wanted)
    btc = [p for name, p in events if name == "btcusdt@trade"]
    eth = [p for name, p in events if name == "ethusdt@aggTrade"]
    assert btc and eth
    for p in btc:
        assert set(p) == set(TRADE_KEYS) | {"M"} and p["M"] is True
        assert all(isinstance(p[k], t) for k, t in TRADE_KEYS.items())
        assert decimal_string(p["p"]) and decimal_string(p["q"]) and p["s"] == "BTCUSDT"
        assert p["T"] <= p["E"]
    ids = [p["t"] for p in btc]
    rest = RestApi(market, 6000).trades({"symbol": "BTCUSDT", "limit": "1000"})
    assert ids == [t["id"] for t in rest if t["id"] >= ids[0]]
    assert [(p["p"], p["q"], p["T"], p["m"]) for p in btc] == [
        (t["price"], t["qty"], t["time"], t["isBuyerMaker"]) for t in rest if t["id"] >= ids[0]
    ]
    assert all(p["a"] == p["f"] == p["l"] for p in eth)
    assert set(eth[0]) == {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}


def test_a_long_jump_of_the_clock_streams_every_trade_rest_no_longer_keeps(market, feed):
    wanted = streams("solusdt@trade")
    feed.tick(NOW_MS, wanted)
    ids = [p["t"] for _, p in feed.tick(NOW_MS + 120 * SECOND, wanted)]
    assert len(ids) > 1000
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def replay(levels, event):
    for side in ("b", "a"):
        for price, qty in event[side]:
            if Decimal(qty) == 0:
                levels[side].pop(Decimal(price), None)
            else:
                levels[side][Decimal(price)] = Decimal(qty)


def test_diff_events_chain_and_replay_the_book_from_a_snapshot(market, feed):
    wanted = streams("btcusdt@depth", "btcusdt@depth@100ms")
    feed.tick(NOW_MS, wanted)
    snapshot_id, bids, asks = market.book("BTCUSDT", 5000)
    books = {name: {"b": dict(bids), "a": dict(asks)} for name in ("slow", "fast")}
    last_u = {"btcusdt@depth": snapshot_id, "btcusdt@depth@100ms": snapshot_id}
    counts = {"btcusdt@depth": 0, "btcusdt@depth@100ms": 0}
    for step in range(1, 31):
        for name, event in feed.tick(NOW_MS + step * 100, wanted):
            assert event["e"] == "depthUpdate" and event["s"] == "BTCUSDT"
            assert event["U"] == last_u[name] + 1 and event["u"] >= event["U"]
            last_u[name] = event["u"]
            counts[name] += 1
            replay(books["fast" if name.endswith("100ms") else "slow"], event)
    assert counts["btcusdt@depth@100ms"] > counts["btcusdt@depth"] >= 2
    update_id, bids, asks = market.book("BTCUSDT", 5000)
    assert last_u["btcusdt@depth@100ms"] == update_id
    assert books["fast"] == {"b": dict(bids), "a": dict(asks)}


def test_no_change_no_diff_event_and_partial_books_every_period(market, feed):
    wanted = streams("btcusdt@depth@100ms", "btcusdt@depth5", "btcusdt@depth10@100ms")
    feed.tick(NOW_MS, wanted)
    feed.tick(NOW_MS + 100, wanted)
    same_time = feed.tick(NOW_MS + 100, wanted)
    assert not [n for n, _ in same_time if n == "btcusdt@depth@100ms"], "nothing changed"
    events = feed.tick(NOW_MS + 1100, wanted)
    partial = dict((n, p) for n, p in events if "@depth5" in n or "@depth10" in n)
    update_id, bids, asks = market.book("BTCUSDT", 10)
    assert partial["btcusdt@depth10@100ms"] == st.partial_depth_event(update_id, bids, asks)
    assert partial["btcusdt@depth5"] == st.partial_depth_event(update_id, bids[:5], asks[:5])
    assert set(partial["btcusdt@depth5"]) == {"lastUpdateId", "bids", "asks"}
    assert "btcusdt@depth5" not in [n for n, _ in feed.tick(NOW_MS + 1200, wanted)]


def test_klines_every_two_seconds_and_the_closing_one_final(market, feed):
    start = (NOW_MS // 60_000 + 1) * 60_000 - 3 * SECOND  # three seconds before a minute
    wanted = streams("btcusdt@kline_1m")
    first = feed.tick(start, wanted)
    assert [p["k"]["x"] for _, p in first] == [False]
    assert feed.tick(start + 1 * SECOND, wanted) == [], "the next update within 2 s"
    assert [p["k"]["x"] for _, p in feed.tick(start + 2 * SECOND, wanted)] == [False]
    rolled = [p for _, p in feed.tick(start + 4 * SECOND, wanted)]
    assert [p["k"]["x"] for p in rolled] == [True, False]
    closed, opened = rolled[0]["k"], rolled[1]["k"]
    assert closed["T"] == opened["t"] - 1 and closed["t"] == opened["t"] - 60_000
    rest = RestApi(market, 6000).klines(
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": str(closed["t"]), "limit": "1"}
    )[0]
    assert [closed[k] for k in ("t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q")] == rest[:11]
    assert closed["L"] - closed["f"] + 1 == closed["n"]
    assert isinstance(closed["f"], int) and closed["B"] == "0" and closed["i"] == "1m"
    assert set(rolled[0]) == {"e", "E", "s", "k"} and rolled[0]["e"] == "kline"


def test_tickers_every_second_with_rest_figures(market, feed):
    wanted = streams("btcusdt@ticker", "btcusdt@miniTicker", "!miniTicker@arr")
    events = dict(feed.tick(NOW_MS, wanted))
    rest = RestApi(market, 6000).ticker_24hr({"symbol": "BTCUSDT"})
    ticker, mini = events["btcusdt@ticker"], events["btcusdt@miniTicker"]
    assert ticker["e"] == "24hrTicker" and mini["e"] == "24hrMiniTicker"
    assert set(ticker) == set("eEspPwxcQbBaAohlvqOCFLn")
    assert set(mini) == set("eEscohlvq")
    assert (ticker["c"], ticker["L"], ticker["n"]) == (
        rest["lastPrice"],
        rest["lastId"],
        rest["count"],
    )
    assert mini["c"] == rest["lastPrice"] and isinstance(ticker["O"], int)
    assert [t["s"] for t in events["!miniTicker@arr"]] == list(market.symbols)
    assert feed.tick(NOW_MS + 500, wanted) == [], "once a second"
    later = dict(feed.tick(NOW_MS + 1000, wanted))
    assert set(later) == {"btcusdt@ticker", "btcusdt@miniTicker", "!miniTicker@arr"}
    assert all(t["s"] in market.symbols for t in later["!miniTicker@arr"])


def test_unknown_symbols_are_silent(feed):
    assert feed.tick(NOW_MS + SECOND, streams("nopeusdt@trade", "nopeusdt@depth")) == []
