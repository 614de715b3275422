"""The producer wired to the simulator with an in-memory writer instead of Postgres."""

from decimal import Decimal

from capstock.config import (
    BinanceSettings,
    IngestSettings,
    JobSettings,
    LogSettings,
    PostgresSettings,
    Settings,
    SpoolSettings,
    UniverseSettings,
    load,
)
from capstock.exchange.client import ExchangeClient
from capstock.ingest.jobs import Producer
from capstock.model.tables import TABLES, Table
from capstock.staging.writer import WriteResult, dedupe

from tests.support.clock import RecordingSleeper


class MemoryWriter:
    """Keeps rows by primary key, like the Postgres writer's ON CONFLICT semantics."""

    def __init__(self):
        self.tables: dict[str, dict[tuple, dict]] = {name: {} for name in TABLES}
        self.batches: list[tuple[str, int]] = []

    def write(self, table: Table, rows):
        stored = self.tables[table.name]
        changed = 0
        values = dedupe(table, rows)
        for v in values:
            row = dict(zip(table.column_names, v, strict=True))
            key = tuple(row[k] for k in table.primary_key)
            for column in table.columns:  # the COALESCE of conflict_clause
                if column.keep_when_null and row[column.name] is None and key in stored:
                    row[column.name] = stored[key].get(column.name)
            if key not in stored or (table.on_conflict == "update" and stored[key] != row):
                stored[key] = row
                changed += 1
        self.batches.append((table.name, len(values)))
        return WriteResult(table.name, len(values), changed)

    def delete_older_than(self, table: Table, cutoff, batch):
        stored = self.tables[table.name]
        old = [k for k, row in stored.items() if row["ingested_at"] < cutoff]
        for key in old:
            del stored[key]
        return len(old)

    def last_trade_id(self, symbol):
        ids = [k[1] for k in self.tables["recent_trades"] if k[0] == symbol]
        return max(ids) if ids else None

    def last_closed_kline(self, symbol, interval):
        opens = [
            k[2]
            for k, row in self.tables["kline_data"].items()
            if k[:2] == (symbol, interval) and row["is_closed"]
        ]
        return max(opens, default=None)

    def stored_kline_runs(self, symbol, interval, first, last, step):
        opens = sorted(
            k[2]
            for k, row in self.tables["kline_data"].items()
            if k[:2] == (symbol, interval) and row["is_closed"] and first <= k[2] <= last
        )
        return _runs(opens, step)

    def stored_trade_id_runs(self, symbol, first_id, last_id):
        ids = sorted(
            k[1]
            for k in self.tables["recent_trades"]
            if k[0] == symbol and first_id <= k[1] <= last_id
        )
        return _runs(ids, 1)

    def trade_gaps_total(self, source):
        row = self.tables["heartbeat"].get((source,))
        return (row or {}).get("trade_gaps_total") or 0

    def trade_gaps_filled(self, source):
        row = self.tables["heartbeat"].get((source,))
        return (row or {}).get("trade_gaps_filled") or 0

    def close(self):
        pass


def _runs(values, step):
    """Consecutive runs of sorted ``values`` as (first, last) pairs (the writer's SQL)."""
    runs = []
    for v in values:
        if runs and v - runs[-1][1] == step:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return [tuple(r) for r in runs]


def make_producer(url, clock=None, writer=None, ingest=None, jobs=None, **universe):
    """A producer against the exchange at ``url`` writing to a :class:`MemoryWriter`;
    ``ingest`` and ``jobs`` override IngestSettings and JobSettings fields."""
    settings = Settings(
        postgres=load(PostgresSettings),
        binance=load(BinanceSettings, api_url=url),
        universe=load(UniverseSettings, **{"size": 4, "min_quote_volume": Decimal(0), **universe}),
        jobs=load(
            JobSettings,
            **{"trades_limit": 1000, "depth_levels": 5, "kline_limit": 3, **(jobs or {})},
        ),
        log=load(LogSettings),
        spool=load(SpoolSettings),
        ingest=load(IngestSettings, **(ingest or {})),
    )
    sleeper = RecordingSleeper()
    exchange = ExchangeClient(settings.binance, sleeper=sleeper, rng=lambda: 1.0)
    return Producer(settings, exchange, writer or MemoryWriter(), sleeper=sleeper, clock=clock)
