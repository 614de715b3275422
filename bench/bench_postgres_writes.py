"""Postgres write throughput of the producer's writer next to naive baselines.

Writes synthetic ``recent_trades`` and ``order_book`` rows (exact decimals, ms timestamps)
into a scratch schema and prints rows/s for:

* ``copy``: the producer's default (binary COPY into a temp table, then one upsert);
* ``executemany``: ``INSERT … ON CONFLICT`` through psycopg's pipelined executemany;
* ``insert-per-row``: one INSERT and one commit per row (the naive baseline);
* ``pandas-to_sql``: ``DataFrame.to_sql`` into a table pandas creates (replaced each run),
  as the seed did;
* ``plain-copy``: binary COPY straight into the empty table with no conflict handling, the
  most one client gets from Postgres here: no writer can beat it, so it bounds the ratio.

Usage (the conninfo comes from ``BENCH_POSTGRES_CONNINFO`` or the usual POSTGRES_* variables)::

    python bench/bench_postgres_writes.py [--rows 50000] [--batch 5000] [--naive-rows 20000]
        [--repeats 3]

Each figure is the median of ``--repeats`` runs, each on an emptied table; the naive
baselines write enough rows (20,000) to take a second or more, so they time reliably.
The goals (``run`` returns them as figures for ``make bench``): the producer's best
strategy at 100,000 rows/s or more, and 10x the best naive baseline. Read the ratio with
care: pandas' ``to_sql`` appends without any conflict handling, in multi-row INSERTs
(SQLAlchemy 2's "insertmanyvalues"), so it is no straw man.

Caveats when reading the numbers: a cluster with ``fsync=off`` flatters the
insert-per-row baseline (its cost is one commit per row); SQLAlchemy 2 batches
``to_sql`` inserts ("insertmanyvalues"), so pandas is much faster than it was with the
original project's stack.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
from capstock.config import postgres_conninfo
from capstock.model.tables import ORDER_BOOK, RECENT_TRADES, Table
from capstock.staging.writer import PostgresWriter
from psycopg import sql

from bench.figures import Figure, at_least, number

SCHEMA = "bench_capstock"
GOAL_RATE = 100_000  # rows/s, on trades and on order-book rows


def trade_rows(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 21, tzinfo=UTC)
    rows = []
    for i in range(n):
        price = Decimal(rng.randrange(1, 10**12)).scaleb(-8)
        qty = Decimal(rng.randrange(1, 10**12)).scaleb(-5)
        t = t0 + timedelta(milliseconds=i * 7)
        rows.append(
            {
                "symbol": f"SYM{i % 20:02d}USDT",
                "trade_id": i,
                "price": price,
                "qty": qty,
                "quote_qty": price * qty,
                "trade_time": t,
                "is_buyer_maker": bool(i & 1),
                "is_best_match": True,
                "day": t.date(),
                "ingested_at": t,
            }
        )
    return rows


def book_rows(n: int, seed: int = 2) -> list[dict]:
    rng = random.Random(seed)
    t0 = datetime(2026, 11, 21, tzinfo=UTC)
    rows = []
    levels = 20
    per_snapshot = 2 * levels
    for i in range(n):
        snap, pos = divmod(i, per_snapshot)
        side = "bid" if pos < levels else "ask"
        level = pos % levels
        mid = Decimal(10_000 + snap % 1000)
        tick = Decimal("0.01")
        price = mid - tick * (level + 1) if side == "bid" else mid + tick * (level + 1)
        t = t0 + timedelta(milliseconds=snap * 250)
        rows.append(
            {
                "symbol": f"SYM{snap % 20:02d}USDT",
                "snapshot_time": t,
                "side": side,
                "price": price,
                "qty": Decimal(rng.randrange(1, 10**9)).scaleb(-6),
                "level": level,
                "last_update_id": snap,
                "day": t.date(),
                "ingested_at": t,
            }
        )
    return rows


def scratch_conninfo(base: str) -> str:
    return psycopg.conninfo.make_conninfo(base, options=f"-c search_path={SCHEMA}")


def reset_schema(base: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    writer = PostgresWriter(scratch_conninfo(base))
    writer.init_schema([RECENT_TRADES, ORDER_BOOK])
    writer.close()


def truncate(base: str, table: Table) -> None:
    with psycopg.connect(scratch_conninfo(base), autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table.name)))


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    rows = fn()
    return rows, time.perf_counter() - start


def median_run(
    fn: Callable[[], int], before: Callable[[], None], repeats: int
) -> tuple[int, float]:
    """(rows, seconds) of the median of ``repeats`` runs, ``before`` each (empty the table)."""
    runs = []
    for _ in range(repeats):
        before()
        runs.append(timed(fn))
    runs.sort(key=lambda run: run[1])
    return runs[len(runs) // 2]


def run_writer(base: str, table: Table, rows: list[dict], batch: int, strategy: str) -> int:
    writer = PostgresWriter(scratch_conninfo(base), strategy=strategy)  # type: ignore[arg-type]
    try:
        for i in range(0, len(rows), batch):
            writer.write(table, rows[i : i + batch])
    finally:
        writer.close()
    return len(rows)


def run_insert_per_row(base: str, table: Table, rows: list[dict]) -> int:
    cols = table.column_names
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)),
    )
    with psycopg.connect(scratch_conninfo(base), autocommit=True) as conn:
        for row in rows:
            conn.execute(query, tuple(row[c] for c in cols))
    return len(rows)


def run_plain_copy(base: str, table: Table, rows: list[dict], batch: int) -> int:
    """Binary COPY straight into the empty table, no staging and no conflict handling:
    what one client gets from Postgres on this machine at best (the floor of any writer)."""
    cols = table.column_names
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, cols))
    )
    with psycopg.connect(scratch_conninfo(base)) as conn:
        for i in range(0, len(rows), batch):
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.set_types([c.pg_type for c in table.columns])
                for row in rows[i : i + batch]:
                    copy.write_row(tuple(row[c] for c in cols))
    return len(rows)


def run_pandas(base: str, table: Table, rows: list[dict]) -> int:
    import pandas as pd
    from sqlalchemy import create_engine

    info = psycopg.conninfo.conninfo_to_dict(base)
    url = "postgresql+psycopg://"
    engine = create_engine(
        url,
        connect_args={k: v for k, v in info.items() if v is not None},
        poolclass=None,
    )
    frame = pd.DataFrame(rows)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SET search_path TO {SCHEMA}")
        frame.to_sql(f"pandas_{table.name}", conn, if_exists="replace", index=False)
    engine.dispose()
    return len(rows)


def run(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per table (fast paths)")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per producer batch")
    parser.add_argument("--naive-rows", type=int, default=20_000, help="rows for the baselines")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; median shown")
    args = parser.parse_args(argv)
    base = os.environ.get("BENCH_POSTGRES_CONNINFO") or postgres_conninfo()

    reset_schema(base)
    figures: list[Figure] = []
    print(f"{'table':<14} {'method':<16} {'rows':>8} {'seconds':>9} {'rows/s':>10}")
    try:
        for table, make in ((RECENT_TRADES, trade_rows), (ORDER_BOOK, book_rows)):
            rows = make(args.rows)
            results: dict[str, float] = {}
            empty = lambda t=table: truncate(base, t)  # noqa: E731
            for strategy in ("copy", "executemany"):
                n, secs = median_run(
                    lambda t=table, r=rows, s=strategy: run_writer(base, t, r, args.batch, s),
                    empty,
                    args.repeats,
                )
                results[strategy] = n / secs
                print(f"{table.name:<14} {strategy:<16} {n:>8} {secs:>9.3f} {n / secs:>10.0f}")
            n, secs = median_run(
                lambda t=table, r=rows: run_plain_copy(base, t, r, args.batch), empty, args.repeats
            )
            floor = n / secs
            print(f"{table.name:<14} {'plain-copy':<16} {n:>8} {secs:>9.3f} {floor:>10.0f}")
            naive = rows[: args.naive_rows]
            baselines = {
                "insert-per-row": lambda t=table, nv=naive: run_insert_per_row(base, t, nv),
                "pandas-to_sql": lambda t=table, nv=naive: run_pandas(base, t, nv),
            }
            for name, fn in baselines.items():
                n, secs = median_run(fn, empty, args.repeats)
                results[name] = n / secs
                print(f"{table.name:<14} {name:<16} {n:>8} {secs:>9.3f} {n / secs:>10.0f}")
            best = max(results["copy"], results["executemany"])
            naive = max(("insert-per-row", "pandas-to_sql"), key=results.__getitem__)
            ratio = best / results[naive]
            print(
                f"{table.name:<14} ratio producer/best-naive = {ratio:.1f}x "
                f"(copy {results['copy']:.0f}/s, executemany {results['executemany']:.0f}/s)"
            )
            baseline = f"{naive} {number(results[naive])} rows/s"
            ceiling = (
                f"{baseline}; plain COPY, no conflict handling: {number(floor)} rows/s, "
                f"{floor / results[naive]:.1f}x"
            )
            figures += [
                Figure(f"writer, {table.name}", best, "rows/s", baseline, at_least(GOAL_RATE)),
                Figure(f"writer / best naive, {table.name}", ratio, "x", ceiling, at_least(10)),
            ]
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    return figures


def main(argv: list[str] | None = None) -> int:
    for figure in run(argv):
        print(f"{figure.name}: {figure.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
