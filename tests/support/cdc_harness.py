"""An isolated copy of the whole CDC chain for end-to-end tests and the benchmark.

It registers the committed connector settings (register-postgres.json and the
generated sink config) with only their *names* changed: its own database, slot,
publication, topic prefix, keyspace and consumer group. So tests prove the real
configuration without touching the pipeline's own data (or a running `make demo`).

The sink is the default one: the DataStax sink engine inside Kafka Connect, registered
through connect_connectors.sh like `make demo` does. `start_python_sink` runs the
Python alternative instead (or beside it, into another keyspace).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from capstock.cdc.connectors import SOURCE_CONFIG, dead_letter_topic, sink_document, topic_for
from capstock.history.schema import KeyspaceOptions, access_cql, apply_schema
from capstock.model.tables import TABLES, Table
from capstock.staging.writer import Access, PostgresWriter
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from psycopg import sql

from stack.connect_api import delete_connector, request
from stack.pipeline import BIN, pipeline_env
from stack.process import start_detached, stop_pid
from stack.services import Postgres
from stack.settings import REPO_ROOT, StackSettings


def wait_for(check: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    """Poll check() every half second; fail with describe() when time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not reached within {timeout:.0f}s: {describe()}")


def normalise(value: Any) -> Any:
    """One comparable form for a value read from either store.

    Decimals compare by their text (same digits and same scale); timestamps to the
    millisecond in UTC (Cassandra's precision); everything else as it is.
    """
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        utc = aware.astimezone(UTC)
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000, tzinfo=None)
    if isinstance(value, date):
        return value
    if hasattr(value, "date") and callable(value.date):  # cassandra.util.Date
        return value.date()
    return value


def drop_slot(settings: StackSettings, slot: str, timeout: float = 30.0) -> None:
    """Drop a test's replication slot once its deleted connector's task let go of it."""
    deadline = time.monotonic() + timeout
    with Postgres(settings).superuser_connection() as conn:
        while True:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", [slot]
            ).fetchone()
            if row is None:
                return
            if not row[0] or time.monotonic() > deadline:
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                return
            time.sleep(0.5)


def create_pipeline_keyspace(settings: StackSettings, admin_session, keyspace: str) -> None:  # type: ignore[no-untyped-def]
    """The pipeline's tables in `keyspace`, with the same grants cassandra-setup gives
    (the sinks log in as the pipeline role, which may write only where it was granted)."""
    apply_schema(admin_session, KeyspaceOptions(name=keyspace))
    for statement in access_cql(keyspace, settings.cassandra_user, settings.cassandra_reader_user):
        admin_session.execute(statement, timeout=30)


def delete_topics(bootstrap: str, topics: list[str], rounds: int = 3) -> None:
    """Delete, then look again a few seconds later: a connector's task that is still
    stopping can fetch metadata for its topic, which the broker then creates again."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    left = list(topics)
    for _ in range(rounds):
        for future in admin.delete_topics(left, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # never created: nothing to delete
                future.result()
        time.sleep(3)
        existing = admin.list_topics(timeout=10).topics
        left = [t for t in left if t in existing]
        if not left:
            return


@dataclass
class CdcHarness:
    settings: StackSettings
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    work_dir: Path = field(default_factory=lambda: Path("/tmp"))
    python_sink_pid: int | None = None
    python_keyspace: str | None = None

    @property
    def name(self) -> str:
        return f"e2e_{self.suffix}"

    @property
    def conninfo(self) -> str:
        return self.settings.postgres_conninfo(dbname=self.name)

    @property
    def source_name(self) -> str:
        return f"e2e-source-{self.suffix}"

    @property
    def sink_name(self) -> str:
        return f"e2e-sink-{self.suffix}"

    @property
    def sink_group(self) -> str:
        return f"connect-{self.sink_name}"

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.name)

    def topic(self, table: Table) -> str:
        return topic_for(table, self.name)

    # -- set-up ------------------------------------------------------------------------

    def source_document(self) -> dict:
        document = json.loads(SOURCE_CONFIG.read_text())
        config = document["config"]
        config.update(
            {
                "database.dbname": self.name,
                "slot.name": self.name,
                "publication.name": f"{self.name}_pub",
                "topic.prefix": self.name,
            }
        )
        return {"name": self.source_name, "config": config}

    def sink_document(self) -> dict:
        document = sink_document(keyspace=self.name, prefix=self.name)
        document["name"] = self.sink_name
        return document

    def create_stores(self, cassandra_session) -> None:  # type: ignore[no-untyped-def]
        with Postgres(self.settings).superuser_connection() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.name), sql.Identifier(self.settings.postgres_user)
                )
            )
        writer = PostgresWriter(self.conninfo)
        s = self.settings
        try:
            writer.init_schema(
                access=Access(f"{self.name}_pub", s.postgres_cdc_user, s.postgres_reader_user)
            )
        finally:
            writer.close()
        self.create_keyspace(cassandra_session, self.name)

    def create_keyspace(self, admin_session, keyspace: str) -> None:  # type: ignore[no-untyped-def]
        create_pipeline_keyspace(self.settings, admin_session, keyspace)

    def register(self, document: dict) -> None:
        """Through the user-facing script, like `make demo` does (its progress lines on
        stderr: a benchmark's results are its stdout)."""
        path = self.work_dir / f"{document['name']}.json"
        path.write_text(json.dumps(document))
        env = {**os.environ, **pipeline_env(self.settings)}
        subprocess.run(
            ["bash", str(REPO_ROOT / "connect_connectors.sh"), str(path)],
            env=env,
            stdout=2,  # the file descriptor of stderr (whatever sys.stderr is)
            check=True,
            timeout=300,
        )

    def register_source(self) -> None:
        self.register(self.source_document())

    def start_sink(self) -> None:
        self.register(self.sink_document())

    def stop_sink(self) -> None:
        delete_connector(self.settings.connect_url, self.sink_name)

    @property
    def python_sink_group(self) -> str:
        return f"python-{self.sink_name}"

    @property
    def python_dead_letter_topic(self) -> str:
        return f"{self.dead_letter_topic}.python"

    def start_python_sink(self, keyspace: str, cassandra_session) -> None:  # type: ignore[no-untyped-def]
        """cap-stock-sink on the same topics, into a keyspace of its own (created here),
        with its own consumer group and dead-letter topic."""
        self.create_keyspace(cassandra_session, keyspace)
        self.python_keyspace = keyspace
        document = sink_document(keyspace=keyspace, prefix=self.name)
        document["name"] = f"{self.sink_name}-python"
        document["config"]["errors.deadletterqueue.topic.name"] = self.python_dead_letter_topic
        path = self.work_dir / f"{document['name']}.json"
        path.write_text(json.dumps(document))
        self.sink_log = self.work_dir / f"{document['name']}.log"
        self.python_sink_pid = start_detached(
            [
                str(BIN / "cap-stock-sink"),
                "--config",
                str(path),
                "--group-id",
                self.python_sink_group,
            ],
            self.sink_log,
            self.work_dir / f"{document['name']}.pid",
            env=pipeline_env(self.settings),
        )

    def stop_python_sink(self) -> None:
        if self.python_sink_pid:
            stop_pid(self.python_sink_pid, what="python sink", timeout=30)
            self.python_sink_pid = None

    def producer_env(self, api_url: str, **env: str) -> dict[str, str]:
        """The producer's environment against this chain's database and ``api_url``."""
        return {
            **os.environ,
            **pipeline_env(self.settings),
            "POSTGRES_DB": self.name,
            "BINANCE_API_URL": api_url,
            "UNIVERSE_SIZE": "4",
            "UNIVERSE_MIN_QUOTE_VOLUME": "0",
            "JOB_DEPTH_LEVELS": "5",
            # Its own spool: the stack's belongs to the service user.
            "PRODUCER_SPOOL_DIR": str(self.work_dir / "spool"),
            **env,
        }

    def run_producer(self, api_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "cap-stock"), *(args or ("once",))],
            env=self.producer_env(api_url, **env),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def start_producer(self, api_url: str, log_file: Path, **env: str) -> subprocess.Popen:
        """`cap-stock run` in the background (stop it with SIGTERM), output to log_file."""
        with log_file.open("a") as out:
            return subprocess.Popen(
                [str(BIN / "cap-stock"), "run"],
                env=self.producer_env(api_url, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def teardown(self, cassandra_session) -> None:  # type: ignore[no-untyped-def]
        self.stop_sink()
        self.stop_python_sink()
        delete_connector(self.settings.connect_url, self.source_name)
        drop_slot(self.settings, self.name)
        with Postgres(self.settings).superuser_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )
        for keyspace in {self.name, self.python_keyspace or self.name}:
            cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        topics = [self.topic(t) for t in TABLES.values()]
        topics += [
            self.dead_letter_topic,
            self.python_dead_letter_topic,
            f"__debezium-heartbeat.{self.name}",
        ]
        delete_topics(self.settings.kafka_bootstrap, topics)

    # -- reading both stores -----------------------------------------------------------

    def postgres_rows(self, table: Table) -> dict[tuple, dict]:
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.column_names)
        query = sql.SQL("SELECT {} FROM {}").format(columns, sql.Identifier(table.name))
        with psycopg.connect(self.conninfo) as conn:
            rows = conn.execute(query).fetchall()
        return self._keyed(table, [dict(zip(table.column_names, r, strict=True)) for r in rows])

    def cassandra_rows(
        self, session, table: Table, keyspace: str | None = None
    ) -> dict[tuple, dict]:  # type: ignore[no-untyped-def]
        # A fresh keyspace with a few hundred rows: a full scan is fine in a test.
        result = session.execute(
            f"SELECT {', '.join(table.column_names)} FROM {keyspace or self.name}.{table.name}",
            timeout=30,
        )
        return self._keyed(table, [r._asdict() for r in result])

    def mirror_report(self, session, keyspace: str | None = None) -> dict[str, tuple[int, ...]]:  # type: ignore[no-untyped-def]
        """Per table, Cassandra against Postgres: (missing, unexpected, corrupted) rows."""
        report: dict[str, tuple[int, ...]] = {}
        self.first_difference: dict[str, tuple] = {}
        for table in TABLES.values():
            expected = self.postgres_rows(table)
            actual = self.cassandra_rows(session, table, keyspace)
            missing = sum(k not in actual for k in expected)
            unexpected = sum(k not in expected for k in actual)
            differing = [k for k, row in expected.items() if k in actual and actual[k] != row]
            if differing:
                key = differing[0]
                self.first_difference[table.name] = (expected[key], actual[key])
            report[table.name] = (missing, unexpected, len(differing))
        return report

    def wait_mirrored(self, session, timeout: float, keyspace: str | None = None) -> float:  # type: ignore[no-untyped-def]
        """Wait until Cassandra holds exactly Postgres's rows; return the seconds it took."""
        began = time.monotonic()
        state: dict = {}

        def mirrored() -> bool:
            state["report"] = self.mirror_report(session, keyspace)
            return all(counts == (0, 0, 0) for counts in state["report"].values())

        wait_for(
            mirrored,
            timeout,
            lambda: (
                f"(missing, unexpected, corrupted) per table: {state.get('report')}; "
                f"first differing (postgres, cassandra): {self.first_difference}"
            ),
        )
        return time.monotonic() - began

    @staticmethod
    def _keyed(table: Table, rows: list[dict]) -> dict[tuple, dict]:
        keyed = {}
        for row in rows:
            clean = {k: normalise(v) for k, v in row.items()}
            keyed[tuple(clean[k] for k in table.cassandra_primary_key)] = clean
        return keyed

    def kafka_end_offsets(self, table: Table) -> int:
        """Total events ever written to a table's topic (0 if it has none)."""
        consumer = Consumer(
            {"bootstrap.servers": self.settings.kafka_bootstrap, "group.id": "e2e-probe"}
        )
        try:
            metadata = consumer.list_topics(self.topic(table), timeout=10)
            partitions = metadata.topics[self.topic(table)].partitions
            total = 0
            for p in partitions:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic(table), p), timeout=10
                )
                total += max(high, 0)
            return total
        finally:
            consumer.close()

    def sink_committed(self, table: Table, group: str | None = None) -> int:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": group or self.sink_group,
            }
        )
        try:
            committed = consumer.committed([TopicPartition(self.topic(table), 0)], timeout=10)
            return max(committed[0].offset, 0)
        finally:
            consumer.close()

    def produce(self, table: Table, values: list[bytes]) -> list[int]:
        """Write raw records straight into a table's topic, in order; return their offsets."""
        offsets: list[int] = []
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap})
        for value in values:
            producer.produce(
                self.topic(table),
                value=value,
                on_delivery=lambda err, msg: offsets.append(msg.offset()) if not err else None,
            )
            producer.flush(10)  # one at a time keeps the offsets in list order
        assert len(offsets) == len(values), "not every record was delivered"
        return offsets

    def dead_letters(self, topic: str) -> list[dict[str, str]]:
        """Every record in a dead-letter topic: its headers and its value, as text."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": "dead-letter-probe",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            found = []
            while (msg := consumer.poll(3)) is not None:
                if msg.error():
                    continue
                headers = {k: (v or b"").decode() for k, v in msg.headers() or []}
                found.append({**headers, "value": (msg.value() or b"").decode()})
            return found
        finally:
            consumer.close()

    def sink_output(self) -> str:
        """The sink connector's status and its recent lines in connect.log (plus the
        Python sink's log when one ran)."""
        try:
            status = request(
                "GET", f"{self.settings.connect_url}/connectors/{self.sink_name}/status"
            )
        except Exception as err:  # the status is only context for a failure message
            status = f"(no status: {err})"
        connect_log = self.settings.log_dir / "connect.log"
        lines = (
            [
                line
                for line in connect_log.read_text(errors="replace").splitlines()[-5000:]
                if self.sink_name in line or "io.capstock" in line
            ]
            if connect_log.exists()
            else []
        )
        text = f"sink status: {status}\nconnect.log:\n" + "\n".join(lines[-30:])
        python_log = getattr(self, "sink_log", None)
        if python_log and python_log.exists():
            text += f"\npython sink:\n{python_log.read_text()[-3000:]}"
        return text
