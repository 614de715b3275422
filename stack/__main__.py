"""Native stack runner: `python -m stack up|down|status|clean`.

$ python -m stack up        # start Postgres, Kafka, Connect, Cassandra; wait until healthy
$ python -m stack status    # one line per component; exit 1 if any is down
$ python -m stack down      # stop in reverse order, keep the data
$ python -m stack clean     # stop, then delete .stack/ (data, logs, pids)
"""

from __future__ import annotations

import argparse
import sys
import time

from stack import pipeline, sink_progress
from stack.components import Component, Connect, all_components, wipe
from stack.grafana import Grafana
from stack.process import StackError, rss_kib
from stack.settings import StackSettings


def up(settings: StackSettings) -> int:
    for path in (settings.data_dir, settings.log_dir, settings.run_dir, settings.conf_dir):
        path.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    for component in all_components(settings):
        t0 = time.monotonic()
        print(f"{component.name}: starting ...", flush=True)
        try:
            outcome = component.start()
        except StackError as err:
            print(f"{component.name}: FAILED\n{err}", file=sys.stderr)
            return 1
        print(
            f"{component.name}: {outcome}, healthy after {time.monotonic() - t0:.1f}s", flush=True
        )
    print(f"stack up in {time.monotonic() - began:.1f}s; logs in {settings.log_dir}")
    return 0


def pipeline_up(settings: StackSettings, source: str) -> int:
    try:  # a wrong CASSANDRA_SINK is reported before anything starts
        sink_log = "connect.log" if pipeline.sink_choice() == "datastax" else "python-sink.log"
    except StackError as err:
        print(f"pipeline: {err}", file=sys.stderr)
        return 2
    if up(settings) != 0:
        return 1
    try:
        pipeline.up(settings, source)
    except StackError as err:
        print(f"pipeline: FAILED\n{err}", file=sys.stderr)
        return 1
    print(
        f"\npipeline running ({source}). Watch it:\n"
        f"  tail -f {settings.log_dir}/producer.log   # one line per job run\n"
        f"  tail -f {settings.log_dir}/{sink_log}   # the Cassandra sink\n"
        "  make status                               # every component and connector\n"
        "Stop it with: make down"
    )
    return 0


def down(settings: StackSettings) -> int:
    for component in reversed(pipeline.everything(settings)):
        print(f"{component.name}: {component.stop()}", flush=True)
    return 0


def _status_line(component: Component) -> tuple[bool, str]:
    pid = component.pid()
    healthy = False
    version = "-"
    if pid:
        try:
            healthy = component.healthy()
            version = component.version()
        except Exception:
            healthy = False
    state = "up" if healthy else ("starting/unhealthy" if pid else "down")
    rss = rss_kib(pid)
    rss_text = f"{rss / 1024:.0f} MiB" if rss else "-"
    port = component.port or "-"
    return healthy, (
        f"{component.name:<10} {state:<18} pid={pid or '-':<8} port={port:<6} "
        f"version={version:<12} rss={rss_text}"
    )


def _connector_lines(connect: Connect, settings: StackSettings) -> bool:
    """Print each connector's state (and a sink's progress); False if any is not healthy."""
    healthy = True
    for name, connector in connect.connectors().items():
        state = connector["status"]
        tasks = state.get("tasks", [])
        states = [state["connector"]["state"], *(t["state"] for t in tasks)]
        text = ", ".join(f"task {t['id']}={t['state']}" for t in tasks)
        print(f"  connector {name}: {state['connector']['state']} ({text or 'no tasks'})")
        healthy &= bool(tasks) and all(s == "RUNNING" for s in states)
        if connector["info"]["type"] == "sink" and "RUNNING" in states:
            progressing, line = sink_progress.describe(
                settings.kafka_bootstrap, name, connector["info"]["config"]
            )
            print(f"    {line}")
            healthy &= progressing
    return healthy


def status(settings: StackSettings) -> int:
    all_up = True
    total_rss = 0
    optional = [*pipeline.pipeline_components(settings), Grafana(settings)]
    started = [p for p in optional if p.pid_file.exists()]
    for component in [*all_components(settings), *started]:
        healthy, line = _status_line(component)
        all_up &= healthy
        total_rss += rss_kib(component.pid()) or 0
        print(line)
        if healthy and isinstance(component, Connect):
            all_up &= _connector_lines(component, settings)
    print(f"total rss {total_rss / 1024:.0f} MiB")
    return 0 if all_up else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "pipeline", "down", "status", "clean"])
    parser.add_argument(
        "--source",
        choices=["demo", "live"],
        default="demo",
        help="pipeline: demo = the bundled exchange simulator, live = BINANCE_API_URL",
    )
    args = parser.parse_args(argv)
    settings = StackSettings()
    if args.command == "up":
        return up(settings)
    if args.command == "pipeline":
        return pipeline_up(settings, args.source)
    if args.command == "down":
        return down(settings)
    if args.command == "status":
        return status(settings)
    down(settings)
    wipe(settings)
    print(f"wiped {settings.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
