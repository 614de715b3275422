"""`make bench`: every benchmark in one run, each figure next to its baseline and goal.

Runs, one after the other on the native stack (nothing else should be running: the two
cores are shared by everything measured):

1. Postgres writes (bench_postgres_writes): the producer's writer vs naive baselines;
2. CDC latency and throughput (bench_cdc_latency): commit -> Cassandra per hop, and the
   highest rate without growing lag;
3. sink drain (bench_sink_drain): the DataStax engine vs the Python sink on one backlog;
4. stream vs REST ingest (bench_streaming): exchange time -> Postgres and -> Cassandra;
5. memory of the full demo: `make demo` for ``--demo-seconds``, then every process's
   memory as `make status` sums it (the pipeline started here is stopped again).

Each benchmark prints its detail as it goes; the figures end in one table, written with
the detail and the machine it ran on to ``bench/results/<date>.md``, which the README
and CHANGELOG quote. The exit status is 0 when every benchmark ran, whatever the goals.

    PYTHONPATH=. python bench/run_all.py [--only writes,cdc,drain,streaming,memory]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from bench.figures import Figure, at_most, table
from stack import pipeline, status
from stack.settings import REPO_ROOT, StackSettings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEMO_RSS_GOAL_MIB = 3 * 1024


def demo_memory(argv: list[str]) -> list[Figure]:
    """Memory of every process of the demo after it ran a while (started here if needed)."""
    seconds = float(argv[0]) if argv else 180.0
    settings = StackSettings()
    started_here = pipeline.Producer(settings).pid() is None
    python = [sys.executable, "-m", "stack"]
    if started_here:
        subprocess.run([*python, "pipeline", "--source", "demo"], check=True, cwd=REPO_ROOT)
    try:
        print(f"demo running; measuring memory in {seconds:.0f} s", flush=True)
        time.sleep(seconds)
        report = status.collect(settings)
        for entry in report.components:
            print(f"  {entry['name']:<11} {entry['rss_mib'] or 0:>6} MiB")
    finally:
        if started_here:
            subprocess.run([*python, "down"], check=True, cwd=REPO_ROOT)
            subprocess.run([*python, "up"], check=True, cwd=REPO_ROOT)
    largest = max(report.components, key=lambda e: e["rss_mib"] or 0)
    return [
        Figure(
            f"memory of the full demo after {seconds:.0f} s (Pss, every process)",
            report.total_rss_mib,
            "MiB",
            f"largest: {largest['name']} {largest['rss_mib']} MiB",
            at_most(DEMO_RSS_GOAL_MIB),
        )
    ]


def module_run(module: str) -> Callable[[list[str]], list[Figure]]:
    """A benchmark module's `run`, imported when it is its turn."""
    return lambda argv: importlib.import_module(f"bench.{module}").run(argv)


BENCHES: dict[str, tuple[str, Callable[[list[str]], list[Figure]]]] = {
    "writes": ("Postgres writes", module_run("bench_postgres_writes")),
    "cdc": ("CDC latency and sustained rate", module_run("bench_cdc_latency")),
    "drain": ("Sink drain", module_run("bench_sink_drain")),
    "streaming": ("Stream vs REST ingest", module_run("bench_streaming")),
    "memory": ("Memory of the full demo", demo_memory),
}


class Tee(io.TextIOBase):
    """Everything printed goes to the terminal and into the results file's detail."""

    def __init__(self, terminal: io.TextIOBase) -> None:
        self.terminal, self.captured = terminal, io.StringIO()

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.terminal.flush()
        return self.captured.write(text)


@contextlib.contextmanager
def teed() -> Iterator[Tee]:
    tee = Tee(sys.stdout)  # type: ignore[arg-type]
    with contextlib.redirect_stdout(tee):
        yield tee


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=REPO_ROOT
    ).stdout.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory_kib / 1024**2:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"commit {commit or 'unknown'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="which, comma-separated")
    parser.add_argument("--demo-seconds", default="180", help="how long the demo runs first")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := [name for name in chosen if name not in BENCHES]:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")

    began = datetime.now().astimezone()
    figures: list[Figure] = []
    failed: list[str] = []
    with teed() as tee:
        for name in chosen:
            title, bench = BENCHES[name]
            print(f"\n## {title}\n\n```", flush=True)
            t0 = time.monotonic()
            try:
                figures += bench([args.demo_seconds] if name == "memory" else [])
            except Exception:  # one broken benchmark must not hide the others' figures
                traceback.print_exc(file=sys.stdout)
                failed.append(title)
            print(f"({time.monotonic() - t0:.0f} s)\n```", flush=True)
        summary = table(figures)
        print(f"\n## Figures\n\n{summary}")
        for title in failed:
            print(f"\n{title}: FAILED (traceback above), no figures")

    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{began:%Y-%m-%d}.md"
    path.write_text(
        f"# make bench, {began:%Y-%m-%d %H:%M %Z}\n\nMachine: {machine()}. Everything "
        f"(Postgres, Kafka, Connect, Cassandra, the benchmark) on this one machine.\n"
        f"{tee.captured.getvalue()}"
    )
    print(f"\nwritten to {path.relative_to(REPO_ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
