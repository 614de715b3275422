"""The simulator speaks Binance's shapes, weights and errors (checked with plain HTTP and
with the real python-binance client)."""

import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException
from capstock.simulator import Fault, start_simulator

from tests.support.clock import FakeClock


def get(sim, path, **params):
    return requests.get(f"{sim.url}/v3/{path}", params=params, timeout=5)


@pytest.fixture
def client(simulator):
    c = Client(ping=False, requests_params={"timeout": 5})
    c.API_URL = simulator.url
    return c


def is_decimal_string(value):
    return isinstance(value, str) and Decimal(value).is_finite()


def test_ping_time_and_exchange_info_with_the_real_client(client, simulator):
    assert client.ping() == {}
    assert isinstance(client.get_server_time()["serverTime"], int)
    info = client.get_exchange_info()
    assert {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 6000,
    } in info["rateLimits"]
    assert [s["symbol"] for s in info["symbols"]] == simulator.symbols()
    assert "ETHBTC" in simulator.symbols() and "BTCUSDT" in simulator.symbols()


def test_klines_are_12_element_arrays_with_binance_types(client):
    klines = client.get_klines(symbol="BTCUSDT", interval="1m", limit=5)
    assert len(klines) == 5
    for k in klines:
        assert len(k) == 12
        assert isinstance(k[0], int) and isinstance(k[6], int) and isinstance(k[8], int)
        assert k[6] == k[0] + 60_000 - 1
        assert all(is_decimal_string(k[i]) for i in (1, 2, 3, 4, 5, 7, 9, 10))
        assert k[11] == "0"
        assert Decimal(k[3]) <= min(Decimal(k[1]), Decimal(k[4]))
        assert Decimal(k[2]) >= max(Decimal(k[1]), Decimal(k[4]))
    assert [k[0] for k in klines] == sorted(k[0] for k in klines)


def test_klines_aggregate_the_trades(client):
    trades = client.get_recent_trades(symbol="DOGEUSDT", limit=1000)
    minute = trades[-1]["time"] // 60_000 * 60_000 - 60_000  # the last complete minute
    in_minute = [t for t in trades if minute <= t["time"] < minute + 60_000]
    assert in_minute and trades[0]["time"] < minute, "history must cover the whole minute"
    (kline,) = client.get_klines(symbol="DOGEUSDT", interval="1m", startTime=minute, limit=1)
    assert kline[0] == minute
    assert kline[8] == len(in_minute)
    assert Decimal(kline[5]) == sum(Decimal(t["qty"]) for t in in_minute)
    assert Decimal(kline[1]) == Decimal(in_minute[0]["price"])
    assert Decimal(kline[4]) == Decimal(in_minute[-1]["price"])
    assert Decimal(kline[9]) == sum(Decimal(t["qty"]) for t in in_minute if not t["isBuyerMaker"])
    hourly = client.get_klines(symbol="DOGEUSDT", interval="1h", limit=2)
    assert all(k[0] % 3_600_000 == 0 for k in hourly)


def test_trades_have_increasing_contiguous_ids_and_exact_quote_qty(client):
    trades = client.get_recent_trades(symbol="SHIBUSDT", limit=50)
    ids = [t["id"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    for t in trades:
        assert Decimal(t["quoteQty"]) == Decimal(t["price"]) * Decimal(t["qty"])
        assert isinstance(t["isBuyerMaker"], bool) and t["isBestMatch"] is True
    assert Decimal(trades[-1]["price"]) < Decimal("0.001"), "SHIB is a sub-cent coin"
    agg = client.get_aggregate_trades(symbol="SHIBUSDT", limit=3)
    assert [a["a"] for a in agg] == [a["f"] for a in agg] == [a["l"] for a in agg]


def test_depth_sides_surround_the_mid(client):
    book = client.get_order_book(symbol="ETHUSDT", limit=10)
    bids = [Decimal(p) for p, _ in book["bids"]]
    asks = [Decimal(p) for p, _ in book["asks"]]
    assert len(bids) == len(asks) == 10
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]
    assert isinstance(book["lastUpdateId"], int)


def test_ticker_symbols_json_array_and_prices_span_sub_cent_to_five_digits(client):
    tickers = client.get_ticker(symbols='["BTCUSDT","SHIBUSDT"]')
    assert [t["symbol"] for t in tickers] == ["BTCUSDT", "SHIBUSDT"]
    btc, shib = (Decimal(t["lastPrice"]) for t in tickers)
    assert btc >= 10_000 and shib < Decimal("0.01")
    assert all(len(t) == 21 for t in tickers)
    assert client.get_ticker(symbol="BTCUSDT")["symbol"] == "BTCUSDT"
    prices = client.get_symbol_ticker(symbols='["ETHUSDT"]')
    assert prices == [{"symbol": "ETHUSDT", "price": prices[0]["price"]}]
    assert len(client.get_symbol_ticker()) == len(client.get_ticker())


@pytest.mark.parametrize(
    ("path", "params", "weight"),
    [
        ("ping", {}, 1),
        ("depth", {"symbol": "BTCUSDT", "limit": "100"}, 5),
        ("depth", {"symbol": "BTCUSDT", "limit": "101"}, 25),
        ("depth", {"symbol": "BTCUSDT", "limit": "5000"}, 250),
        ("trades", {"symbol": "BTCUSDT"}, 25),
        ("klines", {"symbol": "BTCUSDT", "interval": "1m"}, 2),
        ("ticker/24hr", {}, 80),
        ("ticker/24hr", {"symbols": '["BTCUSDT","ETHUSDT"]'}, 2),
        ("ticker/price", {"symbol": "BTCUSDT"}, 2),
        ("ticker/price", {"symbols": '["BTCUSDT"]'}, 4),
        ("exchangeInfo", {}, 20),
    ],
)
def test_weights_and_headers(simulator, path, params, weight):
    first = get(simulator, "ping")
    before = int(first.headers["x-mbx-used-weight-1m"])
    r = get(simulator, path, **params)
    assert r.status_code == 200
    used = int(r.headers["x-mbx-used-weight-1m"])
    assert used - before == weight
    assert r.headers["x-mbx-used-weight"] == r.headers["x-mbx-used-weight-1m"]


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("klines", {"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ("trades", {}, -1102),
        ("klines", {"symbol": "BTCUSDT", "interval": "2m"}, -1120),
        ("depth", {"symbol": "BTCUSDT", "limit": "abc"}, -1100),
        ("ticker/24hr", {"symbols": "BTCUSDT"}, -1100),
        ("ticker/24hr", {"symbols": '["BTCUSDT","NOPE"]'}, -1121),
        ("ticker/price", {"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, -1128),
    ],
)
def test_errors_are_json_code_and_msg(simulator, path, params, code):
    r = get(simulator, path, **params)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"code", "msg"}
    assert body["code"] == code


def test_invalid_symbol_through_the_client(client):
    with pytest.raises(BinanceAPIException) as err:
        client.get_order_book(symbol="NOPEUSDT")
    assert (err.value.status_code, err.value.code, err.value.message) == (
        400,
        -1121,
        "Invalid symbol.",
    )


def test_weight_limit_gives_429_with_retry_after_then_418():
    clock = FakeClock(1_699_999_990.0)  # 10 s into a minute window
    with start_simulator(
        symbols=3,
        clock=clock,
        weight_limit=100,
        ban_after_429s=2,
        ban_seconds=300,
        history_minutes=1,
    ) as sim:
        statuses = []
        for _ in range(8):
            r = get(sim, "trades", symbol="BTCUSDT")
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert r.headers["Retry-After"] == "50"
                assert r.json()["code"] == -1003
        assert statuses == [200, 200, 200, 200, 429, 429, 418, 418]
        r = get(sim, "ping")
        assert r.status_code == 418 and r.headers["Retry-After"] == "300"
        clock.advance(301)
        assert get(sim, "ping").status_code == 200


def test_same_seed_same_market():
    clock = FakeClock()
    with (
        start_simulator(symbols=4, seed=7, clock=clock, history_minutes=5) as a,
        start_simulator(symbols=4, seed=7, clock=clock, history_minutes=5) as b,
    ):
        clock.advance(30)
        assert get(a, "ticker/24hr").json() == get(b, "ticker/24hr").json()
        assert get(a, "depth", symbol="SOLUSDT").json() == get(b, "depth", symbol="SOLUSDT").json()
    with start_simulator(symbols=4, seed=8, clock=clock, history_minutes=5) as c:
        assert c.market.symbols["BTCUSDT"].price != a.market.symbols["BTCUSDT"].price


def test_control_endpoint_faults_and_trade_gap(simulator):
    base = simulator.url.removesuffix("/api")
    r = requests.post(
        f"{base}/_sim/faults", json={"kind": "5xx", "count": 1, "status": 503}, timeout=5
    )
    assert r.status_code == 200 and r.json()["faults"][0]["kind"] == "5xx"
    bad = get(simulator, "ping")
    assert bad.status_code == 503 and bad.json()["code"] == -1008
    assert get(simulator, "ping").status_code == 200
    r = requests.post(f"{base}/_sim/faults", json={"kind": "nope"}, timeout=5)
    assert r.status_code == 400 and "unknown fault kind" in r.json()["error"]

    last = get(simulator, "trades", symbol="BTCUSDT", limit=1).json()[-1]["id"]
    requests.post(f"{base}/_sim/trade_gap", json={"symbol": "BTCUSDT", "skip": 10}, timeout=5)
    simulator.market.advance(simulator.market.now_ms + 120_000)  # force new trades
    ids = [t["id"] for t in get(simulator, "trades", symbol="BTCUSDT", limit=1000).json()]
    newer = [i for i in ids if i > last]
    assert newer[0] == last + 11
    state = requests.get(f"{base}/_sim/state", timeout=5).json()
    assert state["requests"]["trades"] == 2 and state["statuses"]["503"] == 1


def test_unfiltered_switch_answers_every_symbol_only_when_asked(simulator):
    asked = '["BTCUSDT","ETHUSDT"]'
    assert [p["symbol"] for p in get(simulator, "ticker/price", symbols=asked).json()] == [
        "BTCUSDT",
        "ETHUSDT",
    ]
    simulator.add_fault("unfiltered", count=1)
    r = get(simulator, "ticker/price", symbols=asked)
    assert [p["symbol"] for p in r.json()] == simulator.symbols()
    assert r.headers["x-mbx-used-weight-1m"] == "8", "charged as the request was sent"
    assert len(get(simulator, "ticker/24hr", symbols=asked).json()) == 2, "count=1 used up"


def test_fault_parsing_from_the_command_line_syntax():
    f = Fault.parse("429,count=3,retry_after=2,paths=depth|trades")
    assert (f.kind, f.count, f.retry_after, f.paths) == ("429", 3, 2, ["depth", "trades"])
    with pytest.raises(ValueError):
        Fault.parse("teapot")
    with pytest.raises(ValueError):
        Fault.parse("5xx,status=404")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_simulator_serves_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "capstock.cli",
            "simulator",
            "--port",
            str(port),
            "--symbols",
            "3",
            "--history-minutes",
            "1",
            "--fault",
            "418,count=1,retry_after=9",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v3/ping"
        for _ in range(100):
            try:
                first = requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("simulator did not start")
        assert first.status_code == 418 and first.headers["Retry-After"] == "9"
        assert requests.get(url, timeout=1).json() == {}
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/api" in out
