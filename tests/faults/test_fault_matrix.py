"""The fault matrix on the real native stack: each fault heals without a human, and
afterwards Cassandra holds exactly Postgres's rows (0 missing, 0 unexpected, 0 corrupted).

An isolated chain (own database, slot, topics, keyspace, sink group; see cdc_harness)
runs the committed connector settings while a producer writes into it from the exchange
simulator, with retention off. Each test injects one fault into a shared component
(Connect, Kafka, Postgres, Cassandra) while the producer runs, leaves the healing to the
stack's supervisor and the components' own retries, stops the producer (which must exit
0: nothing unstored) and then waits, bounded, for Cassandra to mirror Postgres.

The seconds each recovery took are printed (`pytest -s`) for README's Reliability table.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from capstock.simulator import Simulator, start_simulator

from stack.connect_api import request
from stack.pipeline import BIN, SupervisorProcess, pipeline_env
from stack.process import pid_alive, start_detached, stop_pid
from stack.replication import Recovery, connector_state, heal_lost_slot, slot_row, slot_status
from stack.services import Cassandra, Component, Connect, Kafka, Postgres
from tests.support.cdc_harness import CdcHarness, wait_for

pytestmark = pytest.mark.integration

# Bounded waits: a supervised restart, then the chain catching up.
HEAL_TIMEOUT = 180.0
MIRROR_TIMEOUT = 180.0
# How long a store stays away in the outage tests (the observed outages).
OUTAGE_SECONDS = 32.0


@pytest.fixture(scope="module")
def exchange() -> Iterator[Simulator]:
    sim = start_simulator(symbols=6, seed=5, trade_rate=5.0, history_minutes=5)
    yield sim
    sim.close()


@pytest.fixture(scope="module")
def chain(cdc_chain: CdcHarness, supervisor: SupervisorProcess) -> CdcHarness:
    """The isolated chain (tests/integration/conftest.py), with the supervisor watching."""
    return cdc_chain


class RunningProducer:
    """`cap-stock run` into the chain's database, fast job intervals, retention off."""

    def __init__(self, chain: CdcHarness, exchange: Simulator) -> None:
        self.log = chain.work_dir / "producer.log"
        env = {
            **pipeline_env(chain.settings),
            "POSTGRES_DB": chain.name,
            "BINANCE_API_URL": exchange.url,
            "UNIVERSE_SIZE": "4",
            "UNIVERSE_MIN_QUOTE_VOLUME": "0",
            "JOB_DEPTH_LEVELS": "5",
            "JOB_KLINES_SECONDS": "3",
            "JOB_TRADES_SECONDS": "3",
            "JOB_DEPTH_SECONDS": "5",
            "JOB_TICKER_SECONDS": "10",
            "JOB_PRICES_SECONDS": "3",
            "JOB_HEARTBEAT_SECONDS": "2",
            "JOB_RETENTION_HOURS": "0",
            "PRODUCER_SPOOL_DIR": str(chain.work_dir / "spool"),
        }
        self.pid = start_detached(
            [str(BIN / "cap-stock"), "run"], self.log, chain.work_dir / "producer.pid", env=env
        )

    def stop(self) -> int:
        """SIGTERM and the exit status (0: every fetched row was stored)."""
        os.kill(self.pid, signal.SIGTERM)
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


@pytest.fixture
def producer(chain: CdcHarness, exchange: Simulator) -> Iterator[RunningProducer]:
    running = RunningProducer(chain, exchange)
    time.sleep(8)  # some rows flowing before the fault
    yield running
    if pid_alive(running.pid):
        stop_pid(running.pid, what="producer", timeout=30)


def settle(chain: CdcHarness, producer: RunningProducer, session, began: float) -> None:  # type: ignore[no-untyped-def]
    """The producer stops having stored everything; Cassandra then mirrors Postgres."""
    time.sleep(10)  # rows written after the recovery must arrive too
    assert producer.stop() == 0, Path(producer.log).read_text()[-3000:]
    chain.wait_mirrored(session, MIRROR_TIMEOUT)
    print(f"\n  recovered and mirrored {time.monotonic() - began:.1f}s after the fault ended")


def wait_restarted(component: Component, old_pid: int) -> float:
    """The supervisor brings `component` back on a new pid; seconds it took."""
    began = time.monotonic()

    def back() -> bool:
        pid = component.pid()
        try:
            return bool(pid and pid != old_pid and component.healthy())
        except Exception:
            return False

    wait_for(back, HEAL_TIMEOUT, lambda: f"{component.name} not restarted by the supervisor")
    return time.monotonic() - began


def kill(component: Component) -> int:
    pid = component.pid()
    assert pid, f"{component.name} is not running"
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_connectors_running(chain: CdcHarness) -> None:
    def running() -> bool:
        try:
            connectors = Connect(chain.settings).connectors()
        except Exception:
            return False
        wanted = [connectors.get(n) for n in (chain.source_name, chain.sink_name)]
        return all(
            c
            and c["status"]["connector"]["state"] == "RUNNING"
            and c["status"]["tasks"]
            and all(t["state"] == "RUNNING" for t in c["status"]["tasks"])
            for c in wanted
        )

    wait_for(running, HEAL_TIMEOUT, lambda: "connectors not RUNNING again")


def test_connect_killed_is_restarted_and_loses_nothing(
    chain, producer, cassandra_session, supervisor: SupervisorProcess
) -> None:
    connect = Connect(chain.settings)
    old = kill(connect)
    print(f"\n  connect back after {wait_restarted(connect, old):.1f}s")
    wait_connectors_running(chain)
    settle(chain, producer, cassandra_session, time.monotonic())


def test_kafka_killed_is_restarted_and_loses_nothing(
    chain, producer, cassandra_session, supervisor: SupervisorProcess
) -> None:
    kafka = Kafka(chain.settings)
    old = kill(kafka)
    print(f"\n  kafka back after {wait_restarted(kafka, old):.1f}s")
    wait_connectors_running(chain)
    settle(chain, producer, cassandra_session, time.monotonic())


def outage(component: Component, seconds: float) -> float:
    """Stop a store on purpose (the supervisor leaves a stopped component alone), keep it
    away, start it again; returns when it is healthy."""
    component.stop()
    time.sleep(seconds)
    component.start()
    return time.monotonic()


def test_postgres_outage_heals_debezium_without_a_restart_by_hand(
    chain, producer, cassandra_session, supervisor: SupervisorProcess
) -> None:
    ended = outage(Postgres(chain.settings), OUTAGE_SECONDS)
    wait_connectors_running(chain)
    print(f"\n  connectors RUNNING {time.monotonic() - ended:.1f}s after postgres returned")
    settle(chain, producer, cassandra_session, ended)


def test_cassandra_outage_heals_the_sink(
    chain, producer, cassandra_session, supervisor: SupervisorProcess
) -> None:
    ended = outage(Cassandra(chain.settings), OUTAGE_SECONDS)
    settle(chain, producer, cassandra_session, ended)


def test_python_sink_killed_and_restarted_resumes_at_once(
    chain, producer, cassandra_session
) -> None:
    keyspace = f"{chain.name}_py"
    chain.start_python_sink(keyspace, cassandra_session)
    chain.wait_mirrored(cassandra_session, MIRROR_TIMEOUT, keyspace)
    os.kill(chain.python_sink_pid, signal.SIGKILL)
    chain.python_sink_pid = None
    time.sleep(3)
    restarted = time.monotonic()
    chain.start_python_sink(keyspace, cassandra_session)
    time.sleep(5)
    assert producer.stop() == 0
    took = chain.wait_mirrored(cassandra_session, MIRROR_TIMEOUT, keyspace)
    # Static membership: the new member takes the dead one's place, no session timeout.
    print(f"\n  python sink mirrored {time.monotonic() - restarted:.1f}s after its restart")
    assert took < MIRROR_TIMEOUT
    chain.stop_python_sink()


def test_producer_sigterm_during_a_postgres_outage_spools_and_exits_non_zero(
    chain, exchange, cassandra_session
) -> None:
    running = RunningProducer(chain, exchange)
    time.sleep(6)
    postgres = Postgres(chain.settings)
    postgres.stop()
    try:
        time.sleep(15)  # fetches go on; writes spool after PRODUCER_SPOOL_AFTER_SECONDS
        code = running.stop()
    finally:
        postgres.start()
    log = Path(running.log).read_text()
    assert code == 3, log[-3000:]  # EXIT_SPOOLED: stopped with rows kept for the next start
    spooled = list((chain.work_dir / "spool").glob("*.jsonl"))
    assert spooled, log[-3000:]
    # The next start replays them; then both stores agree.
    replay = subprocess.run(
        [str(BIN / "cap-stock"), "once"],
        env={
            **pipeline_env(chain.settings),
            "POSTGRES_DB": chain.name,
            "BINANCE_API_URL": exchange.url,
            "UNIVERSE_SIZE": "4",
            "UNIVERSE_MIN_QUOTE_VOLUME": "0",
            "JOB_RETENTION_HOURS": "0",
            "PRODUCER_SPOOL_DIR": str(chain.work_dir / "spool"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert not list((chain.work_dir / "spool").glob("*.jsonl"))
    chain.wait_mirrored(cassandra_session, MIRROR_TIMEOUT)


# -- a lost replication slot ---------------------------------------------------------------


def lose_the_slot(chain: CdcHarness) -> None:
    """Stop the chain's source, cap the WAL a slot may hold at 1 MB and push WAL past it
    while the producer keeps writing, until Postgres invalidates the slot; then lift the
    cap again. What a long Connect outage does to a busy database."""
    request("PUT", f"{chain.settings.connect_url}/connectors/{chain.source_name}/stop")
    wait_for(
        lambda: connector_state(chain.settings.connect_url, chain.source_name) == "STOPPED",
        HEAL_TIMEOUT,
        lambda: f"{chain.source_name} not STOPPED",
    )
    postgres = Postgres(chain.settings)
    with postgres.superuser_connection() as conn:
        conn.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        conn.execute("SELECT pg_reload_conf()")
        try:

            def lost() -> bool:
                time.sleep(1)  # the producer writes in between
                for _ in range(3):
                    conn.execute("SELECT pg_switch_wal()")
                    time.sleep(0.3)
                conn.execute("CHECKPOINT")
                row = slot_row(conn, chain.name)
                return bool(row and row["wal_status"] == "lost")

            wait_for(lost, HEAL_TIMEOUT, lambda: f"slot {chain.name} never lost")
        finally:
            conn.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            conn.execute("SELECT pg_reload_conf()")
        status = slot_status(conn, database=chain.name, registered=True, slot=chain.name)
    # What `make status` prints (and fails on).
    assert status.state == "lost" and status.error, status.line()
    assert "make resnapshot" in status.line()


def test_a_lost_slot_is_dropped_by_the_supervisor_check_and_debezium_snapshots_again(
    chain, producer, cassandra_session
) -> None:
    lose_the_slot(chain)
    postgres = Postgres(chain.settings)
    said: list[str] = []
    # The supervisor's periodic check, pointed at the chain's connector.
    assert heal_lost_slot(
        chain.settings.connect_url,
        postgres.superuser_connection,
        said.append,
        source=chain.source_document(),
    )
    assert "snapshots every table again" in "\n".join(said)
    request("PUT", f"{chain.settings.connect_url}/connectors/{chain.source_name}/resume")
    wait_connectors_running(chain)
    settle(chain, producer, cassandra_session, time.monotonic())


def test_make_resnapshot_recovers_a_lost_slot(chain, producer, cassandra_session) -> None:
    lose_the_slot(chain)
    postgres = Postgres(chain.settings)
    began = time.monotonic()
    said: list[str] = []
    Recovery(
        chain.settings.connect_url,
        postgres.superuser_connection,
        chain.name,
        say=said.append,
        timeout=HEAL_TIMEOUT,
        snapshot_timeout=HEAL_TIMEOUT,
        source=chain.source_document(),
    ).run()
    assert any("snapshot done" in line for line in said), said
    with postgres.superuser_connection() as conn:
        status = slot_status(conn, database=chain.name, registered=True, slot=chain.name)
    assert status.state == "ok", status.line()
    settle(chain, producer, cassandra_session, began)
