"""Native stack runner: `python -m stack up|pipeline|down|status|clean|supervise|resnapshot`.

$ python -m stack up          # start Postgres, Kafka, Connect, Cassandra; wait until healthy
$ python -m stack status      # every process, connector, table; exit 1 if anything is down or stale
$ python -m stack watch       # the same, refreshed in place, with rows/s and the latest prices
$ python -m stack down        # stop the supervisor, then the rest in reverse order; keep the data
$ python -m stack clean       # stop, then delete .stack/ (data, logs, configs, fetched jars)
$ python -m stack supervise   # start the supervisor (`pipeline` does) if it is not running
$ python -m stack resnapshot  # after a lost replication slot: Debezium snapshots every table again
"""

from __future__ import annotations

import argparse
import sys
import time

from stack import pipeline, preflight, replication, status, supervisor, watch
from stack.process import StackError
from stack.services import Connect, Postgres, all_components, prepare_home, wipe
from stack.settings import StackSettings


def up(settings: StackSettings) -> int:
    prepare_home(settings)
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
    try:  # settings, and the exchange for live, before anything starts
        preflight.check(settings, source)
    except preflight.PreflightError as err:
        print(f"pipeline: {err}", file=sys.stderr)
        return err.exit_code
    sink = pipeline.sink_choice()
    sink_log = "connect.log" if sink == "datastax" else "python-sink.log"
    status.record_run(settings, source, sink)
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
    """The supervisor first (so it restarts nothing), then the rest in reverse start order."""
    components = list(reversed(pipeline.everything(settings)))
    first = components.pop(0)
    print(f"{first.name}: {first.stop()}", flush=True)
    with supervisor.exclusive(settings.run_dir):
        for component in components:
            print(f"{component.name}: {component.stop()}", flush=True)
        (settings.run_dir / supervisor.STATE_FILE).unlink(missing_ok=True)
        status.forget_run(settings)
    return 0


def supervise(settings: StackSettings, source: str | None, foreground: bool) -> int:
    """Start the supervisor in the background (or, --foreground, be it).

    Without --source it keeps the one the pipeline was started with (demo if unknown).
    """
    source = source or supervisor.read_state(settings.run_dir).get("source") or "demo"
    if foreground:
        return supervisor.main(settings, source)
    process = pipeline.SupervisorProcess(settings, source=source)
    print(f"supervisor: {process.start()}, log {process.log_file}")
    return 0


def resnapshot(settings: StackSettings, force: bool, timeout: float) -> int:
    """Make Cassandra converge to Postgres after the slot was lost; safe to run again.

    $ make resnapshot            # only when the slot is missing or lost
    $ python -m stack resnapshot --force   # also when it looks healthy
    """
    postgres, connect = Postgres(settings), Connect(settings)
    for component in (postgres, connect):
        if status.component_entry(component, 0)["state"] != "up":
            print(f"resnapshot: {component.name} is not up; start the stack first (make stack-up)")
            return 1
    name = replication.source_config()["name"]
    try:
        state = replication.connector_state(settings.connect_url, name)
        with postgres.superuser_connection() as conn:
            slot = replication.slot_status(
                conn, database=settings.postgres_db, registered=state is not None
            )
        print(f"{slot.line()}\nconnector {name}: {state or 'not registered'}")
        recovery = replication.Recovery(
            settings.connect_url,
            postgres.superuser_connection,
            settings.postgres_db,
            say=lambda line: print(line, flush=True),
            snapshot_timeout=timeout,
        )
        if not force and not slot.error and state is not None:
            if state != "RUNNING":
                print(
                    f"the slot is healthy: {name} needs a restart, not a snapshot "
                    f"(the supervisor restarts FAILED tasks); --force re-snapshots anyway"
                )
                return 1
            recovery.wait_snapshot()
            print("nothing to do (use --force to re-snapshot anyway)")
            return 0
        recovery.run()
        replication.wait_sink_caught_up(settings.kafka_bootstrap, timeout, say=recovery.say)
    except Exception as err:
        print(f"resnapshot: FAILED: {err}\nIt is safe to run again.", file=sys.stderr)
        return 1
    print("resnapshot done: Cassandra has every row Postgres holds")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        choices=["up", "pipeline", "down", "status", "watch", "clean", "supervise", "resnapshot"],
    )
    parser.add_argument(
        "--source",
        choices=["demo", "live"],
        help="pipeline (default demo), supervise (default: as the pipeline was started): "
        "demo = the bundled exchange simulator, live = BINANCE_API_URL",
    )
    parser.add_argument(
        "--foreground", action="store_true", help="supervise: run the loop here (logs to stdout)"
    )
    parser.add_argument(
        "--force", action="store_true", help="resnapshot: even if the slot looks healthy"
    )
    parser.add_argument("--json", action="store_true", help="status: one JSON object")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="watch: seconds between refreshes"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="resnapshot: seconds to wait for the snapshot, then for the sink (default 1800)",
    )
    args = parser.parse_args(argv)
    settings = StackSettings()
    if args.command == "up":
        with supervisor.exclusive(settings.run_dir):
            return up(settings)
    if args.command == "pipeline":
        with supervisor.exclusive(settings.run_dir):
            return pipeline_up(settings, args.source or "demo")
    if args.command == "down":
        return down(settings)
    if args.command == "status":
        return status.main(settings, as_json=args.json)
    if args.command == "watch":
        return watch.main(settings, args.interval)
    if args.command == "supervise":
        return supervise(settings, args.source, args.foreground)
    if args.command == "resnapshot":
        return resnapshot(settings, args.force, args.timeout)
    down(settings)
    try:
        left = wipe(settings)
    except OSError as err:
        print(f"clean: cannot delete {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    if left:
        names = ", ".join(path.name for path in left)
        print(
            f"wiped the stack's directories; kept in {settings.home} what it did not write: {names}"
        )
    else:
        print(f"wiped {settings.home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
