"""`make watch`: the pipeline live in the terminal, for a user without Grafana.

Every ``interval`` seconds the screen is redrawn in place with `make status`'s report,
then per table the rows per second written to Postgres (rows whose ``ingested_at`` falls
in the last 30 s) and to Cassandra (records the sink's consumer group committed since
the previous refresh), and the latest price of each symbol. Ctrl-C leaves (exit 0)::

    cap-stock watch  23:41:07  refresh #12 every 2s  (Ctrl-C to leave)
    ...
    table           postgres rows/s  cassandra rows/s
    recent_trades              31.5              30.0
    ...
    BTCUSDT  97012.12000000   ETHUSDT  3120.55000000   ...
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

from stack import status
from stack.services import Postgres
from stack.settings import StackSettings

CLEAR = "\033[H\033[2J"  # cursor home, clear screen
# Jobs write every 10-60 s in bursts: average the Postgres rate over at least this long.
RATE_WINDOW_S = 30.0


def postgres_rates(settings: StackSettings, window_s: float) -> dict[str, float]:
    from capstock.model.tables import TABLES
    from psycopg import sql

    rates = {}
    with Postgres(settings).superuser_connection(settings.postgres_db) as db:
        for name in TABLES:
            count = db.execute(
                sql.SQL(
                    "SELECT count(*) FROM {} WHERE ingested_at > now() - make_interval(secs => %s)"
                ).format(sql.Identifier(name)),
                [window_s],
            ).fetchone()[0]
            rates[name] = count / window_s
    return rates


def sink_committed(settings: StackSettings) -> dict[str, int]:
    """Records the sink's group committed, per table (from its topic's name)."""
    from stack.replication import sink_group_and_topics
    from stack.sink_progress import partitions_of, probe_consumer

    group, topics = sink_group_and_topics()
    probe = probe_consumer(settings.kafka_bootstrap, group)
    try:
        partitions = partitions_of(probe, topics)
        committed: dict[str, int] = {}
        for tp in probe.committed(partitions, timeout=5) if partitions else []:
            table = tp.topic.rsplit(".", 1)[-1]
            committed[table] = committed.get(table, 0) + max(tp.offset, 0)
        return committed
    finally:
        probe.close()


def latest_prices(settings: StackSettings) -> list[tuple[str, Any]]:
    with Postgres(settings).superuser_connection(settings.postgres_db) as db:
        return db.execute(
            # symbols priced in the last 10 minutes: today's universe, not all history
            "SELECT DISTINCT ON (symbol) symbol, price FROM latest_prices "
            "WHERE ts > now() - interval '10 minutes' ORDER BY symbol, ts DESC"
        ).fetchall()


class Screen:
    """One refresh after another; keeps the previous sink offsets for the rate."""

    def __init__(self, settings: StackSettings, interval: float) -> None:
        self.settings = settings
        self.interval = interval
        self.refreshes = 0
        self.previous: tuple[float, dict[str, int]] | None = None

    def cassandra_rates(self) -> dict[str, float | None]:
        try:
            now, committed = time.monotonic(), sink_committed(self.settings)
        except Exception:
            return {}
        before, self.previous = self.previous, (now, committed)
        if before is None:
            return {}
        elapsed = max(now - before[0], 1e-3)
        return {t: (n - before[1].get(t, n)) / elapsed for t, n in committed.items()}

    def frame(self) -> str:
        self.refreshes += 1
        report = status.collect(self.settings)
        clock = datetime.now(UTC).strftime("%H:%M:%S")
        lines = [
            f"cap-stock watch  {clock}Z  refresh #{self.refreshes} every "
            f"{self.interval:.0f}s  (Ctrl-C to leave)",
            "",
            status.render(report),
            "",
        ]
        try:
            pg = postgres_rates(self.settings, max(self.interval, RATE_WINDOW_S))
            prices = latest_prices(self.settings)
        except Exception as err:
            lines.append(f"postgres: cannot read rates ({str(err).strip()[:120]})")
            return "\n".join(lines)
        cassandra = self.cassandra_rates()
        lines.append(f"{'table':<15} {'postgres rows/s':>16} {'cassandra rows/s':>17}")
        for table, rate in pg.items():
            written = cassandra.get(table)
            shown = "-" if written is None else f"{written:.1f}"
            lines.append(f"{table:<15} {rate:>16.1f} {shown:>17}")
        lines.append("")
        cells = [f"{symbol:<10} {price:>18}" for symbol, price in prices]
        lines.extend("   ".join(cells[i : i + 3]) for i in range(0, len(cells), 3))
        return "\n".join(lines)


def main(settings: StackSettings, interval: float = 2.0) -> int:
    screen = Screen(settings, interval)
    try:
        while True:
            text = screen.frame()
            sys.stdout.write(CLEAR + text + "\n")
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
