"""Running the streaming ingest against an in-process simulator, and checking what it stored
against the simulator's REST history (used by the simulator tests, the integration test and
the benchmark)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import psycopg
import requests
from capstock.ingest.jobs import Producer
from capstock.ingest.streaming import StreamIngest, build_stream_ingest
from capstock.model.tables import RECENT_TRADES
from capstock.transform.rows import trade_row
from psycopg import sql

WAIT = 30.0
"""Upper bound of every wait for the ingest to catch up (it usually takes a second)."""


def wait_until(check: Callable[[], bool], what: Callable[[], str], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached within {timeout:.0f}s: {what()}")


@contextlib.contextmanager
def streaming(producer: Producer, **options) -> Iterator[StreamIngest]:  # type: ignore[no-untyped-def]
    """The producer in stream mode (writer thread, REST worker, connections) until the
    block ends."""
    ingest = build_stream_ingest(producer, **options)
    ingest.writer.start()
    try:
        ingest.start()
        yield ingest
    finally:
        ingest.stop()
        ingest.writer.stop()


def rest(api_url: str, path: str, **params) -> object:  # type: ignore[no-untyped-def]
    response = requests.get(f"{api_url}/v3/{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def last_trade_id(api_url: str, symbol: str) -> int:
    return rest(api_url, "trades", symbol=symbol, limit=1)[-1]["id"]  # type: ignore[index]


def rest_trades(api_url: str, symbol: str, first: int, last: int) -> list[dict]:
    """Every trade ``first..last`` from REST by id, as ``recent_trades`` rows."""
    out: list[dict] = []
    cursor = first
    while cursor <= last:
        page = rest(api_url, "historicalTrades", symbol=symbol, fromId=cursor, limit=1000)
        if not page:
            break
        out += [t for t in page if t["id"] <= last]  # type: ignore[index]
        cursor = page[-1]["id"] + 1  # type: ignore[index]
    return [trade_row(symbol, t, ingested_at=None) for t in out]  # type: ignore[arg-type]


def without_ingested_at(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "ingested_at"}


def assert_every_trade_once(
    api_url: str,
    symbol: str,
    stored: Callable[[], dict[int, dict]],
    *,
    since: int | None = None,
    timeout: float = WAIT,
) -> tuple[int, int]:
    """Wait until ``stored()`` (trade id → row) holds every id from its lowest (or
    ``since``) to the exchange's newest id now, then compare each row with REST's.
    Returns the (first, last) ids checked."""
    wait_until(lambda: bool(stored()), lambda: f"{symbol}: no trade stored", timeout)
    target = last_trade_id(api_url, symbol)
    state: dict = {}

    def caught_up() -> bool:
        rows = state["rows"] = stored()
        if not rows:
            return False
        first = since if since is not None else min(rows)
        return all(i in rows for i in range(first, target + 1))

    def missing() -> str:
        rows = state.get("rows") or {}
        first = since if since is not None else min(rows, default=target)
        gone = [i for i in range(first, target + 1) if i not in rows]
        return f"{symbol}: {len(gone)} of ids {first}..{target} not stored, e.g. {gone[:10]}"

    wait_until(caught_up, missing, timeout)
    rows = state["rows"]
    first = since if since is not None else min(rows)
    expected = rest_trades(api_url, symbol, first, target)
    assert [r["trade_id"] for r in expected] == list(range(first, target + 1)), (
        "the exchange's own history has a hole"
    )
    for row in expected:
        assert without_ingested_at(rows[row["trade_id"]]) == without_ingested_at(row)
    return first, target


def postgres_trades(conninfo: str, symbol: str) -> Callable[[], dict[int, dict]]:
    """A reader of one symbol's stored trades in Postgres: trade id → row, as stored."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in RECENT_TRADES.column_names)
    query = sql.SQL("SELECT {} FROM recent_trades WHERE symbol = %s").format(columns)

    def read() -> dict[int, dict]:
        with psycopg.connect(conninfo) as conn:
            rows = conn.execute(query, [symbol]).fetchall()
        named = [dict(zip(RECENT_TRADES.column_names, r, strict=True)) for r in rows]
        return {row["trade_id"]: row for row in named}

    return read
