"""The provisioned dashboards: a valid Grafana model, generated from one source, and
every query written the way its data source needs (no service needed)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dashboard import generate
from dashboard.expand import (
    ExpansionError,
    TimeRange,
    Variable,
    expand_cassandra,
    expand_postgres,
    go_float,
    go_rfc3339nano,
    referenced_variables,
)

PROVISIONING = generate.PROVISIONING_DIR
FILES = sorted(generate.OUT_DIR.glob("*.json"))
STORE_NAMES = {"postgres": "Postgres", "cassandra": "Cassandra"}
RANGE = TimeRange(
    datetime(2026, 11, 20, 23, 30, tzinfo=UTC), datetime(2026, 11, 21, 0, 30, 0, 250000, tzinfo=UTC)
)


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _datasources() -> dict[str, dict]:
    doc = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    return {ds["uid"]: ds for ds in doc["datasources"]}


def _store(target: dict) -> str:
    return "postgres" if "rawSql" in target else "cassandra"


def _query(target: dict) -> str:
    return target.get("rawSql") or target["target"]


def test_the_three_dashboards_are_generated():
    assert [p.name for p in FILES] == [
        "market-overview.json",
        "pipeline-health.json",
        "symbol-deep-dive.json",
    ]


def test_committed_json_is_current():
    assert generate.stale_files() == [], "run: .venv/bin/python -m dashboard.generate"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_json_is_a_grafana_dashboard_model(path):
    model = _load(path)
    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    assert model["uid"] and model["title"]
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in model["panels"]:
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}
        assert grid["x"] >= 0 and grid["w"] >= 1 and grid["h"] >= 1
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} leaves the 24-column grid"
        assert panel["targets"], f"{panel['title']} has no query"


def test_panels_do_not_overlap():
    for path in FILES:
        cells: dict[tuple[int, int], str] = {}
        for panel in _load(path)["panels"]:
            g = panel["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_every_datasource_uid_is_provisioned():
    provisioned = _datasources()
    for path in FILES:
        model = _load(path)
        refs = [v["datasource"] for v in model["templating"]["list"]]
        for panel in model["panels"]:
            refs.append(panel["datasource"])
            refs += [t["datasource"] for t in panel["targets"]]
        for ref in refs:
            assert ref["uid"] in provisioned, f"{path.name}: unknown uid {ref['uid']}"
            assert provisioned[ref["uid"]]["type"] == ref["type"]


def test_provisioning_takes_hosts_and_secrets_from_the_environment():
    sources = _datasources()
    pg, cs = sources["cap-stock-postgres"], sources["cap-stock-cassandra"]
    assert cs["type"] == "hadesarchitect-cassandra-datasource"
    assert pg["url"] == "${POSTGRES_HOST}:${POSTGRES_PORT}"
    # Grafana reads with the read-only roles, never the producer's or the sink's.
    assert pg["jsonData"]["database"] == "${POSTGRES_DB}"
    assert pg["user"] == "${POSTGRES_READER_USER}"
    assert pg["secureJsonData"] == {"password": "${POSTGRES_READER_PASSWORD}"}
    assert cs["url"] == "${CASSANDRA_HOST}:${CASSANDRA_PORT}"
    assert cs["jsonData"]["keyspace"] == "${CASSANDRA_KEYSPACE}"
    assert cs["jsonData"]["user"] == "${CASSANDRA_READER_USER}"
    assert cs["secureJsonData"] == {"password": "${CASSANDRA_READER_PASSWORD}"}
    text = (PROVISIONING / "datasources" / "datasources.yaml").read_text()
    assert "cap_stock" not in text.split("datasources:", 1)[1], "no literal credentials"


def test_dashboard_provider_reads_the_generated_files():
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "${GRAFANA_DASHBOARDS_DIR}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_panel_says_which_store_it_reads(path):
    for panel in _load(path)["panels"]:
        stores = {_store(t) for t in panel["targets"]}
        assert len(stores) == 1
        assert f"Reads {STORE_NAMES[stores.pop()]}" in panel["description"], panel["title"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_symbol_variable_and_time_picker_drive_the_queries(path):
    model = _load(path)
    names = [v["name"] for v in model["templating"]["list"]]
    assert "symbol" in names
    for panel in model["panels"]:
        for target in panel["targets"]:
            query = _query(target)
            assert "$__time" in query or "${day:singlequote}" in query, panel["title"]
            for name in referenced_variables(query):
                assert name in names, f"{panel['title']}: ${name} is not a variable"


def test_cassandra_queries_name_their_partition_keys():
    from capstock.model.tables import TABLES

    for path in FILES:
        for panel in _load(path)["panels"]:
            for target in panel["targets"]:
                if _store(target) != "cassandra":
                    continue
                cql = target["target"]
                assert "ALLOW FILTERING" not in cql.upper()
                assert target["rawQuery"] is True and target["queryType"] == "query"
                table = re.search(r"\bFROM\s+(\w+)", cql).group(1)
                for key in TABLES[table].partition_key:
                    assert re.search(rf"\b{key}\s*(=|IN\b)", cql), f"{panel['title']}: {key}"
                # the plugin: series id first, then values, then the timestamp
                assert re.match(r"SELECT\s+(symbol|source)\b", cql), panel["title"]


def _panel(title: str) -> dict:
    panels = _load(generate.OUT_DIR / "pipeline-health.json")["panels"]
    return next(p for p in panels if p["title"] == title)


def test_rows_per_minute_count_each_table_by_its_event_time_from_the_registry():
    from capstock.model.tables import TABLES

    rated = [t for t in TABLES.values() if "symbol" in t.partition_key]
    assert [t.name for t in generate.RATE_TABLES] == [t.name for t in rated]
    (pg,) = _panel("Rows per minute in Postgres ($symbol)")["targets"]
    cassandra = _panel("Rows per minute in Cassandra ($symbol)")["targets"]
    assert len(cassandra) == len(rated)
    for table, cs in zip(rated, cassandra, strict=True):
        assert f"$__timeGroupAlias({table.event_time}, '1m'), '{table.name}'" in pg["rawSql"]
        assert f"max({table.event_time})" in cs["target"] or (
            f"floor({table.event_time}, 1m)" in cs["target"]
        )


def test_the_weight_gauge_takes_the_limit_and_its_shares_from_the_exchange_limits():
    from capstock.exchange import limits

    defaults = _panel("Exchange weight used (1m)")["fieldConfig"]["defaults"]
    assert defaults["max"] == limits.REQUEST_WEIGHT_LIMIT_1M
    steps = [step["value"] for step in defaults["thresholds"]["steps"]]
    assert steps == [
        None,
        limits.REQUEST_WEIGHT_LIMIT_1M * limits.WEIGHT_SHARE_WARN,
        limits.REQUEST_WEIGHT_LIMIT_1M * limits.WEIGHT_SHARE_MAX,
    ]


def test_day_variable_follows_the_time_range_with_all_selected():
    day = generate.DAY_VAR
    assert day["refresh"] == 2 and day["includeAll"] and day["multi"] and day["hide"] == 2
    assert day["current"]["value"] == ["$__all"]


# -- the expander --------------------------------------------------------------------------


def test_go_formats():
    assert go_rfc3339nano(RANGE.start) == "2026-11-20T23:30:00Z"
    assert go_rfc3339nano(RANGE.end) == "2026-11-21T00:30:00.25Z"
    assert [go_float(x) for x in (60, 0.5, 86400, 1e6)] == ["60", "0.5", "86400", "1e+06"]


def test_postgres_macros_expand_like_grafana():
    symbol = Variable("symbol", ["BTCUSDT", "O'X"], current="O'X")
    days = Variable("day", ["2026-11-21", "2026-11-20"], multi=True, include_all=True)
    sql = expand_postgres(
        "SELECT $__timeGroupAlias(t, '1m'), $__timeGroup(t, '5m') FROM x "
        "WHERE s = '$symbol' AND $__timeFilter(t) AND d IN ($day) AND t > $__timeFrom() "
        "AND t < $__timeTo() AND e > $__unixEpochFrom()",
        RANGE,
        {"symbol": symbol, "day": days},
    )
    assert sql == (
        'SELECT floor(extract(epoch from t)/60)*60 AS "time", '
        "floor(extract(epoch from t)/300)*300 FROM x WHERE s = 'O''X' AND "
        "t BETWEEN '2026-11-20T23:30:00Z' AND '2026-11-21T00:30:00.25Z' "
        "AND d IN ('2026-11-21','2026-11-20') AND t > '2026-11-20T23:30:00Z' "
        "AND t < '2026-11-21T00:30:00.25Z' AND e > " + str(int(RANGE.start.timestamp()))
    )


def test_unknown_postgres_macro_is_an_error():
    with pytest.raises(ExpansionError, match="unknown macro"):
        expand_postgres("SELECT $__timeFilterx(t)", RANGE)


def test_cassandra_plugin_expansion():
    symbol = Variable("symbol", ["BTCUSDT"], current="BTCUSDT")
    days = Variable("day", ["2026-11-21", "2026-11-20"], multi=True, include_all=True)
    cql = expand_cassandra(
        "SELECT symbol FROM t WHERE symbol = '${symbol}' AND day IN (${day:singlequote}) "
        "AND ts >= $__timeFrom AND ts <= $__timeTo",
        RANGE,
        {"symbol": symbol, "day": days},
    )
    assert cql == (
        "SELECT symbol FROM t WHERE symbol = 'BTCUSDT' AND day IN ('2026-11-21','2026-11-20') "
        f"AND ts >= {RANGE.from_ms} AND ts <= {RANGE.to_ms}"
    )
    assert RANGE.to_ms - RANGE.from_ms == int(timedelta(hours=1).total_seconds() * 1000) + 250


def test_generate_check_command(capsys):
    assert generate.main(["--check"]) == 0
    assert "current" in capsys.readouterr().out
