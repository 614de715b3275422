"""End-to-end latency: Postgres commit → row readable in Cassandra, on the native stack.

Writes ``recent_trades`` rows at a steady rate, in one transaction every 50 ms, into an
isolated copy of the chain (the committed connector settings with their own database,
slot, topics, keyspace and sink; see tests/support/cdc_harness.py). A poller reads
the last row of each transaction back from Cassandra and records how long after the
commit it became readable.

Prints p50/p95/p99 at the steady rate (goals: p50 <= 150 ms, p99 <= 500 ms) and where
the time goes, hop by hop, from timestamps each stage leaves on the row (one clock: every
component runs on this machine):

- commit -> decoded: Debezium's processing time of the change (``ts_ms``, added to the
  benchmark's copy of the records with ``transforms.unwrap.add.fields``), so WAL sending,
  pgoutput decoding and Debezium's queue up to the conversion;
- decoded -> appended to Kafka: the record's Kafka timestamp, so ``poll.interval.ms``,
  the task's batch hand-over and the producer's linger;
- Kafka -> readable in Cassandra: the sink's fetch, mapping and write, and the benchmark's
  10 ms polling. (The row's ``WRITETIME`` cannot split this hop: the DataStax engine
  writes with the record's Kafka timestamp, so it equals the previous mark.)

Then it raises the rate step by step and prints the highest rate at which lag did not
grow (goal: >= 20,000 rows/s on two cores; a step that falls behind runs once more, and
only a second miss ends the climb), next to the most Postgres alone accepted from
the benchmark's writer on the way (the baseline: what the writer could offer the chain).
``run`` returns the figures for ``make bench``.

    PYTHONPATH=. python bench/bench_cdc_latency.py [--rate 1000] [--seconds 30]
        [--start-rate 4000] [--step 4000] [--max-rate 24000] [--repeats 3]

Needs the native stack (`make stack-up`).
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
from capstock.model.tables import RECENT_TRADES

from bench.cpu import CpuShares
from bench.figures import Figure, at_least, at_most, number
from stack.services import Cassandra
from stack.settings import StackSettings
from tests.support.cdc_harness import CdcHarness

TICK_S = 0.05
LAG_TOLERANCE_S = 0.1
SYMBOL = "BENCHUSDT"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Run:
    rate: int
    # (last trade id of a transaction, its commit time), from the writer to the poller
    commits: queue.Queue = field(default_factory=queue.Queue)
    latencies: list[float] = field(default_factory=list)
    # per transaction's last trade id: commit and arrival (epoch seconds, this machine)
    committed_at: dict[int, float] = field(default_factory=dict)
    readable_at: dict[int, float] = field(default_factory=dict)
    written: int = 0
    elapsed: float = 0.0
    writer_done: threading.Event = field(default_factory=threading.Event)
    cpu: str = ""
    """Where the CPU went while the writer ran (bench.cpu)."""

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    def lag_grew(self, steady_p50: float, steady_p99: float) -> bool:
        """Lag grows when the end of the step waits far longer than the steady state did:
        the median of its last third above the steady run's p99, above twice its p50, by
        more than LAG_TOLERANCE_S (a chain that keeps up stays near its steady latency
        however long the step; the tolerance keeps a 20 ms steady state from calling a
        busy machine's 60 ms a backlog)."""
        third = len(self.latencies) // 3
        if third < 3:
            return True
        last = statistics.median(self.latencies[-third:])
        return last > max(steady_p99, 2 * steady_p50) + LAG_TOLERANCE_S

    def last_third_median(self) -> float:
        third = max(1, len(self.latencies) // 3)
        return statistics.median(self.latencies[-third:]) if self.latencies else float("nan")


def write_steadily(chain: CdcHarness, run: Run, seconds: float, next_id: list[int]) -> None:
    per_tick = max(1, round(run.rate * TICK_S))
    # COPY, not INSERTs: the writer shares the two cores with the chain it measures, and
    # executemany's per-row Python work took a good part of one of them at 10,000 rows/s.
    copy = (
        "COPY recent_trades (symbol, trade_id, price, qty, quote_qty, trade_time,"
        " is_buyer_maker, is_best_match, day, ingested_at) FROM STDIN"
    )
    start = time.monotonic()
    with psycopg.connect(chain.conninfo) as conn:
        tick = 0
        while time.monotonic() - start < seconds:
            wall = datetime.now(UTC)
            now = wall.replace(microsecond=wall.microsecond // 1000 * 1000)
            rows = []
            for _ in range(per_tick):
                next_id[0] += 1
                rows.append(
                    (
                        SYMBOL,
                        next_id[0],
                        Decimal("0.00001234"),
                        Decimal("1000000.5"),
                        Decimal("12.34000617"),
                        now,
                        next_id[0] % 2 == 0,
                        True,
                        now.date(),
                        now,
                    )
                )
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as writer:
                for row in rows:
                    writer.write_row(row)
            run.commits.put((next_id[0], time.monotonic()))
            run.committed_at[next_id[0]] = time.time()
            run.written += len(rows)
            tick += 1
            # Hold the steady rate: sleep until this tick's slot ends.
            time.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))
    run.elapsed = time.monotonic() - start


def poll_arrivals(session, chain: CdcHarness, run: Run) -> None:  # type: ignore[no-untyped-def]
    query = session.prepare(
        f"SELECT trade_id FROM {chain.name}.recent_trades WHERE symbol = ? AND day = ? "
        "AND trade_id = ?"
    )
    day = datetime.now(UTC).date()
    pending: dict[int, float] = {}
    give_up_at: float | None = None
    while True:
        while not run.commits.empty():
            trade_id, committed = run.commits.get()
            pending[trade_id] = committed
        for trade_id in sorted(pending):
            if session.execute(query, (SYMBOL, day, trade_id)).one():
                run.latencies.append(time.monotonic() - pending.pop(trade_id))
                run.readable_at[trade_id] = time.time()
        if run.writer_done.is_set():
            # Whatever has not arrived 30 s after the writer stopped never counts.
            give_up_at = give_up_at or time.monotonic() + 30
            if (not pending and run.commits.empty()) or time.monotonic() > give_up_at:
                return
        time.sleep(0.01)


@dataclass(frozen=True)
class Marks:
    """When Debezium's task turned the change into a record, and when Kafka appended it."""

    decoded: float
    appended: float


def kafka_times(chain: CdcHarness, ids: set[int]) -> dict[int, Marks]:
    """Each trade id's marks (epoch seconds), read back from the topic."""
    from confluent_kafka import Consumer, TopicPartition

    topic = chain.topic(RECENT_TRADES)
    consumer = Consumer(
        {
            "bootstrap.servers": chain.settings.kafka_bootstrap,
            "group.id": f"bench-{chain.name}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: dict[int, Marks] = {}
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            msg = consumer.poll(5)
            if msg is None:
                break
            if msg.error():
                continue
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
            value = json.loads(msg.value())
            if value["trade_id"] in ids:
                found[value["trade_id"]] = Marks(value["__ts_ms"] / 1000, msg.timestamp()[1] / 1000)
        return found
    finally:
        consumer.close()


def hops(run: Run, marks: dict[int, Marks]) -> dict[str, tuple[float, float]]:
    """p50/p99 (ms) of each hop over the transactions every stage saw, printed."""
    ids = [i for i in run.readable_at if i in marks]
    stages = {
        "commit -> decoded by Debezium": [marks[i].decoded - run.committed_at[i] for i in ids],
        "decoded -> appended to Kafka": [marks[i].appended - marks[i].decoded for i in ids],
        "Kafka -> readable in Cassandra": [run.readable_at[i] - marks[i].appended for i in ids],
    }
    found = {}
    for name, values in stages.items():
        if values:
            found[name] = (percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000)
            print(f"  {name:<31} p50={found[name][0]:6.0f} ms  p99={found[name][1]:6.0f} ms")
    return found


def measure(chain: CdcHarness, session, rate: int, seconds: float, next_id: list[int]) -> Run:  # type: ignore[no-untyped-def]
    run = Run(rate)
    poller = threading.Thread(target=poll_arrivals, args=(session, chain, run))
    cpu = CpuShares(chain.settings)
    poller.start()
    try:
        write_steadily(chain, run, seconds, next_id)
        run.cpu = cpu.report()
    finally:
        run.writer_done.set()
        poller.join()
    return run


def run(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="steady rows/s for percentiles")
    parser.add_argument("--seconds", type=float, default=30, help="length of each run")
    parser.add_argument("--max-rate", type=int, default=24000, help="highest rate to try")
    parser.add_argument("--repeats", type=int, default=3, help="steady runs; medians printed")
    parser.add_argument("--start-rate", type=int, default=4000, help="first rate step")
    parser.add_argument("--step", type=int, default=4000, help="rate increment per step")
    args = parser.parse_args(argv)

    settings = StackSettings()
    cluster, session = Cassandra(settings).admin_session()  # creates its own keyspace
    work_dir = tempfile.TemporaryDirectory(prefix="bench-cdc-")  # removed at the end
    chain = CdcHarness(settings, work_dir=Path(work_dir.name))
    next_id = [0]
    try:
        chain.create_stores(session)
        source = chain.source_document()
        # Debezium's processing time on each record (`__ts_ms`), to split commit -> Kafka.
        source["config"]["transforms.unwrap.add.fields"] = "ts_ms"
        chain.register(source)
        chain.start_sink()
        measure(chain, session, 200, 5, next_id)  # warm-up: topics, JIT, prepared statements

        runs = [
            measure(chain, session, args.rate, args.seconds, next_id) for _ in range(args.repeats)
        ]
        p50, p95, p99 = (
            statistics.median(r.percentile(q) for r in runs) for q in (0.50, 0.95, 0.99)
        )
        print(
            f"steady {args.rate} rows/s, {args.repeats} runs of {args.seconds:.0f}s, medians: "
            f"p50={p50 * 1000:.0f} ms p95={p95 * 1000:.0f} ms p99={p99 * 1000:.0f} ms "
            f"({sum(len(r.latencies) for r in runs)} transactions)"
        )
        steady = runs[len(runs) // 2]
        found = hops(steady, kafka_times(chain, set(steady.readable_at)))
        print(steady.cpu)
        e2e = f"commit -> readable in Cassandra at {args.rate:,} rows/s"
        figures = [
            Figure(f"{e2e}, p50", p50 * 1000, "ms", "", at_most(150)),
            Figure(f"{e2e}, p99", p99 * 1000, "ms", "", at_most(500)),
        ]
        figures += [
            Figure(f"  hop {name}, p{q}", ms, "ms")
            for name, pair in found.items()
            for q, ms in zip((50, 99), pair, strict=True)
        ]
        sustained, accepted = step_up(chain, session, args, p50, p99, next_id)
        print(f"highest sustained rate without growing lag: {sustained} rows/s (goal >= 20000)")
        baseline = f"Postgres alone accepted {number(accepted)} rows/s"
        figures.append(
            Figure("sustained without growing lag", sustained, "rows/s", baseline, at_least(20_000))
        )
        return figures
    finally:
        chain.teardown(session)
        cluster.shutdown()
        work_dir.cleanup()


def step_up(  # type: ignore[no-untyped-def]
    chain: CdcHarness, session, args: argparse.Namespace, p50: float, p99: float, next_id: list[int]
) -> tuple[int, float]:
    """The highest rate whose lag did not grow, and the most Postgres accepted on the way.

    A step that falls behind runs once more before it counts: on a shared two-core machine
    one memtable flush or GC pause can hold up a 15 s step that the chain otherwise keeps
    up with; a real backlog falls behind again."""
    sustained, accepted = 0, 0.0
    rate = args.start_rate
    while rate <= args.max_rate:
        for attempt in (1, 2):
            run = measure(chain, session, rate, args.seconds / 2, next_id)
            offered = run.written / run.elapsed
            accepted = max(accepted, offered)
            grew = run.lag_grew(p50, p99) or offered < 0.9 * rate
            print(
                f"  rate {rate:>6} rows/s{' (again)' if attempt == 2 else ''}: postgres "
                f"accepted {offered:>7.0f} rows/s, p50={run.percentile(0.5) * 1000:.0f} ms "
                f"p99={run.percentile(0.99) * 1000:.0f} ms "
                f"last third p50={run.last_third_median() * 1000:.0f} ms"
                f"{' -> lag grows' if grew else ''}",
                flush=True,
            )
            print(run.cpu)
            if not grew:
                break
            hops(run, kafka_times(chain, set(run.readable_at)))  # where the backlog formed
        if grew:
            break
        sustained = rate
        rate += args.step
    return sustained, accepted


def main(argv: list[str] | None = None) -> int:
    for figure in run(argv):
        print(f"{figure.name}: {number(figure.value)} {figure.unit} ({figure.verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
