"""Is Debezium's replication slot still usable? And the recovery when it is not.

Debezium resumes from the LSN in its Connect offsets, which Postgres can serve only while
the slot named in register-postgres.json (``slot.name``) keeps the WAL from there on.
``max_slot_wal_keep_size`` (2GB natively) lets Postgres give up that WAL: the slot's
``wal_status`` goes ``reserved`` -> ``extended`` -> ``unreserved`` (removed at the next
checkpoint) -> ``lost``, and a lost slot's ``restart_lsn`` is NULL. Debezium 3.1 cannot
tell: it polls the slot every 2 s for 30 minutes, logging "concurrent tx probably blocks
taking snapshot", while Connect reports RUNNING. If the slot is simply dropped, Debezium
with ``snapshot.mode=initial`` creates a new one and streams from the current LSN: every
change in between never reaches Cassandra.

:func:`slot_status` reads ``pg_replication_slots`` and :func:`classify` names the state;
``make status`` fails on ``missing`` and ``lost``. :class:`Recovery` is the recovery
(``make resnapshot``), whatever lost the slot: stop the connector, end leftover Debezium
sessions, drop the slot, reset the connector's Connect offsets (Kafka 3.6+), resume. With
no offsets Debezium takes a new initial snapshot through a new slot, so every row Postgres
holds is written to Cassandra again (idempotent upserts) and streaming continues from the
snapshot's consistent point. Rows the retention job already deleted from Postgres cannot
come back this way; Cassandra keeps what it had of them. Measured on Debezium 3.1.3 and
Connect 3.9.1 with an invalidated slot: 1,000 rows written while the slot was lost, 0
missing from the topic afterwards, 12 s for the whole command on a small database.

Under ``snapshot.mode=when_needed`` dropping a lost slot is enough: :func:`heal_lost_slot`
(the supervisor calls it) does that, and Debezium refills the gap by itself.

A sample row of ``pg_replication_slots`` (PostgreSQL 15) for a lost slot::

    slot_name=cap_stock_debezium plugin=pgoutput database=cap_stock_db active=f
    wal_status=lost safe_wal_size=NULL restart_lsn=NULL confirmed_flush_lsn=0/15007F0
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from stack.connect_api import ConnectError, request
from stack.settings import REPO_ROOT

SOURCE_CONFIG = REPO_ROOT / "register-postgres.json"
FIX = "run `make resnapshot` (README, Reliability)"
# Modes that snapshot a connector without offsets; the recovery relies on it.
SNAPSHOTTING_MODES = {"initial", "when_needed", "always"}

SLOT_QUERY = """
SELECT slot_name, plugin, database, active, active_pid, wal_status,
       safe_wal_size::bigint AS safe_wal_size,
       restart_lsn::text AS restart_lsn, confirmed_flush_lsn::text AS confirmed_flush_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_bytes
FROM pg_replication_slots WHERE slot_name = %s
"""

State = Literal["ok", "missing", "lost", "foreign", "unused", "absent"]


def source_config() -> dict[str, Any]:
    return json.loads(SOURCE_CONFIG.read_text())


def slot_name(config: dict[str, Any] | None = None) -> str:
    return (config or source_config())["config"]["slot.name"]


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class SlotStatus:
    """What `make status` says about the slot; ``error`` states exit non-zero."""

    state: State
    slot: str
    detail: str
    wal_status: str | None = None
    retained_bytes: int | None = None
    safe_wal_size: int | None = None

    @property
    def error(self) -> bool:
        return self.state in ("missing", "lost", "foreign")

    def line(self) -> str:
        label = self.state.upper() if self.error else self.state
        return f"slot {self.slot}: {label} ({self.detail})"


def classify(
    row: dict[str, Any] | None, *, slot: str, database: str, registered: bool | None
) -> SlotStatus:
    """Name the state of ``slot`` from its pg_replication_slots row (None: no such slot).

    ``registered`` says whether the Debezium connector exists in Connect (None: unknown,
    Connect is not answering).
    """
    if row is None:
        if registered:
            return SlotStatus(
                "missing",
                slot,
                "the connector is registered but Postgres has no such slot: a new one starts "
                f"at the current WAL position, skipping every change since the old one; {FIX}",
            )
        why = "connector not registered" if registered is False else "Connect not answering"
        return SlotStatus("absent", slot, f"no slot yet, {why}")
    wal_status = row.get("wal_status")
    retained = row.get("retained_bytes")
    safe = row.get("safe_wal_size")
    facts = dict(wal_status=wal_status, retained_bytes=retained, safe_wal_size=safe)
    if row.get("database") != database or row.get("plugin") != "pgoutput":
        return SlotStatus(
            "foreign",
            slot,
            f"the slot belongs to database {row.get('database')!r}, plugin "
            f"{row.get('plugin')!r}, not {database!r} with pgoutput: Debezium cannot use it; "
            f"drop it or change slot.name in register-postgres.json",
            **facts,
        )
    if wal_status in ("lost", "unreserved") or row.get("restart_lsn") is None:
        when = "was removed" if wal_status != "unreserved" else "goes at the next checkpoint"
        return SlotStatus(
            "lost",
            slot,
            f"wal_status={wal_status}: WAL the connector still needs {when} "
            f"(max_slot_wal_keep_size), so those changes never reach Cassandra; {FIX}",
            **facts,
        )
    detail = f"wal_status={wal_status}, retains {size_text(retained)}"
    if safe is not None:
        detail += f", {size_text(safe)} more before it is lost"
    if not row.get("active"):
        detail += ", inactive"
    if registered is False:
        return SlotStatus(
            "unused",
            slot,
            f"{detail}; no connector uses it and it holds WAL until max_slot_wal_keep_size",
            **facts,
        )
    return SlotStatus("ok", slot, detail, **facts)


def slot_row(conn: Any, slot: str) -> dict[str, Any] | None:
    """The slot's row of pg_replication_slots (plus retained WAL in bytes), or None."""
    cur = conn.execute(SLOT_QUERY, [slot])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def slot_status(
    conn: Any, *, database: str, registered: bool | None, slot: str | None = None
) -> SlotStatus:
    """Classify the slot (default: register-postgres.json's) through a superuser connection."""
    slot = slot or slot_name()
    return classify(slot_row(conn, slot), slot=slot, database=database, registered=registered)


def should_drop_lost_slot(row: dict[str, Any] | None, snapshot_mode: str | None) -> bool:
    """Drop the slot by itself? Only a lost, idle slot, and only under when_needed.

    A lost slot can never stream again. With ``snapshot.mode=when_needed`` Debezium, on
    finding no slot, sees its offset is unavailable and snapshots every table before
    streaming from a new slot (BaseSourceTask.validateAndLoadSchemaHistory ->
    PostgresConnection.validateLogPosition -> WhenNeededSnapshotter.
    shouldSnapshotOnDataError); a task stuck polling the lost slot notices within 2 s.
    Under ``initial`` it would stream from the current LSN and skip the gap silently, so
    then the slot stays (and `make status` says LOST) until `make resnapshot`.
    """
    return (
        row is not None
        and row.get("wal_status") == "lost"
        and not row.get("active")
        and snapshot_mode == "when_needed"
    )


def heal_lost_slot(
    connect_url: str,
    superuser: Callable[[], Any],
    say: Callable[[str], None],
    source: dict[str, Any] | None = None,
) -> bool:
    """The supervisor's check: drop a lost slot when the live connector snapshots when needed."""
    config = source or source_config()
    try:
        live = request("GET", f"{connect_url}/connectors/{config['name']}/config", timeout=5)
    except (ConnectError, OSError):
        return False
    slot = live.get("slot.name", slot_name(config))
    with superuser() as conn:
        row = slot_row(conn, slot)
        if not should_drop_lost_slot(row, live.get("snapshot.mode")):
            return False
        conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
    say(
        f"slot {slot}: dropped, it was lost (its WAL exceeded max_slot_wal_keep_size); "
        f"{config['name']} snapshots every table again (snapshot.mode=when_needed)"
    )
    return True


# --- recovery ---------------------------------------------------------------------------


def connector_state(connect_url: str, name: str) -> str | None:
    """RUNNING / PAUSED / STOPPED / FAILED / ..., or None if not registered."""
    try:
        status = request("GET", f"{connect_url}/connectors/{name}/status", timeout=10)
    except ConnectError as err:
        if err.status == 404:
            return None
        raise
    states = [status["connector"]["state"], *(t["state"] for t in status.get("tasks", []))]
    if "FAILED" in states:
        return "FAILED"
    if states[0] == "RUNNING" and not status.get("tasks"):
        return "UNASSIGNED"
    return states[0] if all(s == states[0] for s in states) else "/".join(states)


def snapshot_finished(offsets: list[dict[str, Any]]) -> bool:
    """True once Debezium's committed offset is past its initial snapshot.

    During the snapshot the offset carries ``"snapshot": "INITIAL"``; the last snapshot
    record sets ``last_snapshot_record``; streaming offsets have no ``snapshot`` key
    (debezium-connector-postgres PostgresOffsetContext.getOffset)::

        {"partition": {"server": "cap_stock"},
         "offset": {"lsn": 23412816, "lsn_commit": 23412816, "txId": 771, "ts_usec": ...}}
    """
    if not offsets:
        return False
    offset = offsets[0].get("offset") or {}
    if "snapshot" not in offset:
        return "lsn" in offset
    return bool(offset.get("last_snapshot_record")) or bool(offset.get("snapshot_completed"))


@dataclass
class Recovery:
    """The steps of `make resnapshot`, each safe to repeat; ``say`` prints progress.

    ``source`` is a register-postgres.json-shaped {"name", "config"} (default: that file),
    so a test's isolated connector and slot can be recovered the same way.
    """

    connect_url: str
    superuser: Callable[[], Any]  # () -> psycopg connection (autocommit)
    database: str
    say: Callable[[str], None] = print
    timeout: float = 120.0
    snapshot_timeout: float = 1800.0
    source: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.config = self.source or source_config()
        self.name: str = self.config["name"]
        self.slot = slot_name(self.config)
        self.url = f"{self.connect_url}/connectors/{self.name}"

    def check_config(self) -> None:
        mode = self.config["config"].get("snapshot.mode", "initial")
        if mode not in SNAPSHOTTING_MODES:
            raise RuntimeError(
                f"snapshot.mode={mode!r} in register-postgres.json never snapshots a connector "
                f"without offsets; set it to one of {sorted(SNAPSHOTTING_MODES)}"
            )

    def _wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not done after {timeout:.0f}s")
            time.sleep(1)

    def stop_connector(self) -> None:
        state = connector_state(self.connect_url, self.name)
        if state is None:
            self.say(f"{self.name}: not registered; registering it STOPPED")
            body = {"name": self.name, "config": self.config["config"], "initial_state": "STOPPED"}
            request("POST", f"{self.connect_url}/connectors", body)
        elif state != "STOPPED":
            self.say(f"{self.name}: {state}, stopping it")
            request("PUT", f"{self.url}/stop")
        self._wait(
            f"{self.name} STOPPED",
            lambda: connector_state(self.connect_url, self.name) == "STOPPED",
            self.timeout,
        )
        self.say(f"{self.name}: STOPPED")

    def drop_slot(self) -> None:
        """Drop the slot after ending any Debezium session left in the database.

        A task Connect gave up on (one stuck in Debezium's 30-minute slot poll) keeps its
        JDBC session and could recreate the slot from its old offset; ending it first
        leaves the new task alone with a fresh slot.
        """
        with self.superuser() as conn:
            ended = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE 'Debezium%%' AND pid <> pg_backend_pid() "
                "AND (datname = %s OR backend_type = 'walsender')",
                [self.database],
            ).fetchone()[0]
            if ended:
                self.say(f"postgres: ended {ended} leftover Debezium session(s)")
            row = slot_row(conn, self.slot)
            deadline = time.monotonic() + self.timeout
            while row is not None and row["active"]:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"slot {self.slot}: still in use by pid {row['active_pid']} after "
                        f"{self.timeout:.0f}s; is another connector streaming from it?"
                    )
                if time.monotonic() > deadline - self.timeout / 2:
                    conn.execute("SELECT pg_terminate_backend(%s)", [row["active_pid"]])
                time.sleep(1)
                row = slot_row(conn, self.slot)
            if row is None:
                self.say(f"slot {self.slot}: already gone")
                return
            conn.execute("SELECT pg_drop_replication_slot(%s)", [self.slot])
            self.say(f"slot {self.slot}: dropped (it was wal_status={row['wal_status']})")

    def reset_offsets(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                answer = request("DELETE", f"{self.url}/offsets")
                break
            except ConnectError as err:
                # Right after /stop the worker may not have applied STOPPED yet.
                if "STOPPED" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(1)
        self.say(f"{self.name}: offsets reset ({(answer or {}).get('message', 'done')})")

    def _running(self) -> bool:
        state = connector_state(self.connect_url, self.name)
        if state == "FAILED":
            status = request("GET", f"{self.url}/status")
            parts = [status["connector"], *status.get("tasks", [])]
            trace = next((p.get("trace", "") for p in parts if p["state"] == "FAILED"), "")
            raise RuntimeError(f"{self.name} FAILED:\n{trace[:2000]}")
        return state == "RUNNING"

    def resume(self) -> None:
        request("PUT", f"{self.url}/resume")
        self._wait(f"{self.name} RUNNING", self._running, self.timeout)
        self.say(f"{self.name}: RUNNING, taking a new snapshot")

    def wait_snapshot(self) -> None:
        began = time.monotonic()
        last_said = began

        def finished() -> bool:
            nonlocal last_said
            self._running()  # raises with the trace if the task failed
            offsets = request("GET", f"{self.url}/offsets").get("offsets", [])
            if snapshot_finished(offsets):
                return True
            if time.monotonic() - last_said >= 10:
                last_said = time.monotonic()
                self.say(f"{self.name}: snapshot running ({last_said - began:.0f}s)")
            return False

        self._wait(f"{self.name} snapshot", finished, self.snapshot_timeout)
        self.say(f"{self.name}: snapshot done in {time.monotonic() - began:.0f}s, streaming")

    def run(self) -> None:
        self.check_config()
        self.stop_connector()
        self.drop_slot()
        self.reset_offsets()
        self.resume()
        self.wait_snapshot()


def sink_group_and_topics() -> tuple[str, list[str]]:
    """The consumer group that writes Cassandra (CASSANDRA_SINK) and the topics it reads."""
    from stack import pipeline

    config = json.loads(pipeline.SINK_CONFIG.read_text())
    topics = [t.strip() for t in config["config"].get("topics", "").split(",") if t.strip()]
    if pipeline.sink_choice() == "datastax":
        return f"connect-{config['name']}", topics
    from cassandra_sink.runner import default_group_id

    return default_group_id(config["name"]), topics


def wait_sink_caught_up(bootstrap: str, timeout: float, say: Callable[[str], None] = print) -> None:
    """Wait until the sink has committed, on every partition, what the topics held now.

    Called once the snapshot is done: from then on every row Postgres holds is in the
    topics, so when the sink's group has committed past these end offsets, Cassandra
    has every one of them.
    """
    from stack.sink_progress import partitions_of, probe_consumer

    group, topics = sink_group_and_topics()
    probe = probe_consumer(bootstrap, group)
    try:
        partitions = partitions_of(probe, topics)
        targets = {
            (tp.topic, tp.partition): probe.get_watermark_offsets(tp, timeout=10)[1]
            for tp in partitions
        }
        began = time.monotonic()
        while True:
            committed = probe.committed(partitions, timeout=10)
            behind = sum(
                max(targets[(tp.topic, tp.partition)] - max(tp.offset, 0), 0) for tp in committed
            )
            if not behind:
                say(f"sink group {group}: caught up in {time.monotonic() - began:.0f}s")
                return
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"sink group {group}: still {behind} record(s) behind")
            say(f"sink group {group}: {behind} snapshot record(s) still to write")
            time.sleep(5)
    finally:
        probe.close()
