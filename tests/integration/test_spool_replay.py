"""The spool against a real Postgres: spooled batches are written at start, exactly, once.

An outage is simulated without touching the stack: the producer reaches Postgres through a
small TCP relay on its own port, and the relay is simply not running while "Postgres is
down" (the spool is keyed by host, port and database, so the address must not change).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from capstock.cli import EXIT_OK, EXIT_SPOOLED
from capstock.model.tables import HEARTBEAT, KLINE_DATA, RECENT_TRADES, TABLES
from capstock.staging.spool import Spool, SpoolingWriter, target_of
from capstock.staging.writer import PostgresWriter, dedupe
from capstock.transform.rows import heartbeat_row
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.support.simulator_fixtures import simulator, simulator_url  # noqa: F401

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 5, 35, 0, 123000, tzinfo=UTC)


def _trades() -> list[dict]:
    prices = ["0.00001234", "97123.45000000", "0.10000000"]
    return [
        {
            "symbol": "SHIBUSDT",
            "trade_id": 1000 + i,
            "price": Decimal(price),
            "qty": Decimal("123456789.00"),
            "quote_qty": Decimal("1523.45677626"),
            "trade_time": T0 + timedelta(milliseconds=i),
            "is_buyer_maker": i % 2 == 0,
            "is_best_match": True,
            "day": T0.date(),
            "ingested_at": T0,
        }
        for i, price in enumerate(prices)
    ]


def _kline(volume: str, closed: bool) -> dict:
    return {
        "symbol": "BTCUSDT",
        "interval": "1m",
        "open_time": T0.replace(second=0, microsecond=0),
        "close_time": T0.replace(second=59, microsecond=999000),
        "open": Decimal("97000.01"),
        "high": Decimal("97100.00"),
        "low": Decimal("96999.99"),
        "close": Decimal("97050.00"),
        "volume": Decimal(volume),
        "quote_volume": Decimal("1.00000000"),
        "trade_count": 7,
        "taker_buy_base_volume": Decimal("0"),
        "taker_buy_quote_volume": Decimal("0"),
        "is_closed": closed,
        "rank": None,
        "ingested_at": T0,
    }


def _beat() -> dict:
    """A beat that knows neither the weight nor the gap total."""
    return heartbeat_row(
        "producer", beat_time=T0, weight_used_1m=None, trade_gaps_total=None, ingested_at=T0
    )


def _counts(conninfo: str) -> dict[str, int]:
    with psycopg.connect(conninfo) as conn:
        return {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in TABLES
        }


def test_replay_on_start_writes_spooled_rows_exactly_in_order_and_only_once(
    postgres_conninfo, tmp_path
):
    directory = tmp_path / "spool"
    spool = Spool(directory)
    spool.open()
    target = target_of(postgres_conninfo)
    batches = [
        (RECENT_TRADES, _trades()),
        (KLINE_DATA, [_kline("1.50000000", closed=False)]),  # the open candle ...
        (KLINE_DATA, [_kline("2.25000000", closed=True)]),  # ... then its final image
        (HEARTBEAT, [_beat()]),
    ]
    for table, rows in batches:
        spool.put(table, dedupe(table, rows), target=target)
    spool.close()

    writer = SpoolingWriter(PostgresWriter(postgres_conninfo), Spool(directory), spool_after=5)
    writer.open()
    writer.close()
    # The two images of one candle are replayed in one write: one row, the final image.
    assert Spool(directory).files() == [] and writer.replayed_rows == 5
    with psycopg.connect(postgres_conninfo) as conn:
        trades = conn.execute(
            "SELECT trade_id, price::text, qty::text, quote_qty::text, trade_time, "
            "is_buyer_maker FROM recent_trades ORDER BY trade_id"
        ).fetchall()
        kline = conn.execute("SELECT volume::text, is_closed FROM kline_data").fetchall()
    assert trades == [
        (
            t["trade_id"],
            format(t["price"], "f"),
            "123456789.00",
            "1523.45677626",
            t["trade_time"],
            t["is_buyer_maker"],
        )
        for t in _trades()
    ]
    assert kline == [("2.25000000", True)]  # replayed oldest first
    counts = _counts(postgres_conninfo)

    # A crash between the commit and the delete: the same file is there again next start.
    spool = Spool(directory)
    spool.put(RECENT_TRADES, dedupe(RECENT_TRADES, _trades()), target=target)
    again = SpoolingWriter(PostgresWriter(postgres_conninfo), spool, spool_after=5)
    again.open()
    again.close()
    assert _counts(postgres_conninfo) == counts
    assert spool.files() == []


class Relay:
    """Forwards 127.0.0.1:<port> to Postgres while started; a refused port when stopped."""

    def __init__(self, port: int, host: str, target_port: int) -> None:
        self.port, self.target = port, (host, target_port)
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(conninfo: str, url: str, spool_dir: Path) -> dict[str, str]:
    info = conninfo_to_dict(conninfo)
    return {
        **os.environ,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(info["port"]),
        "POSTGRES_DB": str(info["dbname"]),
        "POSTGRES_USER": str(info["user"]),
        "POSTGRES_PASSWORD": str(info.get("password", "")),
        "BINANCE_API_URL": url,
        "UNIVERSE_SIZE": "3",
        "UNIVERSE_MIN_QUOTE_VOLUME": "0",
        "JOB_HEARTBEAT_SECONDS": "1",
        "PRODUCER_SPOOL_DIR": str(spool_dir),
        "PRODUCER_SPOOL_AFTER_SECONDS": "1",
    }


def test_sigterm_during_an_outage_then_a_restart_loses_nothing(
    postgres_conninfo,
    simulator_url,  # noqa: F811
    tmp_path,
):
    info = conninfo_to_dict(postgres_conninfo)
    relay = Relay(_free_port(), str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    via_relay = make_conninfo(postgres_conninfo, host="127.0.0.1", port=relay.port)
    spool_dir = tmp_path / "spool"
    env = _env(via_relay, simulator_url, spool_dir)

    # Postgres "down" (nothing listens on the relay's port): run, then SIGTERM.
    run = subprocess.Popen(
        [sys.executable, "-m", "capstock.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(Spool(spool_dir).files() if spool_dir.exists() else []) < len(TABLES):
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == EXIT_SPOOLED, out
    spool = Spool(spool_dir)
    spooled_trades = {
        (r["symbol"], r["trade_id"]): format(r["price"], "f")
        for batch in (spool.read(p) for p in spool.files())
        if batch.table is RECENT_TRADES
        for r in batch.rows
    }
    assert spooled_trades

    # Postgres back at the same address: the next start writes the spool first.
    relay.start()
    try:
        once = subprocess.run(
            [sys.executable, "-m", "capstock.cli", "once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        relay.stop()
    assert once.returncode == EXIT_OK, once.stderr
    assert "replayed " in once.stderr and Spool(spool_dir).files() == []
    with psycopg.connect(postgres_conninfo) as conn:
        stored = {
            (symbol, trade_id): price
            for symbol, trade_id, price in conn.execute(
                "SELECT symbol, trade_id, price::text FROM recent_trades"
            )
        }
    assert spooled_trades.items() <= stored.items()
