"""The simulator's pieces without HTTP: parameter checks, endpoint answers, refusals, broken
bodies and the control routes (the HTTP behaviour is in test_simulator_api.py)."""

import json

import pytest
from capstock.simulator import Fault, Market, Simulator, control
from capstock.simulator.responses import (
    Response,
    fault_refusal,
    json_response,
    spoil,
)
from capstock.simulator.rest import (
    ApiError,
    RestApi,
    int_param,
    limit_param,
    symbol_param,
    symbols_param,
)

NOW_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(symbol_count=3, seed=1, now_ms=NOW_MS, history_minutes=1)


def code_of(call) -> int:
    with pytest.raises(ApiError) as err:
        call()
    return err.value.code


def test_symbol_parameters(market):
    assert symbol_param(market, {"symbol": "BTCUSDT"}) == "BTCUSDT"
    assert code_of(lambda: symbol_param(market, {})) == -1102
    assert code_of(lambda: symbol_param(market, {"symbol": "NOPEUSDT"})) == -1121
    assert symbols_param(market, {}) is None
    assert symbols_param(market, {"symbols": '["ETHUSDT","ETHBTC"]'}) == ["ETHUSDT", "ETHBTC"]
    both = {"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}
    assert code_of(lambda: symbols_param(market, both)) == -1128
    assert code_of(lambda: symbols_param(market, {"symbols": '["BTCUSDT","BTCUSDT"]'})) == -1151
    for bad in ("BTCUSDT", "[]", "[1]", '{"a": 1}'):
        assert code_of(lambda bad=bad: symbols_param(market, {"symbols": bad})) == -1100


def test_integer_and_limit_parameters():
    assert int_param({"fromId": "12"}, "fromId") == 12
    assert int_param({}, "fromId") is None
    for bad in ("-1", "1.5", "1" * 21):
        assert code_of(lambda bad=bad: int_param({"fromId": bad}, "fromId")) == -1100
    assert limit_param({}, 500, 1000) == 500
    assert limit_param({"limit": "5000"}, 500, 1000) == 1000
    assert code_of(lambda: limit_param({"limit": "0"}, 500, 1000)) == -1130


def test_endpoints_answer_in_binance_shapes(market):
    api = RestApi(market, weight_limit=1200)
    with pytest.raises(ApiError) as err:
        api.endpoint("order")
    assert (err.value.status, err.value.code) == (404, -1000)
    info = api.endpoint("exchangeInfo")({"symbol": "ETHBTC"})
    assert info["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 1200,
    }
    assert [s["symbol"] for s in info["symbols"]] == ["ETHBTC"]
    assert api.endpoint("ticker/price")({"symbol": "BTCUSDT"})["symbol"] == "BTCUSDT"
    assert len(api.endpoint("ticker/price")({})) == 5
    mini = api.endpoint("ticker/24hr")({"symbol": "SOLUSDT", "type": "MINI"})
    assert "priceChange" not in mini and mini["lastPrice"]
    assert code_of(lambda: api.endpoint("klines")({"symbol": "BTCUSDT", "interval": "1w"})) == (
        -1120
    )


def test_refusing_faults():
    r = fault_refusal(Fault("429", retry_after=4), 30, weight_limit=6000, now_ms=NOW_MS)
    assert (r.status, r.used_weight, r.headers) == (429, 30, {"Retry-After": "4"})
    body = json.loads(r.body)
    assert body["code"] == -1003 and "6000 request weight" in body["msg"]
    r = fault_refusal(Fault("418", retry_after=9), 30, weight_limit=6000, now_ms=NOW_MS)
    assert r.status == 418 and f"banned until {NOW_MS + 9000}" in json.loads(r.body)["msg"]
    r = fault_refusal(Fault("5xx", status=503), 30, weight_limit=6000, now_ms=NOW_MS)
    assert (r.status, json.loads(r.body)["code"], r.used_weight) == (503, -1008, 30)
    r = fault_refusal(Fault("5xx", status=507), 30, weight_limit=6000, now_ms=NOW_MS)
    assert (r.status, json.loads(r.body)["code"]) == (507, -1000)
    r = fault_refusal(Fault("5xx", status=504), 30, weight_limit=6000, now_ms=NOW_MS)
    assert (r.content_type, r.used_weight) == ("text/html", None), "a proxy's page"
    assert b"504 Gateway Timeout" in r.body


def test_spoiling_faults_cut_the_body_in_half():
    response = json_response(200, {"serverTime": NOW_MS}, used_weight=1)
    malformed = spoil(response, Fault("malformed"))
    assert malformed.body == response.body[: len(response.body) // 2]
    assert malformed.declared_length is None and not malformed.hang_up
    truncated = spoil(response, Fault("truncated"))
    assert truncated.body == malformed.body
    assert truncated.declared_length == len(response.body) + 1 and truncated.hang_up
    assert spoil(response, Fault("slow")) is response


def test_control_fault_bodies():
    one = {"kind": "429"}
    assert control.fault_items(one) == [one]
    assert control.fault_items([one, one]) == [one, one]
    assert control.fault_items({"faults": [one]}) == [one]


def test_control_routes():
    sim = Simulator(symbols=3, history_minutes=1)
    try:
        r = control.handle(sim, "POST", "/_sim/faults", lambda: [{"kind": "slow"}, {"kind": "x"}])
        assert r.status == 400 and "unknown fault kind" in json.loads(r.body)["error"]
        assert [f["kind"] for f in sim.faults.snapshot()] == ["slow"], "added up to the bad one"
        r = control.handle(sim, "POST", "/_sim/trade_gap", lambda: {"skip": 3})
        assert r == Response(400, b'{"error":"\'symbol\'"}')
        assert control.handle(sim, "GET", "/_sim/faults", dict).status == 404
        r = control.handle(sim, "DELETE", "/_sim/faults", dict)
        assert r == json_response(200, {"faults": []}) and sim.faults.snapshot() == []
    finally:
        sim.close()
