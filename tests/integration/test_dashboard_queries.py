"""Every dashboard query, expanded as Grafana expands it, on the real Postgres and Cassandra.

The module writes its own data first: one producer cycle (``cap-stock once``) against an
in-process simulator into an isolated copy of the pipeline's database, then waits until
the CDC chain (the ``cdc_chain`` fixture: Debezium source and sink with the committed
settings) has delivered it to Cassandra. Variables
resolve the way Grafana resolves them (each variable query is run; All means every option),
with ``symbol`` set to a symbol this module just wrote.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from capstock.simulator import start_simulator

from dashboard.expand import ALL, TimeRange, Variable, expand_cassandra, expand_postgres
from dashboard.generate import DASHBOARDS, Dashboard, Panel, Query
from stack.services import Cassandra
from stack.settings import StackSettings
from tests.support.cdc_harness import CdcHarness

pytestmark = pytest.mark.integration

UNIVERSE_SIZE = 2
CDC_TIMEOUT = 120.0
NUMBERS = (int, float, Decimal)
OHLC = ("open", "high", "low", "close")


@pytest.fixture(scope="module")
def cassandra(cdc_chain: CdcHarness, native_stack: StackSettings):  # type: ignore[no-untyped-def]
    """A session as Grafana's read-only role, bound to the keyspace as the plugin binds it
    (jsonData.keyspace), so the dashboards' unqualified table names resolve the same way."""
    cluster, session = Cassandra(native_stack).session(
        native_stack.cassandra_reader_user,
        native_stack.cassandra_reader_password.get_secret_value(),
    )
    session.set_keyspace(cdc_chain.name)
    yield session
    cluster.shutdown()


@pytest.fixture(scope="module")
def written(cdc_chain: CdcHarness, cassandra) -> Iterator[tuple[str, datetime]]:  # type: ignore[no-untyped-def]
    """Run one producer cycle into the chain's database; yield (symbol, start time)
    once that symbol's newest latest-price row has reached Cassandra."""
    started = datetime.now(UTC) - timedelta(seconds=1)
    with start_simulator(symbols=8, seed=1, history_minutes=10) as sim:
        proc = cdc_chain.run_producer(sim.url, UNIVERSE_SIZE=str(UNIVERSE_SIZE))
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(cdc_chain.conninfo) as conn:
        row = conn.execute(
            "SELECT symbol, max(ts) FROM latest_prices WHERE ingested_at >= %s "
            "GROUP BY symbol ORDER BY symbol LIMIT 1",
            (started,),
        ).fetchone()
    assert row, "the producer cycle wrote no latest prices"
    symbol, newest = row
    deadline = time.monotonic() + CDC_TIMEOUT
    while time.monotonic() < deadline:
        found = cassandra.execute(
            "SELECT ts FROM latest_prices WHERE symbol = %s AND day = %s AND ts = %s",
            (symbol, newest.astimezone(UTC).date(), newest),
        ).one()
        if found:
            break
        time.sleep(1)
    else:
        pytest.fail(f"{symbol} latest price at {newest} did not reach Cassandra in time")
    yield symbol, started


@pytest.fixture(scope="module")
def postgres(cdc_chain: CdcHarness) -> Iterator[psycopg.Connection]:
    with psycopg.connect(cdc_chain.conninfo, autocommit=True) as conn:
        yield conn


def _time_range() -> TimeRange:
    now = datetime.now(UTC)
    return TimeRange(now - timedelta(hours=1), now + timedelta(seconds=5))


def _resolve(dashboard: Dashboard, postgres, symbol: str, rng: TimeRange) -> dict[str, Variable]:  # type: ignore[no-untyped-def]
    """Run each variable's query in order (later ones may use earlier ones), as Grafana does."""
    resolved: dict[str, Variable] = {}
    for var in dashboard.variables:
        sql = expand_postgres(var["query"], rng, resolved)
        options = [str(r[0]) for r in postgres.execute(sql)]
        assert options, f"{dashboard.uid}: variable {var['name']} resolved to nothing"
        if var["includeAll"] and var["current"].get("value") == [ALL]:
            current: str | list[str] = ALL
        elif var["name"] == "symbol":
            assert symbol in options
            current = symbol
        else:
            current = options[0]
        resolved[var["name"]] = Variable(
            var["name"], options, current, var["multi"], var["includeAll"]
        )
    return resolved


def test_day_variable_lists_the_utc_dates_of_the_range(written, postgres):
    rng = TimeRange(
        datetime(2026, 11, 19, 22, 0, tzinfo=UTC), datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
    )
    dashboard = DASHBOARDS[0]
    var = next(v for v in dashboard.variables if v["name"] == "day")
    days = [r[0] for r in postgres.execute(expand_postgres(var["query"], rng))]
    assert days == ["2026-11-21", "2026-11-20", "2026-11-19"]
    long = TimeRange(datetime(2020, 1, 1, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    capped = [r[0] for r in postgres.execute(expand_postgres(var["query"], long))]
    assert len(capped) == 90 and capped[0] == "2026-11-21"


CASES = [
    pytest.param(d, p, i, id=f"{d.filename.removesuffix('.json')}/{p.title}/{'ABCDE'[i]}")
    for d in DASHBOARDS
    for p in d.panels
    for i in range(len(p.queries))
]


def _run(query: Query, text: str, postgres, cassandra) -> tuple[list[str], list[tuple]]:  # type: ignore[no-untyped-def]
    if query.store == "postgres":
        cursor = postgres.execute(text)
        return [c.name for c in cursor.description], [tuple(r) for r in cursor.fetchall()]
    result = cassandra.execute(text, timeout=30)
    rows = [tuple(r) for r in result]
    return list(result.column_names), rows


def _is_time(value: object) -> bool:
    return isinstance(value, datetime | date)


def _assert_shape(panel: Panel, query: Query, columns: list[str], rows: list[tuple]) -> None:
    assert rows, f"{panel.title}: no rows"
    first = dict(zip(columns, rows[0], strict=True))
    numbers = [c for c, v in first.items() if isinstance(v, NUMBERS) and not isinstance(v, bool)]
    if query.store == "cassandra":
        # the plugin: series id first (text), drops types Grafana cannot hold (decimal)
        assert isinstance(rows[0][0], str), f"{panel.title}: first column is not the series id"
        assert not [c for c, v in first.items() if isinstance(v, Decimal)], panel.title
    if panel.kind == "candlestick":
        for name in OHLC:
            assert isinstance(first.get(name), NUMBERS), f"{panel.title}: {name}"
        assert any(_is_time(v) for v in first.values()), f"{panel.title}: no time column"
    elif panel.kind == "timeseries":
        if query.store == "postgres":
            assert "time" in columns, f"{panel.title}: a time series needs a 'time' column"
            assert _is_time(first["time"]) or isinstance(first["time"], NUMBERS)
            numbers = [c for c in numbers if c != "time"]
        else:
            assert any(_is_time(v) for v in first.values()), f"{panel.title}: no timestamp"
        assert numbers, f"{panel.title}: no numeric value column"
    elif panel.kind == "barchart":
        assert any(isinstance(v, str) for v in first.values()), f"{panel.title}: no x field"
        assert any(isinstance(v, NUMBERS) for row in rows for v in row if not isinstance(v, str)), (
            f"{panel.title}: no values"
        )
    elif named := panel.options.get("reduceOptions", {}).get("fields"):
        # a stat of a named (text) field: Grafana shows the columns the /regex/ matches
        shown = [c for c in columns if re.search(named.strip("/"), c)]
        assert shown, f"{panel.title}: no column matches {named}"
        assert all(first[c] is not None for c in shown), f"{panel.title}: {named} is empty"
    else:  # table, stat, gauge
        assert numbers, f"{panel.title}: nothing numeric to show"


@pytest.mark.parametrize(("dashboard", "panel", "index"), CASES)
def test_panel_query_runs_and_has_the_columns_its_panel_needs(
    dashboard: Dashboard, panel: Panel, index: int, written, postgres, cassandra
):
    symbol, _started = written
    rng = _time_range()
    variables = _resolve(dashboard, postgres, symbol, rng)
    query = panel.queries[index]
    if query.store == "postgres":
        text = expand_postgres(query.text, rng, variables)
    else:
        text = expand_cassandra(query.text, rng, variables)
        assert "ALLOW FILTERING" not in text.upper()
    assert "$" not in text.replace("$$", ""), f"unexpanded macro or variable in: {text}"
    columns, rows = _run(query, text, postgres, cassandra)
    _assert_shape(panel, query, columns, rows)
