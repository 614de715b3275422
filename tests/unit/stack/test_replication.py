"""Replication slot states as `make status` names them, and the recovery's preconditions.

Rows are shaped like PostgreSQL 15's pg_replication_slots (stack.replication.SLOT_QUERY);
the lost one is what a slot looks like after max_slot_wal_keep_size invalidated it.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from stack import replication
from stack.replication import SNAPSHOTTING_MODES, Recovery, classify, snapshot_finished
from tests.support.http_fakes import JsonHandler

SLOT = "cap_stock_debezium"
DB = "cap_stock_db"


def row(**changes: Any) -> dict[str, Any]:
    healthy = {
        "slot_name": SLOT,
        "plugin": "pgoutput",
        "database": DB,
        "active": True,
        "active_pid": 4242,
        "wal_status": "reserved",
        "safe_wal_size": 2 * 1024**3 - 56,
        "restart_lsn": "0/15007B8",
        "confirmed_flush_lsn": "0/15007F0",
        "retained_bytes": 56,
    }
    return {**healthy, **changes}


LOST = row(
    active=False,
    active_pid=None,
    wal_status="lost",
    safe_wal_size=None,
    restart_lsn=None,
    retained_bytes=None,
)


def status(r: dict[str, Any] | None, registered: bool | None = True) -> replication.SlotStatus:
    return classify(r, slot=SLOT, database=DB, registered=registered)


@pytest.mark.parametrize("wal_status", ["reserved", "extended"])
def test_a_slot_that_keeps_its_wal_is_ok(wal_status: str) -> None:
    s = status(row(wal_status=wal_status, retained_bytes=3 * 1024**2))
    assert s.state == "ok" and not s.error
    assert f"wal_status={wal_status}" in s.line()
    assert "3.0 MiB" in s.line()


def test_a_lost_slot_is_an_error_that_names_the_fix() -> None:
    s = status(LOST)
    assert s.state == "lost" and s.error
    assert "LOST" in s.line() and "make resnapshot" in s.line()
    assert s.retained_bytes is None


def test_unreserved_is_treated_as_lost() -> None:
    # Its WAL goes at the next checkpoint unless Debezium catches up first.
    s = status(row(wal_status="unreserved", safe_wal_size=-1024))
    assert s.state == "lost" and s.error
    assert "next checkpoint" in s.detail


def test_a_slot_without_restart_lsn_is_lost_whatever_wal_status_says() -> None:
    # Debezium polls such a slot for 30 minutes ("concurrent tx probably blocks ...").
    assert status(row(restart_lsn=None)).state == "lost"


def test_no_slot_for_a_registered_connector_is_missing() -> None:
    s = status(None, registered=True)
    assert s.state == "missing" and s.error
    assert "make resnapshot" in s.line()


@pytest.mark.parametrize("registered", [False, None])
def test_no_slot_and_no_connector_is_not_an_error(registered: bool | None) -> None:
    s = status(None, registered=registered)
    assert s.state == "absent" and not s.error


def test_a_slot_nobody_uses_is_reported_but_not_an_error() -> None:
    s = status(row(active=False), registered=False)
    assert s.state == "unused" and not s.error
    assert "inactive" in s.detail


@pytest.mark.parametrize("changes", [{"database": "postgres"}, {"plugin": "test_decoding"}])
def test_a_slot_of_that_name_debezium_cannot_use_is_an_error(changes: dict[str, str]) -> None:
    s = status(row(**changes))
    assert s.state == "foreign" and s.error


def test_size_text_picks_a_readable_unit() -> None:
    assert replication.size_text(None) == "-"
    assert replication.size_text(512) == "512 B"
    assert replication.size_text(5 * 1024**2) == "5.0 MiB"
    assert replication.size_text(2 * 1024**3) == "2.0 GiB"


# Offsets as GET /connectors/<name>/offsets returns them (PostgresOffsetContext.getOffset).
PARTITION = {"server": "cap_stock"}
DURING = {
    "last_snapshot_record": False,
    "lsn": 23412816,
    "txId": 771,
    "ts_usec": 1763761622466000,
    "snapshot": "INITIAL",
    "snapshot_completed": False,
}
LAST_SNAPSHOT_RECORD = {**DURING, "last_snapshot_record": True}
STREAMING = {"lsn_proc": 23413904, "lsn_commit": 23413904, "lsn": 23413904, "txId": 772}


@pytest.mark.parametrize(
    ("offsets", "finished"),
    [
        ([], False),
        ([{"partition": PARTITION, "offset": DURING}], False),
        ([{"partition": PARTITION, "offset": LAST_SNAPSHOT_RECORD}], True),
        ([{"partition": PARTITION, "offset": STREAMING}], True),
    ],
)
def test_snapshot_finished_reads_debezium_offsets(offsets: list, finished: bool) -> None:
    assert snapshot_finished(offsets) is finished


def test_the_committed_source_config_lets_the_recovery_snapshot() -> None:
    config = replication.source_config()["config"]
    assert replication.slot_name() == config["slot.name"]
    assert config.get("snapshot.mode", "initial") in SNAPSHOTTING_MODES


@pytest.mark.parametrize("mode", ["no_data", "never", "initial_only"])
def test_the_recovery_refuses_a_mode_that_would_not_snapshot(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = replication.source_config()
    config["config"]["snapshot.mode"] = mode
    monkeypatch.setattr(replication, "source_config", lambda: config)
    recovery = Recovery("http://127.0.0.1:9", lambda: None, DB, say=lambda _: None)
    with pytest.raises(RuntimeError, match="never snapshots"):
        recovery.check_config()


def test_the_fix_is_a_make_target() -> None:
    makefile = (replication.REPO_ROOT / "Makefile").read_text()
    assert "\nresnapshot:" in makefile
    assert "make resnapshot" in replication.FIX


# -- the recovery against a stand-in for Connect's REST API ---------------------------------


class _FakeConnect(JsonHandler):
    """Just enough of Kafka Connect 3.9 for one Debezium connector.

    /stop takes effect one status read later (as in a real worker), offsets can only be
    reset while STOPPED, and after /resume the snapshot's offset turns into a streaming
    one after two offset reads.
    """

    state: ClassVar[dict[str, Any]] = {}
    calls: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        st = self.state
        if self.path.endswith("/status"):
            if st["state"] is None:
                return self.answer(404, {"message": "not found"})
            if st["pending"]:
                st["state"], st["pending"] = st["pending"], None
            tasks = [] if st["state"] == "STOPPED" else [{"id": 0, "state": st["state"]}]
            return self.answer(200, {"connector": {"state": st["state"]}, "tasks": tasks})
        st["reads"] += 1
        offset = dict(STREAMING) if st["reads"] > 2 else dict(DURING)
        offsets = [{"partition": PARTITION, "offset": offset}] if st["has_offsets"] else []
        return self.answer(200, {"offsets": offsets})

    def do_PUT(self) -> None:
        self.calls.append(f"PUT {self.path.rsplit('/', 1)[-1]}")
        if self.path.endswith("/stop"):
            self.state["pending"] = "STOPPED"
        else:
            self.state.update(state="RUNNING", reads=0, has_offsets=True)
        self.answer(202, None)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.calls.append(f"POST {body.get('initial_state')}")
        self.state["state"] = body["initial_state"]
        self.answer(201, {"name": body["name"]})

    def do_DELETE(self) -> None:
        self.calls.append("DELETE offsets")
        if self.state["state"] != "STOPPED":
            message = "Connectors must be in the STOPPED state before their offsets can be modified"
            return self.answer(400, {"message": message})
        self.state["has_offsets"] = False
        return self.answer(200, {"message": "The offsets for this connector have been reset"})


class _Postgres:
    """A superuser connection that only knows the slot (a dict) and records statements."""

    def __init__(self, slots: dict[str, dict[str, Any]], statements: list[str]) -> None:
        self.slots, self.statements = slots, statements

    def __enter__(self) -> _Postgres:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def execute(self, query: str, params: list[Any]) -> Any:
        self.statements.append(query.split("(")[0].split()[-1])
        if "pg_drop_replication_slot" in query:
            self.slots.pop(params[0])
        return SimpleNamespace(fetchone=lambda: (0,))


@pytest.fixture
def connect_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeConnect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("registered", [True, False])
def test_recovery_stops_drops_resets_resumes_and_waits_and_can_run_again(
    connect_url: str, registered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    _FakeConnect.state.clear()
    _FakeConnect.state.update(
        state="RUNNING" if registered else None, pending=None, reads=0, has_offsets=registered
    )
    _FakeConnect.calls.clear()
    slots = {SLOT: LOST}
    statements: list[str] = []
    monkeypatch.setattr(replication, "slot_row", lambda conn, name: conn.slots.get(name))
    monkeypatch.setattr(time, "sleep", lambda _: None)
    said: list[str] = []
    recovery = Recovery(connect_url, lambda: _Postgres(slots, statements), DB, say=said.append)

    recovery.run()

    first = "PUT stop" if registered else "POST STOPPED"
    assert _FakeConnect.calls == [first, "DELETE offsets", "PUT resume"]
    assert slots == {} and "pg_drop_replication_slot" in statements
    assert _FakeConnect.state["state"] == "RUNNING" and _FakeConnect.state["reads"] > 2
    assert any("snapshot done" in line for line in said)

    recovery.run()  # again, with the slot already gone: same end state, no error
    assert any("already gone" in line for line in said)


@pytest.mark.parametrize(
    ("slot_row", "mode", "drop"),
    [
        (LOST, "when_needed", True),
        (LOST, "initial", False),  # Debezium would skip the gap silently: leave it to a human
        ({**LOST, "active": True}, "when_needed", False),
        (row(wal_status="unreserved"), "when_needed", False),  # not gone yet
        (row(), "when_needed", False),
        (None, "when_needed", False),
    ],
)
def test_only_a_lost_idle_slot_under_when_needed_is_dropped_automatically(
    slot_row: dict[str, Any] | None, mode: str, drop: bool
) -> None:
    assert replication.should_drop_lost_slot(slot_row, mode) is drop
