"""The producer with Postgres down (a closed port): every batch is spooled, nothing is lost,
and the exit status says rows are waiting. Replay into a real Postgres is tested in
tests/integration/test_spool_replay.py."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal

from capstock.cli import EXIT_SPOOLED
from capstock.config import (
    BinanceSettings,
    JobSettings,
    LogSettings,
    PostgresSettings,
    Settings,
    SpoolSettings,
    UniverseSettings,
    load,
)
from capstock.ingest.runner import build_producer, run_once
from capstock.model.tables import TABLES
from capstock.staging.spool import Spool

PRODUCER_PREFIXES = ("POSTGRES_", "BINANCE_", "UNIVERSE_", "JOB_", "LOG_", "PRODUCER_")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spooled_tables(directory) -> set[str]:
    if not directory.exists():
        return set()
    return {p.name.split("-", 1)[1].removesuffix(".jsonl") for p in Spool(directory).files()}


def test_once_with_postgres_down_spools_every_table_and_exits_3(simulator_url, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="capstock")
    port = closed_port()
    settings = Settings(
        postgres=load(PostgresSettings, port=port, password="x", connect_timeout=1),
        binance=load(BinanceSettings, api_url=simulator_url),
        universe=load(UniverseSettings, size=3, min_quote_volume=Decimal(0)),
        jobs=load(JobSettings),
        log=load(LogSettings),
        spool=load(SpoolSettings, dir=tmp_path / "spool", after_seconds=0.5),
    )
    producer = build_producer(settings)
    assert run_once(producer) == EXIT_SPOOLED
    assert spooled_tables(tmp_path / "spool") == set(TABLES)
    spool = Spool(tmp_path / "spool")
    batches = [spool.read(p) for p in spool.files()]
    assert {b.target for b in batches} == {f"127.0.0.1:{port}/cap_stock_db"}
    rows = sum(len(b.rows) for b in batches)
    assert f"spooled 3 rows of top_24hr to {tmp_path / 'spool'}" in caplog.text
    assert (
        f"producer stopped with {rows} rows not yet in postgres: they are safe in "
        f"{len(batches)} files" in caplog.text
    )
    assert "will be written on the next start (exit 3)" in caplog.records[-1].getMessage()


def run_until_every_table_is_spooled(tmp_path, settings: dict[str, str]) -> tuple[int, str]:
    """`cap-stock run` against a closed Postgres port with ``settings``, until every
    table has a spool file, then SIGTERM: (exit status, its log)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((*PRODUCER_PREFIXES, "INGEST_")) and k != "STACK_HOME"
    }
    env.update(
        {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(closed_port()),
            "POSTGRES_PASSWORD": "x",
            "POSTGRES_CONNECT_TIMEOUT": "1",
            "UNIVERSE_SIZE": "3",
            "UNIVERSE_MIN_QUOTE_VOLUME": "0",
            "JOB_HEARTBEAT_SECONDS": "1",
            "PRODUCER_SPOOL_DIR": str(tmp_path / "spool"),
            "PRODUCER_SPOOL_AFTER_SECONDS": "1",
            **settings,
        }
    )
    log_file = tmp_path / "producer.log"
    with log_file.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "capstock.cli", "run"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while spooled_tables(tmp_path / "spool") != set(TABLES):
                assert run.poll() is None, log_file.read_text()
                assert time.monotonic() < deadline, (
                    spooled_tables(tmp_path / "spool"),
                    log_file.read_text(),
                )
                time.sleep(0.2)
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=60)
        finally:
            if run.poll() is None:
                run.kill()
    return run.returncode, log_file.read_text()


def test_sigterm_during_a_postgres_outage_exits_3_and_keeps_the_rows(simulator_url, tmp_path):
    status, text = run_until_every_table_is_spooled(tmp_path, {"BINANCE_API_URL": simulator_url})
    assert status == EXIT_SPOOLED, text
    assert "signal=SIGTERM received" in text and "Traceback" not in text
    assert "(postgres unreachable)" in text
    assert "will be written on the next start (exit 3)" in text.strip().splitlines()[-1]
    spool = Spool(tmp_path / "spool")
    assert all(spool.read(p).rows for p in spool.files())


def test_stream_mode_with_postgres_down_spools_every_table_and_exits_3(simulator, tmp_path):
    """`cap-stock run` with INGEST_MODE=stream: the streamed rows go the same way as
    polled ones (the spool, while Postgres is away), and SIGTERM stops it cleanly."""
    status, text = run_until_every_table_is_spooled(
        tmp_path,
        {
            "BINANCE_API_URL": simulator.url,
            "INGEST_MODE": "stream",
            "INGEST_STREAM_URL": simulator.ws_url,
            "JOB_DEPTH_SECONDS": "1",
            "JOB_TICKER_SECONDS": "1",
            "JOB_PRICES_SECONDS": "1",
        },
    )
    assert status == EXIT_SPOOLED, text
    assert f"producer streaming from {simulator.ws_url.rstrip('/')}" in text
    assert "signal=SIGTERM received" in text and "Traceback" not in text
    assert "will be written on the next start (exit 3)" in text.strip().splitlines()[-1]
    spool = Spool(tmp_path / "spool")
    beats = [r for p in spool.files() if "heartbeat" in p.name for r in spool.read(p).rows]
    assert beats and all(b["ingest_mode"] == "stream" for b in beats), "the mode in every beat"
