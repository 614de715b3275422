"""The simulator's market across restarts: trade ids continue, no fake gap (issue 11)."""

import json
import logging
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from binance.client import Client
from capstock.simulator import Simulator, start_simulator
from capstock.simulator.market import Market
from capstock.simulator.state import STATE_FILE

from tests.support.clock import FakeClock
from tests.support.producer_fakes import MemoryWriter, make_producer

T0 = 1_795_000_000.0


def last_ids(url: str, symbols: list[str]) -> dict[str, int]:
    """The newest trade id of each symbol, through the real python-binance client."""
    client = Client(ping=False, requests_params={"timeout": 5})
    client.API_URL = url
    return {s: client.get_recent_trades(symbol=s, limit=1)[-1]["id"] for s in symbols}


def trade_ids(url: str, symbol: str) -> list[int]:
    client = Client(ping=False, requests_params={"timeout": 5})
    client.API_URL = url
    return [t["id"] for t in client.get_recent_trades(symbol=symbol, limit=1000)]


def test_a_restarted_simulator_continues_its_trade_ids(tmp_path):
    clock = FakeClock(T0)
    options = {"symbols": 4, "seed": 1, "trade_rate": 5.0, "clock": clock}
    with start_simulator(**options, state_dir=tmp_path) as sim:
        clock.advance(20)
        symbols = sim.symbols()
        before = last_ids(sim.url, symbols)
    assert (tmp_path / STATE_FILE).is_file(), "saved when it stopped"

    clock.advance(3600)  # an hour down: no trades while it is away
    with start_simulator(**options, state_dir=tmp_path) as sim:
        assert not (tmp_path / STATE_FILE).exists(), "consumed when read"
        assert last_ids(sim.url, symbols) == before, "nothing happened while it was away"
        clock.advance(20)
        for symbol in symbols:
            ids = trade_ids(sim.url, symbol)
            newer = [i for i in ids if i > before[symbol]]
            assert newer, symbol
            assert newer == list(range(before[symbol] + 1, before[symbol] + 1 + len(newer)))


def test_without_a_state_dir_a_restart_jumps_as_before():
    # The behaviour the state file removes: a fresh market's ids derive from its start time.
    clock = FakeClock(T0)
    with start_simulator(symbols=4, seed=1, clock=clock) as sim:
        before = last_ids(sim.url, ["BTCUSDT"])["BTCUSDT"]
    clock.advance(60)
    with start_simulator(symbols=4, seed=1, clock=clock) as sim:
        assert last_ids(sim.url, ["BTCUSDT"])["BTCUSDT"] > before + 500_000


def test_a_producer_polling_across_a_restart_finds_no_gap(tmp_path):
    store = MemoryWriter()
    options = {"symbols": 8, "seed": 1, "history_minutes": 10, "state_dir": tmp_path}
    with start_simulator(**options) as sim:
        first = make_producer(sim.url, writer=store, size=8)
        first.once()
    with start_simulator(**options) as sim:
        time.sleep(1.5)  # new trades after the restart
        second = make_producer(sim.url, writer=store, size=8)
        result = second.trades()
    assert result.gaps == 0 and result.rows > 0
    assert second.trade_gaps_total == 0


def test_the_same_saved_market_gives_the_same_market(tmp_path):
    start_ms = int(T0 * 1000)
    market = Market(symbol_count=5, seed=4, now_ms=start_ms, trade_rate=10.0)
    market.advance(start_ms + 30_000)
    saved = json.loads(json.dumps(market.to_state()))
    a = Market.from_state(saved, now_ms=start_ms + 90_000)
    b = Market.from_state(saved, now_ms=start_ms + 90_000)
    for m in (a, b):
        m.advance(start_ms + 120_000)
    for symbol in market.symbols:
        assert a.ticker_24hr(symbol) == b.ticker_24hr(symbol)
        assert a.trades(symbol, 1000) == b.trades(symbol, 1000)
        assert a.klines(symbol, 60_000, 10) == b.klines(symbol, 60_000, 10)
    # ... and it is the market that was saved, exactly: decimals keep their digits.
    restored = Market.from_state(saved, now_ms=start_ms + 30_000)
    for symbol, s in market.symbols.items():
        r = restored.symbols[symbol]
        assert (r.price, r.next_trade_id, r.update_id) == (s.price, s.next_trade_id, s.update_id)
        assert list(r.trades) == list(s.trades) and r.candles == s.candles
        assert str(r.generated_quote_volume) == str(s.generated_quote_volume)


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"seed": 2}, "was saved with seed=1"), ({"symbols": 5}, "symbols=4 trade_rate")],
)
def test_a_market_saved_with_other_settings_is_not_continued(tmp_path, caplog, change, reason):
    clock = FakeClock(T0)
    with start_simulator(symbols=4, seed=1, clock=clock, state_dir=tmp_path) as sim:
        before = last_ids(sim.url, ["BTCUSDT"])["BTCUSDT"]
    clock.advance(60)
    options = {"symbols": 4, "seed": 1, "clock": clock, **change}
    with start_simulator(**options, state_dir=tmp_path) as sim:
        if "seed" not in change:
            assert last_ids(sim.url, ["BTCUSDT"])["BTCUSDT"] > before + 500_000
    assert reason in caplog.text and "starting a fresh market" in caplog.text


def _bad_decimal(tmp_path) -> str:
    Simulator(symbols=3, seed=1, state_dir=tmp_path).close()
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    saved["market"]["symbols"][0]["price"] = "not a number"
    return json.dumps(saved)


@pytest.mark.parametrize(
    "content", [lambda _: '{"state": 1, "market": {"seed": 1', _bad_decimal], ids=["cut", "value"]
)
def test_an_unreadable_state_file_starts_a_fresh_market(tmp_path, caplog, content):
    (tmp_path / STATE_FILE).write_text(content(tmp_path))
    sim = Simulator(symbols=3, seed=1, state_dir=tmp_path)
    try:
        assert len(sim.symbols()) == 5
    finally:
        sim.close()
    assert "cannot use the saved market" in caplog.text
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["market"]["symbol_count"] == 3, "replaced by the new market at the stop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, state_dir) -> subprocess.Popen:
    argv = [sys.executable, "-m", "capstock.cli", "simulator", "--port", str(port)]
    argv += ["--symbols", "3", "--trade-rate", "20", "--state-dir", str(state_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"simulator did not start: {proc.communicate()[0]}")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    return out


def test_cap_stock_simulator_saves_on_sigterm_and_continues(tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    proc = _serve(port, tmp_path / "simulator")
    try:
        before = last_ids(url, ["BTCUSDT", "ETHUSDT"])
    finally:
        out = _stop(proc)
    assert "market saved to" in out
    proc = _serve(port, tmp_path / "simulator")
    try:
        time.sleep(0.5)  # 20 trades per second: some new ones
        ids = trade_ids(url, "BTCUSDT")
        after = last_ids(url, ["ETHUSDT"])["ETHUSDT"]
    finally:
        out = _stop(proc)
    assert "continuing the market saved at" in out
    newer = [i for i in ids if i > before["BTCUSDT"]]
    assert newer and newer[0] == before["BTCUSDT"] + 1
    assert newer == list(range(newer[0], newer[0] + len(newer)))
    assert before["ETHUSDT"] < after < before["ETHUSDT"] + 1000, "no jump"


def test_reading_and_saving_the_market_are_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="capstock.simulator")
    with start_simulator(symbols=3, seed=1, state_dir=tmp_path):
        pass
    assert "no saved market in" in caplog.text and "market saved to" in caplog.text
