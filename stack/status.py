"""`make status`: every part of the native pipeline, and whether the data still flows.

It reads, never changes: each process (the stack's four, and the pipeline's processes
`make demo`/`make up` started, from .stack/run/pipeline.json), each connector and task,
the sink's consumer lag, the replication slot, per-table freshness in both stores (the
newest ``ingested_at`` in Postgres, and whether Cassandra holds that very row yet), and
the producer's heartbeat (its age, mode, request weight, trade gaps found and, streaming,
filled and open).

Exit 1 when anything is down, failing or stale; ``--json`` prints the same as one object::

    $ python -m stack status --json | jq '.problems'
    ["producer: down", "recent_trades: newest row 412s old (stale after 120s)"]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from stack import pipeline, replication, sink_progress, supervisor
from stack.process import rss_kib, write_json_atomic
from stack.services import Cassandra, Component, Connect, Grafana, Postgres, all_components
from stack.settings import StackSettings

RUN_RECORD = "pipeline.json"
# A table is stale when its newest row is older than this many job intervals (plus slack).
STALE_INTERVALS = 3
STALE_SLACK_S = 30.0


# -- the run record: what `make demo` / `make up` meant to run --------------------------


def record_run(settings: StackSettings, source: str, sink: str) -> None:
    """Written before anything starts, so a failed start still shows what is missing."""
    processes = ["producer", "supervisor"]
    if source == "demo":
        processes.insert(0, "simulator")
    if sink == "python":
        processes.insert(0, "python-sink")
    write_json_atomic(
        settings.run_dir / RUN_RECORD,
        {"source": source, "sink": sink, "processes": processes, "since": _now_iso()},
    )


def read_run(settings: StackSettings) -> dict[str, Any]:
    try:
        return json.loads((settings.run_dir / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}


def forget_run(settings: StackSettings) -> None:
    (settings.run_dir / RUN_RECORD).unlink(missing_ok=True)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the report ------------------------------------------------------------------------------


@dataclass
class Report:
    components: list[dict[str, Any]] = field(default_factory=list)
    connectors: list[dict[str, Any]] = field(default_factory=list)
    slot: dict[str, Any] | None = None
    tables: list[dict[str, Any]] = field(default_factory=list)
    heartbeat: dict[str, Any] | None = None
    run: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    total_rss_mib: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, **asdict(self)}, indent=1, default=str)


def component_entry(component: Component, restarts: int) -> dict[str, Any]:
    pid = component.pid()
    healthy, version = False, "-"
    if pid:
        try:
            healthy = component.healthy()
            version = component.version()
        except Exception:
            healthy = False
    rss = rss_kib(pid, component.forks_sessions)
    return {
        "name": component.name,
        "state": "up" if healthy else ("starting/unhealthy" if pid else "down"),
        "pid": pid,
        "port": component.port or None,
        "version": version,
        "rss_mib": round(rss / 1024) if rss else None,
        "restarts": restarts,
    }


def task_text(connector: dict[str, Any]) -> str:
    """RUNNING (task 0=RUNNING): the one format, also connect_connectors.sh's."""
    tasks = connector.get("tasks", [])
    text = ", ".join(f"task {t['id']}={t['state']}" for t in tasks) or "no tasks"
    return f"{connector['state']} ({text})"


def connector_entries(settings: StackSettings, state: dict[str, Any]) -> list[dict[str, Any]]:
    entries = []
    for name, connector in Connect(settings).connectors().items():
        status = connector["status"]
        entry: dict[str, Any] = {
            "name": name,
            "state": status["connector"]["state"],
            "tasks": [{"id": t["id"], "state": t["state"]} for t in status.get("tasks", [])],
            "restarts": supervisor.connector_restarts_of(state, name),
            "ok": bool(status.get("tasks"))
            and all(
                s == "RUNNING"
                for s in [status["connector"]["state"]]
                + [t["state"] for t in status.get("tasks", [])]
            ),
        }
        if connector["info"]["type"] == "sink" and entry["ok"]:
            entry["ok"], entry["progress"] = sink_progress.describe(
                settings.kafka_bootstrap, name, connector["info"]["config"]
            )
        entries.append(entry)
    return entries


def job_intervals(settings: StackSettings) -> dict[str, float]:
    """The producer's job intervals as it was started (its spec), else the defaults."""
    from capstock.config import JobSettings, load
    from capstock.ingest.jobs import WRITTEN_EVERY

    from stack.preflight import environment

    spec_file = pipeline.Producer(settings).spec_file
    try:
        spec = json.loads(spec_file.read_text())
    except (OSError, ValueError):
        spec = {}
    with environment({k: v for k, v in spec.items() if k.startswith("JOB_")}):
        jobs = load(JobSettings, _env_file=None)
    return {table: float(getattr(jobs, name)) for table, name in WRITTEN_EVERY.items()}


def table_entries(settings: StackSettings, cassandra_up: bool) -> list[dict[str, Any]]:
    """Newest row per table in Postgres, its age, and whether Cassandra has it."""
    from capstock.model.tables import TABLES
    from psycopg import sql

    intervals = job_intervals(settings)
    newest: dict[str, dict[str, Any] | None] = {}
    with Postgres(settings).superuser_connection(settings.postgres_db) as db:
        for table in TABLES.values():
            names = (*table.cassandra_primary_key, "ingested_at")
            row = db.execute(
                sql.SQL("SELECT {} FROM {} ORDER BY ingested_at DESC LIMIT 1").format(
                    sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(table.name)
                )
            ).fetchone()
            newest[table.name] = dict(zip(names, row, strict=True)) if row else None
    mirrored = cassandra_has(settings, settings.cassandra_keyspace, newest) if cassandra_up else {}
    now = datetime.now(UTC)
    entries = []
    for name, row in newest.items():
        limit = STALE_INTERVALS * intervals[name] + STALE_SLACK_S
        age = (now - row["ingested_at"]).total_seconds() if row else None
        entries.append(
            {
                "table": name,
                "postgres_newest": row["ingested_at"].isoformat() if row else None,
                "age_s": round(age, 1) if age is not None else None,
                "stale_after_s": limit,
                "stale": age is None or age > limit,
                "in_cassandra": mirrored.get(name),
            }
        )
    return entries


def cassandra_has(
    settings: StackSettings, keyspace: str, newest: dict[str, dict[str, Any] | None]
) -> dict[str, bool | None]:
    """Per table: does Cassandra hold Postgres's newest row (None: no row, or no answer)?"""
    from capstock.model.tables import TABLES

    found: dict[str, bool | None] = {}
    try:
        cluster, session = Cassandra(settings).session(
            settings.cassandra_reader_user, settings.cassandra_reader_password.get_secret_value()
        )
    except Exception:
        return found
    try:
        for name, row in newest.items():
            if row is None:
                found[name] = None
                continue
            key = TABLES[name].cassandra_primary_key
            where = " AND ".join(f"{column} = %s" for column in key)
            cql = f"SELECT ingested_at FROM {keyspace}.{name} WHERE {where}"
            try:
                hit = session.execute(cql, [row[c] for c in key], timeout=5).one()
            except Exception:
                found[name] = None
                continue
            # Cassandra keeps milliseconds: compare at that precision.
            found[name] = hit is not None and _ms(hit.ingested_at) >= _ms(row["ingested_at"])
    finally:
        cluster.shutdown()
    return found


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def heartbeat_entry(settings: StackSettings) -> dict[str, Any] | None:
    with Postgres(settings).superuser_connection(settings.postgres_db) as db:
        cur = db.execute("SELECT * FROM heartbeat WHERE source = 'producer'")
        row = cur.fetchone()
        if row is None:
            return None
        beat = dict(zip([c.name for c in cur.description], row, strict=True))
    beat["age_s"] = round((datetime.now(UTC) - beat["beat_time"]).total_seconds(), 1)
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in beat.items()}


def collect(settings: StackSettings) -> Report:
    report = Report(run=read_run(settings))
    state = supervisor.read_state(settings.run_dir)
    expected = set(report.run.get("processes", []))
    optional = [
        *pipeline.pipeline_components(settings),
        Grafana(settings),
        pipeline.SupervisorProcess(settings),
    ]
    shown = [p for p in optional if p.name in expected or p.pid_file.exists()]
    up: set[str] = set()
    for component in [*all_components(settings), *shown]:
        entry = component_entry(component, supervisor.restarts_of(state, component.name))
        report.components.append(entry)
        report.total_rss_mib += entry["rss_mib"] or 0
        if entry["state"] == "up":
            up.add(component.name)
        elif component.name != "grafana" or component.name in expected:
            report.problems.append(f"{component.name}: {entry['state']}")
    registered = None
    if "connect" in up:
        try:
            report.connectors = connector_entries(settings, state)
        except Exception as err:
            report.problems.append(f"connect: cannot list connectors ({err})")
        names = [c["name"] for c in report.connectors]
        registered = replication.source_config()["name"] in names
        for connector in report.connectors:
            if not connector["ok"]:
                why = connector.get("progress") or task_text(connector)
                report.problems.append(f"connector {connector['name']}: {why}")
    if "postgres" in up:
        _slot(settings, report, registered)
        if report.run:
            _data(settings, report, cassandra_up="cassandra" in up)
    if not report.run:
        report.notes.append("pipeline not started: `make demo` (simulator) or `make up` (live)")
    if not pipeline.SupervisorProcess(settings).pid_file.exists():
        report.notes.append(
            "supervisor not running: nothing restarts a crashed component (make demo starts it)"
        )
    return report


def _slot(settings: StackSettings, report: Report, registered: bool | None) -> None:
    try:
        with Postgres(settings).superuser_connection() as conn:
            slot = replication.slot_status(
                conn, database=settings.postgres_db, registered=registered
            )
    except Exception as err:
        report.problems.append(f"slot: cannot read pg_replication_slots: {str(err)[:200]}")
        return
    report.slot = {"line": slot.line(), **asdict(slot)}
    if slot.error:
        report.problems.append(slot.line())


def _data(settings: StackSettings, report: Report, cassandra_up: bool) -> None:
    try:
        report.tables = table_entries(settings, cassandra_up)
        report.heartbeat = heartbeat_entry(settings)
    except Exception as err:
        report.problems.append(f"tables: cannot read them ({str(err).strip()[:200]})")
        return
    judge_data(report)


def judge_data(report: Report) -> None:
    """Stale tables and the exchange trouble the heartbeat reports are problems."""
    for table in report.tables:
        if table["stale"]:
            age = "no rows" if table["age_s"] is None else f"newest row {table['age_s']:.0f}s old"
            report.problems.append(
                f"{table['table']}: {age} (stale after {table['stale_after_s']:.0f}s)"
            )
    if report.heartbeat and report.heartbeat.get("exchange_error"):
        report.problems.append(exchange_trouble_text(report.heartbeat))


def exchange_trouble_text(heartbeat: dict[str, Any]) -> str:
    """The producer's own words for why it cannot use the exchange (heartbeat row)."""
    return (
        f"exchange {heartbeat['exchange_error']} "
        f"(since {heartbeat.get('exchange_error_since') or '?'})"
    )


# -- text --------------------------------------------------------------------------------------


def render(report: Report) -> str:
    lines = []
    for c in report.components:
        rss = f"{c['rss_mib']} MiB" if c["rss_mib"] else "-"
        lines.append(
            f"{c['name']:<11} {c['state']:<18} pid={c['pid'] or '-':<8} port={c['port'] or '-':<6} "
            f"version={c['version']:<12} rss={rss:<8} restarts={c['restarts']}"
        )
        if c["name"] == "connect":
            for k in report.connectors:
                lines.append(f"  connector {k['name']}: {task_text(k)} restarts={k['restarts']}")
                if k.get("progress"):
                    lines.append(f"    {k['progress']}")
    if report.slot:
        lines.append(f"  {report.slot['line']}")
    if report.tables:
        lines.append(f"{'table':<15} {'postgres newest':<28} {'age':>8}  cassandra")
        for t in report.tables:
            age = "-" if t["age_s"] is None else f"{t['age_s']:.0f}s"
            mirrored = {True: "has it", False: "NOT YET", None: "-"}[t["in_cassandra"]]
            stale = "  STALE" if t["stale"] else ""
            lines.append(
                f"{t['table']:<15} {t['postgres_newest'] or '-':<28} {age:>8}  {mirrored}{stale}"
            )
    if report.heartbeat:
        h = report.heartbeat
        mode = h.get("ingest_mode")
        lines.append(
            f"producer heartbeat {h['age_s']:.0f}s ago{f' ({mode})' if mode else ''}: "
            f"weight_used_1m={h.get('weight_used_1m')} "
            f"trade_gaps_total={h.get('trade_gaps_total')}"
            + (
                f" filled={h.get('trade_gaps_filled')} open={h.get('trade_gaps_open')}"
                if mode == "stream"
                else ""
            )
        )
        if h.get("exchange_error"):
            lines.append(f"  {exchange_trouble_text(h)}")
    lines.extend(report.notes)
    lines.append(f"total rss {report.total_rss_mib} MiB")
    if report.problems:
        lines.append("NOT OK: " + "; ".join(report.problems))
    else:
        lines.append("ok")
    return "\n".join(lines)


def main(settings: StackSettings, as_json: bool = False) -> int:
    report = collect(settings)
    print(report.to_json() if as_json else render(report))
    return 0 if report.ok else 1
