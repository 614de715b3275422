"""The three cap-stock dashboards, declared once; their JSON in ``dashboards/`` is generated.

Regenerate after editing this file (a unit test fails while the JSON is stale)::

    .venv/bin/python -m dashboard.generate          # rewrite dashboard/dashboards/*.json
    .venv/bin/python -m dashboard.generate --check  # exit 1 if a file is out of date

Which store a panel reads:

* **Postgres** is the staging store and holds the recent hours: latest values, order books,
  trades, 24h statistics. Queries filter with ``$__timeFilter`` and the ``$symbol`` value.
* **Cassandra** is the history. Every CQL query names its whole partition key, so none
  needs ``ALLOW FILTERING``; time-series queries follow the Cassandra plugin's rule
  (series id first, then values, then the timestamp).

Day buckets. ``recent_trades``, ``order_book`` and ``latest_prices`` are partitioned by
``(symbol, day)``. CQL cannot turn a time range into a list of days, and the plugin only
offers ``$__timeFrom``/``$__timeTo`` (epoch milliseconds). So each dashboard has a hidden
variable ``day``: a Postgres query over ``generate_series`` (no table is read) lists the UTC
dates from ``$__timeFrom()`` to ``$__timeTo()``, at most :data:`MAX_DAYS` (the longest
bucketed TTL, so older days could not hold rows anyway). It is multi-valued with All
selected and refreshes on every time-range change, so ``day IN (${day:singlequote})``
always names exactly the buckets the picker covers.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from capstock.exchange.limits import REQUEST_WEIGHT_LIMIT_1M, WEIGHT_SHARE_MAX, WEIGHT_SHARE_WARN
from capstock.model.tables import LATEST_PRICES, TABLES, Table

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"
PROVISIONING_DIR = HERE / "provisioning"

POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "cap-stock-postgres"}
CASSANDRA = {"type": "hadesarchitect-cassandra-datasource", "uid": "cap-stock-cassandra"}
SCHEMA_VERSION = 39
GRID_COLUMNS = 24
MAX_DAYS = (LATEST_PRICES.ttl_seconds or 0) // 86400
WEIGHT_WARN = round(REQUEST_WEIGHT_LIMIT_1M * WEIGHT_SHARE_WARN)
WEIGHT_HIGH = round(REQUEST_WEIGHT_LIMIT_1M * WEIGHT_SHARE_MAX)
KLINE_INTERVAL = "1m"

Store = Literal["postgres", "cassandra"]
Kind = Literal["timeseries", "candlestick", "table", "barchart", "stat", "gauge"]

PG_NOTE = "Reads Postgres (the staging store: recent hours only)."
CS_NOTE = "Reads Cassandra (the history)."
DAY_NOTE = (
    "The time range is mapped to day buckets by the hidden `day` variable (UTC dates "
    "from the picker's start to its end), so the query names every partition key."
)


@dataclass(frozen=True)
class Query:
    store: Store
    text: str
    format: Literal["time_series", "table"] = "table"
    alias: str = ""

    def target(self, ref_id: str) -> dict:
        if self.store == "postgres":
            return {
                "refId": ref_id,
                "datasource": POSTGRES,
                "editorMode": "code",
                "format": self.format,
                "rawQuery": True,
                "rawSql": self.text,
            }
        target = {
            "refId": ref_id,
            "datasource": CASSANDRA,
            "queryType": "query",
            "rawQuery": True,
            "target": self.text,
        }
        if self.alias:
            target["alias"] = self.alias
        return target


@dataclass(frozen=True)
class Panel:
    title: str
    kind: Kind
    description: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    options: dict = field(default_factory=dict)
    field_config: dict = field(default_factory=dict)
    new_row: bool = False

    @property
    def store(self) -> Store:
        stores = {q.store for q in self.queries}
        if len(stores) != 1:
            raise ValueError(f"{self.title}: one store per panel")
        return stores.pop()


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[dict, ...]
    time_from: str = "now-3h"

    @property
    def filename(self) -> str:
        return self.uid.removeprefix("cap-stock-") + ".json"


# -- variables --------------------------------------------------------------------------------


def _pg_variable(
    name: str,
    label: str,
    sql: str,
    *,
    refresh: int = 1,
    hide: int = 0,
    multi: bool = False,
    include_all: bool = False,
    current: dict | None = None,
    description: str = "",
) -> dict:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": POSTGRES,
        "query": sql,
        "definition": sql,
        "refresh": refresh,  # 1 on dashboard load, 2 on every time-range change
        "hide": hide,
        "multi": multi,
        "includeAll": include_all,
        "current": current or {},
        "options": [],
        "regex": "",
        "sort": 0,
        "skipUrlSync": False,
    }


SYMBOL_VAR = _pg_variable(
    "symbol",
    "Symbol",
    "SELECT DISTINCT symbol FROM top_24hr ORDER BY symbol",
    description="Symbols of the ranked universe (Postgres top_24hr).",
)
INTERVAL_VAR = _pg_variable(
    "interval",
    "Kline interval",
    "SELECT DISTINCT interval FROM kline_data ORDER BY interval",
    description="Kline intervals the producer fetches (Postgres kline_data).",
)
DAY_VAR = _pg_variable(
    "day",
    "Day buckets",
    "SELECT to_char(d, 'YYYY-MM-DD') AS day FROM generate_series("
    "(GREATEST($__timeFrom()::timestamptz, "
    f"$__timeTo()::timestamptz - interval '{MAX_DAYS - 1} days') AT TIME ZONE 'UTC')::date, "
    "($__timeTo()::timestamptz AT TIME ZONE 'UTC')::date, interval '1 day') AS d "
    "ORDER BY 1 DESC",
    refresh=2,
    hide=2,
    multi=True,
    include_all=True,
    current={"selected": True, "text": ["All"], "value": ["$__all"]},
    description=(
        "UTC dates covered by the time range (computed, reads no table); Cassandra "
        "queries use it as day IN (${day:singlequote})."
    ),
)

# -- shared SQL -------------------------------------------------------------------------------

LATEST_24HR = (
    "SELECT DISTINCT ON (symbol) * FROM top_24hr WHERE $__timeFilter(close_time) "
    "ORDER BY symbol, close_time DESC"
)


def _pg(sql: str, fmt: Literal["time_series", "table"] = "table") -> Query:
    return Query("postgres", sql, fmt)


def _cs(cql: str, alias: str = "") -> Query:
    return Query("cassandra", cql, alias=alias)


def _table(title: str, description: str, query: Query, **kw) -> Panel:
    return Panel(title, "table", description, (query,), **kw)


def _stat(title: str, description: str, query: Query, unit: str = "none", **kw) -> Panel:
    return Panel(
        title,
        "stat",
        description,
        (query,),
        width=kw.pop("width", 6),
        height=kw.pop("height", 4),
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
        },
        field_config={"defaults": {"unit": unit}, "overrides": []},
        **kw,
    )


# -- market overview --------------------------------------------------------------------------

MARKET_OVERVIEW = Dashboard(
    uid="cap-stock-market-overview",
    title="cap-stock: market overview",
    description="Top movers, latest prices and ranks across the tracked universe.",
    variables=(SYMBOL_VAR, DAY_VAR),
    panels=(
        _table(
            "Top movers by 24h change",
            f"{PG_NOTE} The newest 24h statistics per symbol inside the time range, "
            "ranked by price change percent.",
            _pg(
                'SELECT symbol, price_change_percent AS "24h change %", '
                'last_price AS "last price", quote_volume AS "quote volume", rank '
                f"FROM ({LATEST_24HR}) AS latest ORDER BY price_change_percent DESC LIMIT 10"
            ),
            width=12,
        ),
        _table(
            "Top by quote volume",
            f"{PG_NOTE} The newest 24h statistics per symbol inside the time range, "
            "ranked by 24h quote volume.",
            _pg(
                'SELECT symbol, quote_volume AS "quote volume", '
                'price_change_percent AS "24h change %", last_price AS "last price", rank '
                f"FROM ({LATEST_24HR}) AS latest ORDER BY quote_volume DESC LIMIT 10"
            ),
            width=12,
        ),
        _table(
            "Latest prices",
            f"{PG_NOTE} The newest latest_prices row per symbol inside the time range.",
            _pg(
                'SELECT DISTINCT ON (symbol) symbol, price, ts AS "as of" FROM latest_prices '
                "WHERE $__timeFilter(ts) ORDER BY symbol, ts DESC"
            ),
            width=8,
            height=10,
        ),
        Panel(
            "24h change per symbol",
            "barchart",
            f"{PG_NOTE} Price change percent over the rolling 24h window, newest statistics "
            "per symbol inside the time range.",
            (
                _pg(
                    'SELECT symbol, price_change_percent AS "24h change %" '
                    f"FROM ({LATEST_24HR}) AS latest ORDER BY price_change_percent DESC"
                ),
            ),
            width=16,
            height=10,
            options={
                "xField": "symbol",
                "orientation": "auto",
                "showValue": "auto",
                "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"},
            },
            field_config={"defaults": {"unit": "percent"}, "overrides": []},
        ),
        Panel(
            "Universe rank over time",
            "timeseries",
            f"{PG_NOTE} The producer's rank of each symbol (1 = first) at every 24h-statistics "
            "poll; one series per symbol.",
            (
                _pg(
                    'SELECT close_time AS "time", symbol AS metric, rank FROM top_24hr '
                    "WHERE $__timeFilter(close_time) ORDER BY 1",
                    "time_series",
                ),
            ),
            width=12,
            height=9,
            field_config={
                "defaults": {
                    "custom": {"drawStyle": "line", "lineInterpolation": "stepAfter"},
                    "decimals": 0,
                },
                "overrides": [],
            },
        ),
        Panel(
            "$symbol rank history",
            "timeseries",
            f"{CS_NOTE} top_24hr is partitioned by symbol alone and clustered by close_time, "
            "so the time range is a clustering-key slice.",
            (
                _cs(
                    "SELECT symbol, CAST(rank AS double) AS rank, close_time FROM top_24hr "
                    "WHERE symbol = '$symbol' "
                    "AND close_time >= $__timeFrom AND close_time <= $__timeTo",
                    alias="rank",
                ),
            ),
            width=12,
            height=9,
            field_config={"defaults": {"decimals": 0}, "overrides": []},
        ),
        Panel(
            "$symbol price history",
            "timeseries",
            f"{CS_NOTE} latest_prices per (symbol, day) partition, sliced by ts. {DAY_NOTE}",
            (
                _cs(
                    "SELECT symbol, CAST(price AS double) AS price, ts FROM latest_prices "
                    "WHERE symbol = '$symbol' AND day IN (${day:singlequote}) "
                    "AND ts >= $__timeFrom AND ts <= $__timeTo",
                    alias="price",
                ),
            ),
            width=24,
            height=9,
        ),
    ),
)


def _fixed_color(field_name: str, color: str) -> dict:
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


# -- symbol deep-dive -------------------------------------------------------------------------


def _latest_24hr_of_symbol(column: str, label: str) -> Query:
    return _pg(
        f'SELECT close_time AS "time", {column} AS "{label}" FROM top_24hr '
        "WHERE symbol = '$symbol' AND $__timeFilter(close_time) ORDER BY close_time DESC LIMIT 1"
    )


_STAT_24HR = "Newest 24h statistics of $symbol inside the time range."

SYMBOL_DEEP_DIVE = Dashboard(
    uid="cap-stock-symbol-deep-dive",
    title="cap-stock: symbol deep-dive",
    description="Candles, trades, order-book depth, spread and 24h statistics of one symbol.",
    variables=(SYMBOL_VAR, INTERVAL_VAR, DAY_VAR),
    time_from="now-1h",
    panels=(
        _stat(
            "Last price",
            f"{PG_NOTE} {_STAT_24HR}",
            _latest_24hr_of_symbol("last_price", "last price"),
        ),
        _stat(
            "24h change",
            f"{PG_NOTE} {_STAT_24HR}",
            _latest_24hr_of_symbol("price_change_percent", "24h change %"),
            unit="percent",
        ),
        _stat(
            "24h high", f"{PG_NOTE} {_STAT_24HR}", _latest_24hr_of_symbol("high_price", "24h high")
        ),
        _stat("24h low", f"{PG_NOTE} {_STAT_24HR}", _latest_24hr_of_symbol("low_price", "24h low")),
        _stat(
            "24h quote volume",
            f"{PG_NOTE} {_STAT_24HR}",
            _latest_24hr_of_symbol("quote_volume", "24h quote volume"),
            width=8,
        ),
        _stat(
            "24h trades",
            f"{PG_NOTE} {_STAT_24HR}",
            _latest_24hr_of_symbol("trade_count", "24h trades"),
            width=8,
        ),
        _stat(
            "24h weighted average",
            f"{PG_NOTE} {_STAT_24HR}",
            _latest_24hr_of_symbol("weighted_avg_price", "weighted avg price"),
            width=8,
        ),
        Panel(
            "$symbol candles ($interval) with volume",
            "candlestick",
            f"{CS_NOTE} kline_data is partitioned by (symbol, interval) and clustered by "
            "open_time, so the time range is a clustering-key slice. The open candle updates "
            "until it closes (upserts flow through CDC).",
            (
                _cs(
                    "SELECT symbol, CAST(open AS double) AS open, CAST(high AS double) AS high, "
                    "CAST(low AS double) AS low, CAST(close AS double) AS close, "
                    "CAST(volume AS double) AS volume, open_time FROM kline_data "
                    "WHERE symbol = '$symbol' AND interval = '$interval' "
                    "AND open_time >= $__timeFrom AND open_time <= $__timeTo",
                ),
            ),
            width=24,
            height=11,
            new_row=True,
            options={
                "mode": "candles+volume",
                "candleStyle": "candles",
                "colorStrategy": "open-close",
                "includeAllFields": False,
                "colors": {"up": "green", "down": "red"},
                "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
            },
        ),
        Panel(
            "Trade volume per minute: buys vs sells",
            "timeseries",
            f"{PG_NOTE} Base-asset volume of $symbol's trades per minute, split by the "
            "aggressor: a buyer-maker trade is a sell, otherwise a buy.",
            (
                _pg(
                    "SELECT $__timeGroupAlias(trade_time, '1m'), "
                    "CASE WHEN is_buyer_maker THEN 'sell' ELSE 'buy' END AS metric, "
                    "sum(qty) AS volume FROM recent_trades "
                    "WHERE symbol = '$symbol' AND $__timeFilter(trade_time) "
                    "GROUP BY 1, 2 ORDER BY 1",
                    "time_series",
                ),
            ),
            width=12,
            height=9,
            field_config={
                "defaults": {"custom": {"drawStyle": "bars", "fillOpacity": 60}},
                "overrides": [],
            },
        ),
        Panel(
            "$symbol trade prices (history)",
            "timeseries",
            f"{CS_NOTE} recent_trades is partitioned by (symbol, day) and clustered by "
            "trade_id, not by time: a trade_time range inside a partition would need ALLOW "
            "FILTERING, so the time range selects whole day buckets (newest 2000 trades) and "
            f"the time axis clips to the picker. {DAY_NOTE}",
            (
                _cs(
                    "SELECT symbol, CAST(price AS double) AS price, trade_time FROM recent_trades "
                    "WHERE symbol = '$symbol' AND day IN (${day:singlequote}) LIMIT 2000",
                    alias="trade price",
                ),
            ),
            width=12,
            height=9,
            field_config={
                "defaults": {"custom": {"drawStyle": "points", "pointSize": 3}},
                "overrides": [],
            },
        ),
        Panel(
            "Order-book depth (latest snapshot)",
            "barchart",
            f"{PG_NOTE} The newest order-book snapshot of $symbol inside the time range: "
            "cumulative bid size from the best bid down and cumulative ask size from the best "
            "ask up, by price level around the mid.",
            (
                _pg(
                    "WITH snap AS (SELECT max(snapshot_time) AS t FROM order_book "
                    "WHERE symbol = '$symbol' AND $__timeFilter(snapshot_time)), "
                    "book AS (SELECT side, price, qty FROM order_book, snap "
                    "WHERE symbol = '$symbol' AND snapshot_time = snap.t) "
                    "SELECT price::text AS price, "
                    "CASE WHEN side = 'bid' THEN "
                    "sum(qty) OVER (PARTITION BY side ORDER BY price DESC) "
                    'END AS "cumulative bids", '
                    "CASE WHEN side = 'ask' THEN sum(qty) OVER (PARTITION BY side ORDER BY price) "
                    'END AS "cumulative asks" FROM book ORDER BY book.price'
                ),
            ),
            width=12,
            height=10,
            options={
                "xField": "price",
                "orientation": "vertical",
                "showValue": "never",
                "stacking": "none",
                "xTickLabelSpacing": 100,
                "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
            },
            field_config={
                "defaults": {},
                "overrides": [
                    _fixed_color("cumulative bids", "green"),
                    _fixed_color("cumulative asks", "red"),
                ],
            },
        ),
        Panel(
            "Spread",
            "timeseries",
            f"{PG_NOTE} Best ask minus best bid of every order-book snapshot of $symbol, in "
            "quote currency and in basis points of the mid.",
            (
                _pg(
                    "WITH best AS (SELECT snapshot_time, "
                    "min(price) FILTER (WHERE side = 'ask') AS ask, "
                    "max(price) FILTER (WHERE side = 'bid') AS bid FROM order_book "
                    "WHERE symbol = '$symbol' AND $__timeFilter(snapshot_time) "
                    "GROUP BY snapshot_time) "
                    'SELECT snapshot_time AS "time", ask - bid AS spread, '
                    '(ask - bid) / ((ask + bid) / 2) * 10000 AS "spread (bps)" '
                    "FROM best ORDER BY 1",
                    "time_series",
                ),
            ),
            width=12,
            height=10,
            field_config={
                "defaults": {},
                "overrides": [
                    {
                        "matcher": {"id": "byName", "options": "spread (bps)"},
                        "properties": [{"id": "custom.axisPlacement", "value": "right"}],
                    },
                ],
            },
        ),
    ),
)

# -- pipeline health --------------------------------------------------------------------------

# The tables of market data (partitioned by symbol), counted per minute of their event
# time in both stores, so the two panels are comparable minute by minute.
RATE_TABLES = tuple(t for t in TABLES.values() if "symbol" in t.partition_key)


def _event_time(table: Table) -> str:
    if table.event_time is None:
        raise ValueError(f"{table.name}: no event_time in capstock/model/tables.py")
    return table.event_time


def _key_filter(key: str) -> str:
    """The condition on one partition-key column, from the dashboard variable of that name
    (``day`` from the day buckets of the time range)."""
    return "day IN (${day:singlequote})" if key == "day" else f"{key} = '${key}'"


def _pg_rows_per_minute() -> Query:
    parts = []
    for table in RATE_TABLES:
        column = _event_time(table)
        # Postgres has no day buckets; the time filter takes their place.
        others = [_key_filter(k) for k in table.partition_key if k not in ("symbol", "day")]
        where = " AND ".join(["symbol = '$symbol'", f"$__timeFilter({column})", *others])
        parts.append(
            f"SELECT $__timeGroupAlias({column}, '1m'), '{table.name}' AS metric, "
            f"count(*) AS rows FROM {table.name} WHERE {where} GROUP BY 1"
        )
    return _pg(" UNION ALL ".join(parts) + " ORDER BY 1", "time_series")


def _cs_rows_per_minute(table: Table) -> Query:
    """Counted server-side per minute of the event time when the table is clustered by it;
    otherwise (recent_trades, clustered by trade_id) the average rate of each partition."""
    column = _event_time(table)
    partition = ", ".join(table.partition_key)
    where = " AND ".join(_key_filter(k) for k in table.partition_key)
    if table.clustering_key and table.clustering_key[0][0] == column:
        return _cs(
            f"SELECT symbol, count(*) AS rows, floor({column}, 1m) AS time FROM {table.name} "
            f"WHERE {where} AND {column} >= $__timeFrom AND {column} <= $__timeTo "
            f"GROUP BY {partition}, floor({column}, 1m)",
            alias=table.name,
        )
    return _cs(
        f"SELECT symbol, CAST(count(*) AS double) * 60000 / CAST(toUnixTimestamp(max({column})) "
        f"- toUnixTimestamp(min({column})) + 60000 AS double) AS rows, max({column}) AS time "
        f"FROM {table.name} WHERE {where} GROUP BY {partition}",
        alias=f"{table.name} (day average)",
    )


_CS_RATE_QUERIES = tuple(_cs_rows_per_minute(t) for t in RATE_TABLES)
_EVENT_TIMES = ", ".join(f"{t.name}.{t.event_time}" for t in RATE_TABLES)

_AGE_NOTE = (
    "Age = end of the time range minus the producer's newest beat_time (live when the range "
    "ends at now). The Cassandra age minus the Postgres age is the CDC lag."
)

PIPELINE_HEALTH = Dashboard(
    uid="cap-stock-pipeline-health",
    title="cap-stock: pipeline health",
    description="Throughput per table in both stores, end-to-end freshness, gaps and weight.",
    variables=(SYMBOL_VAR, INTERVAL_VAR, DAY_VAR),
    time_from="now-1h",
    panels=(
        _stat(
            "Producer heartbeat age in Postgres",
            f"{PG_NOTE} heartbeat row source='producer'. {_AGE_NOTE}",
            _pg(
                "SELECT GREATEST(0, extract(epoch from $__timeTo()::timestamptz - beat_time)) "
                "AS \"age\" FROM heartbeat WHERE source = 'producer'"
            ),
            unit="s",
        ),
        _stat(
            "Producer heartbeat age in Cassandra",
            f"{CS_NOTE} heartbeat partition source='producer', as delivered by Debezium and "
            f"the sink. {_AGE_NOTE}",
            _cs(
                "SELECT source, CAST($__timeTo - toUnixTimestamp(beat_time) AS double) / 1000 "
                "AS age, beat_time FROM heartbeat WHERE source = 'producer'",
                alias="age",
            ),
            unit="s",
        ),
        _stat(
            "Trade-id gaps: found, filled, open",
            f"{PG_NOTE} From the producer's heartbeat. found (trade_gaps_total): runs of "
            "trade ids the producer did not receive, counted by every run (restarts and "
            "`cap-stock once` included). Polling finds them between two polls and cannot "
            "fill them; stream mode fills each from REST by id: filled "
            "(trade_gaps_filled, every run's total) and open (trade_gaps_open, not filled "
            "yet now; a start takes over the recent ones a stopped run left open). Filled "
            "and open are empty while polling. Shown when the newest beat is in range.",
            _pg(
                'SELECT beat_time AS "time", trade_gaps_total AS "found", '
                'trade_gaps_filled AS "filled", trade_gaps_open AS "open" FROM heartbeat '
                "WHERE source = 'producer' AND $__timeFilter(beat_time)"
            ),
        ),
        Panel(
            "Exchange weight used (1m)",
            "gauge",
            f"{PG_NOTE} heartbeat.weight_used_1m: the X-MBX-USED-WEIGHT-1M header of the "
            f"producer's newest request, against the exchange limit of {REQUEST_WEIGHT_LIMIT_1M} "
            "per minute; shown when its newest beat is in range.",
            (
                _pg(
                    'SELECT beat_time AS "time", weight_used_1m AS "weight" FROM heartbeat '
                    "WHERE source = 'producer' AND $__timeFilter(beat_time)"
                ),
            ),
            width=6,
            height=4,
            options={
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "showThresholdMarkers": True,
            },
            field_config={
                "defaults": {
                    "min": 0,
                    "max": REQUEST_WEIGHT_LIMIT_1M,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "orange", "value": WEIGHT_WARN},
                            {"color": "red", "value": WEIGHT_HIGH},
                        ],
                    },
                },
                "overrides": [],
            },
        ),
        Panel(
            "Exchange state (producer)",
            "stat",
            f"{PG_NOTE} heartbeat.exchange_error: 'answering' while the producer can use the "
            "exchange, else its own words for why not (banned by HTTP 418 until a time, or "
            "unreachable with the root cause) and since when; shown when its newest beat is "
            "in range. `make status` says the same.",
            (
                _pg(
                    "SELECT COALESCE(exchange_error || ' since ' || to_char(exchange_error_since "
                    "AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z', 'answering') "
                    'AS "exchange" FROM heartbeat '
                    "WHERE source = 'producer' AND $__timeFilter(beat_time)"
                ),
            ),
            width=24,
            height=3,
            options={
                # A text value: the stat panel shows string fields only when named.
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^exchange$/"},
                "colorMode": "background",
                "graphMode": "none",
                "textMode": "value",
            },
            field_config={
                "defaults": {
                    "mappings": [
                        {"type": "value", "options": {"answering": {"color": "green", "index": 0}}},
                        {
                            "type": "regex",
                            "options": {"pattern": ".+", "result": {"color": "red", "index": 1}},
                        },
                    ]
                },
                "overrides": [],
            },
        ),
        Panel(
            "Rows per minute in Postgres ($symbol)",
            "timeseries",
            f"{PG_NOTE} Rows per table per minute of their event time ({_EVENT_TIMES}), "
            "for $symbol, so it lines up with the Cassandra panel beside it. Rows older than "
            "the retention window are gone from Postgres by design.",
            (_pg_rows_per_minute(),),
            width=12,
            height=10,
            new_row=True,
        ),
        Panel(
            "Rows per minute in Cassandra ($symbol)",
            "timeseries",
            f"{CS_NOTE} Rows per table per minute of event time, counted server-side with "
            "GROUP BY on the clustering time (floor(..., 1m)). recent_trades is clustered by "
            "trade_id, not time, so its per-minute rate is the average over each day bucket "
            f"(count x 60000 / span in ms), one point per day. {DAY_NOTE}",
            _CS_RATE_QUERIES,
            width=12,
            height=10,
        ),
    ),
)

DASHBOARDS = (MARKET_OVERVIEW, SYMBOL_DEEP_DIVE, PIPELINE_HEALTH)

# -- JSON model -------------------------------------------------------------------------------


def _layout(panels: tuple[Panel, ...]) -> list[dict]:
    """Left to right, wrapping at 24 columns; a row is as tall as its tallest panel."""
    positions = []
    x = y = row_height = 0
    for panel in panels:
        if panel.width > GRID_COLUMNS:
            raise ValueError(f"{panel.title}: wider than {GRID_COLUMNS} columns")
        if x + panel.width > GRID_COLUMNS or (panel.new_row and x):
            x, y, row_height = 0, y + row_height, 0
        positions.append({"h": panel.height, "w": panel.width, "x": x, "y": y})
        x += panel.width
        row_height = max(row_height, panel.height)
    return positions


def _panel_json(panel: Panel, panel_id: int, grid: dict) -> dict:
    datasource = POSTGRES if panel.store == "postgres" else CASSANDRA
    ref_ids = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource,
        "gridPos": grid,
        "targets": [q.target(ref_ids[i]) for i, q in enumerate(panel.queries)],
        "options": panel.options,
        "fieldConfig": panel.field_config or {"defaults": {}, "overrides": []},
    }


def dashboard_json(dashboard: Dashboard) -> dict:
    grids = _layout(dashboard.panels)
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["cap-stock"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["cap-stock"],
                "asDropdown": False,
                "title": "cap-stock",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": list(dashboard.variables)},
        "panels": [
            _panel_json(panel, index + 1, grid)
            for index, (panel, grid) in enumerate(zip(dashboard.panels, grids, strict=True))
        ],
    }


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard_json(dashboard), indent=2, ensure_ascii=False) + "\n"


def stale_files(out_dir: Path = OUT_DIR) -> list[str]:
    """Dashboard files whose committed JSON differs from what this module generates."""
    stale = []
    for dashboard in DASHBOARDS:
        path = out_dir / dashboard.filename
        if not path.exists() or path.read_text() != render(dashboard):
            stale.append(dashboard.filename)
    expected = {d.filename for d in DASHBOARDS}
    stale += sorted(p.name for p in out_dir.glob("*.json") if p.name not in expected)
    return stale


def write_all(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in DASHBOARDS:
        path = out_dir / dashboard.filename
        path.write_text(render(dashboard))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard.generate",
        description="Write dashboard/dashboards/*.json from dashboard/generate.py.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print(f"stale: {', '.join(stale)}; run: python -m dashboard.generate", file=sys.stderr)
            return 1
        print("dashboards are current")
        return 0
    for path in write_all():
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
