"""`make watch` in a real terminal (tmux): it redraws in place, shows every table's rates
and the latest prices, and leaves cleanly on Ctrl-C."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from capstock.model.tables import TABLES

from stack.settings import REPO_ROOT, StackSettings
from tests.support.cdc_harness import wait_for

PRICE = "0.00001234"


def tmux(*args: str) -> str:
    done = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def priced_database(native_stack: StackSettings, postgres_conninfo: str) -> str:
    """A fresh database with the pipeline's tables and one current price."""
    dbname = postgres_conninfo.split("dbname=")[1].split()[0]
    init = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/cap-stock"), "init-db"],
        env={
            "PATH": "/usr/bin:/bin",
            "POSTGRES_DB": dbname,
            "POSTGRES_PASSWORD": native_stack.postgres_password.get_secret_value(),
            "PRODUCER_SPOOL_DIR": "/tmp/cap-stock-watch-test-spool",
        },
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr[-2000:]
    with psycopg.connect(postgres_conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO latest_prices (symbol, ts, price, day) "
            "VALUES ('WATCHUSDT', now(), %s, current_date)",
            [PRICE],
        )
    return dbname


@pytest.fixture
def session() -> Iterator[str]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: `make deps` installs it")
    name = f"watch-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def refresh_number(text: str) -> int:
    head = next((line for line in text.splitlines() if "refresh #" in line), "")
    return int(head.split("refresh #")[1].split()[0]) if head else 0


def test_watch_redraws_in_place_and_leaves_on_ctrl_c(priced_database: str, session: str) -> None:
    exit_file = f"/tmp/{session}.exit"
    command = (
        f"cd {REPO_ROOT} && POSTGRES_DB={priced_database} {sys.executable} -m stack watch "
        f"--interval 1; echo $? > {exit_file}"
    )
    tmux("new-session", "-d", "-s", session, "-x", "140", "-y", "70", command)
    wait_for(lambda: refresh_number(screen(session)) >= 2, 60, lambda: screen(session))
    first = screen(session)
    wait_for(
        lambda: refresh_number(screen(session)) > refresh_number(first), 60, lambda: screen(session)
    )
    text = screen(session)
    # Redrawn in place: one header on the screen, not a scrolling log.
    assert text.count("cap-stock watch") == 1, text
    assert "postgres rows/s" in text and "cassandra rows/s" in text
    for table in TABLES:
        assert any(line.startswith(table) for line in text.splitlines()), (table, text)
    assert "WATCHUSDT" in text and PRICE in text, text

    tmux("send-keys", "-t", session, "C-c")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with open(exit_file) as status:
                code = status.read().strip()
            os.unlink(exit_file)
            assert code == "0"
            return
        except FileNotFoundError:
            time.sleep(0.2)
    pytest.fail(f"watch did not leave on Ctrl-C:\n{screen(session)}")
