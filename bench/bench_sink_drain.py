"""Sink drain rate: both Cassandra sinks on the same backlog of flat records, side by side.

Produces N flat change records (as Debezium writes them after ExtractNewRecordState:
mostly trades, some order-book levels and prices) into topics of their own, then lets
each sink drain them from offset 0 into an empty keyspace, alternately, `--runs` times:

* datastax: the default sink, our Connect adapter around the DataStax sink engine,
  registered with the committed register_cassandra.json (names changed only);
* python: cap-stock-sink, the Python alternative, reading the same file.

For each run it prints rows/s (records / seconds from start until the consumer group
has committed every offset) and the CPU seconds the sink's process (Connect, or the
Python process) and Cassandra spent; then the medians, and the ratio datastax/python
(the baseline measured in the same run).

    PYTHONPATH=. python bench/bench_sink_drain.py [--records 380000] [--runs 3]

Needs the native stack (`make stack-up`). Leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from capstock.cdc.connectors import dead_letter_topic, sink_document, topic_for
from capstock.model.tables import LATEST_PRICES, ORDER_BOOK, RECENT_TRADES, Table
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.figures import Figure, at_least, number
from stack.connect_api import delete_connector, put_connector, wait_running
from stack.pipeline import BIN, pipeline_env
from stack.process import cpu_seconds, start_detached, stop_pid
from stack.services import Cassandra, Connect
from stack.settings import StackSettings
from stack.sink_progress import group_offsets
from tests.support.cdc_harness import create_pipeline_keyspace

SHARES = ((RECENT_TRADES, 0.90), (ORDER_BOOK, 0.08), (LATEST_PRICES, 0.02))
DRAIN_TIMEOUT_S = 900


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flat_rows(table: Table, count: int, rng: random.Random) -> Iterator[dict]:
    """Rows as Debezium's isostring/decimal-string modes write them."""
    start = datetime(2026, 11, 21, tzinfo=UTC)
    for i in range(count):
        at = start + timedelta(milliseconds=i * 7)
        symbol = f"SYM{i % 20:02d}USDT"
        price = f"{rng.uniform(0.00001, 70000):.8f}"
        common = {"symbol": symbol, "day": f"{at.date()}Z", "ingested_at": iso(at)}
        if table is RECENT_TRADES:
            yield {
                **common,
                "trade_id": i,
                "price": price,
                "qty": f"{rng.uniform(0.001, 1e6):.8f}",
                "quote_qty": f"{rng.uniform(0.01, 1e7):.8f}",
                "trade_time": iso(at),
                "is_buyer_maker": i % 2 == 0,
                "is_best_match": True,
            }
        elif table is ORDER_BOOK:
            yield {
                **common,
                "snapshot_time": iso(at),
                "side": "bid" if i % 2 else "ask",
                "price": price,
                "qty": f"{rng.uniform(0.001, 1e6):.8f}",
                "level": i % 20,
                "last_update_id": i,
            }
        else:
            yield {**common, "ts": iso(at), "price": price}


@dataclass
class Backlog:
    settings: StackSettings
    prefix: str
    records: int

    def topics(self) -> list[str]:
        return [topic_for(table, self.prefix) for table, _ in SHARES]

    def produce(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        for future in admin.create_topics([NewTopic(t, 1, 1) for t in self.topics()]).values():
            future.result()
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap, "linger.ms": 20})
        rng = random.Random(7)
        for table, share in SHARES:
            topic = topic_for(table, self.prefix)
            for row in flat_rows(table, int(self.records * share), rng):
                key = {k: row[k] for k in table.primary_key}
                while True:
                    try:
                        producer.produce(topic, json.dumps(row), json.dumps(key))
                        break
                    except BufferError:
                        producer.poll(0.1)
        producer.flush(60)

    def delete(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        topics = [*self.topics(), dead_letter_topic(self.prefix)]
        for future in admin.delete_topics(topics, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result()


@dataclass
class Result:
    sink: str
    seconds: float
    sink_cpu: float
    cassandra_cpu: float
    records: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def drain(
    settings: StackSettings,
    backlog: Backlog,
    group: str,
    start: Callable[[], int],
    stop: Callable[[], None],
    running_pid: int | None = None,
) -> tuple[float, float, float]:
    """Start a sink, wait until its group committed everything: (seconds, sink cpu, C* cpu).

    `start` returns the pid whose CPU counts as the sink's; `running_pid` is that process
    when it already runs (Connect), so its CPU is counted from before the start.
    """
    cassandra_pid = Cassandra(settings).pid()
    cassandra_before = cpu_seconds(cassandra_pid)
    sink_before = cpu_seconds(running_pid)
    began = time.monotonic()
    sink_pid = start()
    try:
        deadline = began + DRAIN_TIMEOUT_S
        while True:
            offsets = group_offsets(settings.kafka_bootstrap, group, backlog.topics())
            if offsets.end and offsets.lag == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{group}: not drained in {DRAIN_TIMEOUT_S}s: {offsets}")
            time.sleep(0.25)
        seconds = time.monotonic() - began
        sink_cpu = cpu_seconds(sink_pid) - sink_before
        return seconds, sink_cpu, cpu_seconds(cassandra_pid) - cassandra_before
    finally:
        stop()


def bench_document(backlog: Backlog, keyspace: str) -> dict:
    """The committed sink settings, on the backlog's topics only."""
    document = sink_document(keyspace=keyspace, prefix=backlog.prefix)
    topics = backlog.topics()
    document["name"] = f"bench-drain-{keyspace}"
    document["config"] = {
        k: v
        for k, v in document["config"].items()
        if not k.startswith("topic.") or any(k.startswith(f"topic.{t}.") for t in topics)
    }
    document["config"]["topics"] = ",".join(topics)
    return document


def run_datastax(
    settings: StackSettings, backlog: Backlog, keyspace: str, overrides: dict[str, str]
) -> Result:
    document = bench_document(backlog, keyspace)
    document["config"].update(overrides)
    name = document["name"]
    connect_pid = Connect(settings).pid()

    def start() -> int:
        put_connector(settings.connect_url, name, document["config"])
        wait_running(settings.connect_url, name)
        return connect_pid or 0

    seconds, sink_cpu, cassandra_cpu = drain(
        settings,
        backlog,
        f"connect-{name}",
        start,
        lambda: delete_connector(settings.connect_url, name),
        running_pid=connect_pid,
    )
    return Result("datastax", seconds, sink_cpu, cassandra_cpu, backlog.records)


def run_python(settings: StackSettings, backlog: Backlog, keyspace: str, work: Path) -> Result:
    document = bench_document(backlog, keyspace)
    config = work / f"{keyspace}.json"
    config.write_text(json.dumps(document))
    group = f"bench-python-{keyspace}"
    pid: list[int] = []

    def start() -> int:
        pid.append(
            start_detached(
                [str(BIN / "cap-stock-sink"), "--config", str(config), "--group-id", group],
                work / f"{keyspace}.log",
                work / f"{keyspace}.pid",
                env=pipeline_env(settings),
            )
        )
        return pid[0]

    seconds, sink_cpu, cassandra_cpu = drain(
        settings, backlog, group, start, lambda: stop_pid(pid[0], what="python sink", timeout=30)
    )
    return Result("python", seconds, sink_cpu, cassandra_cpu, backlog.records)


def report(results: list[Result]) -> list[Figure]:
    for r in results:
        print(
            f"  {r.sink:<8} {r.rate:>8.0f} rows/s  {r.seconds:>6.1f} s  "
            f"cpu: sink {r.sink_cpu:>6.1f} s, cassandra {r.cassandra_cpu:>6.1f} s"
        )
    medians = {}
    for sink in sorted({r.sink for r in results}):
        mine = [r for r in results if r.sink == sink]
        medians[sink] = statistics.median(r.rate for r in mine)
        print(
            f"median {sink:<8} {medians[sink]:>8.0f} rows/s, "
            f"cpu sink {statistics.median(r.sink_cpu for r in mine):.1f} s, "
            f"cassandra {statistics.median(r.cassandra_cpu for r in mine):.1f} s"
        )
    if "datastax" not in medians:
        return []
    baseline = f"Python sink {number(medians['python'])} rows/s" if "python" in medians else ""
    # The default sink must drain at least as fast as the alternative it replaced.
    goal = at_least(medians["python"]) if "python" in medians else None
    drained = medians["datastax"]
    return [Figure("sink drain, DataStax engine in Connect", drained, "rows/s", baseline, goal)]


def run(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=380_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sinks", default="datastax,python", help="which sinks, in run order")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="try a connector setting on the datastax sink (tuning experiments)",
    )
    args = parser.parse_args(argv)

    overrides = dict(item.split("=", 1) for item in args.set)
    settings = StackSettings()
    cluster, session = Cassandra(settings).admin_session()  # creates its own keyspace
    run_id = uuid.uuid4().hex[:8]
    backlog = Backlog(settings, f"drain_{run_id}", args.records)
    work = Path(f"/tmp/drain-{run_id}")
    work.mkdir()
    keyspaces: list[str] = []
    results: list[Result] = []
    try:
        t0 = time.monotonic()
        backlog.produce()
        print(f"produced {args.records} records in {time.monotonic() - t0:.1f}s")
        for run in range(args.runs):
            for sink in args.sinks.split(","):
                keyspace = f"drain_{run_id}_{sink}_{run}"
                keyspaces.append(keyspace)
                create_pipeline_keyspace(settings, session, keyspace)
                if sink == "datastax":
                    result = run_datastax(settings, backlog, keyspace, overrides)
                else:
                    result = run_python(settings, backlog, keyspace, work)
                results.append(result)
                print(f"run {run + 1} {sink}: {result.rate:.0f} rows/s", flush=True)
                session.execute(f"DROP KEYSPACE {keyspace}", timeout=120)
                keyspaces.remove(keyspace)
        return report(results)
    finally:
        for keyspace in keyspaces:
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        backlog.delete()
        cluster.shutdown()
        for path in work.iterdir():
            path.unlink()
        work.rmdir()


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
