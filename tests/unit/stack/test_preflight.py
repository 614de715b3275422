"""`python -m stack pipeline` checks every setting, and the exchange for live, before it
starts anything: a typo is named with a guess, a bad value with what is allowed, an
unreachable exchange with its URL, cause and fix."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from capstock.variables import unknown_names

from stack.secrets import EXAMPLE_FILE, parse_env
from stack.settings import REPO_ROOT, variable_names

CODE_DIRS = ("stack", "producer/capstock", "sink/cassandra_sink", "docker/init")
# env("X", ...), env_int("X", ...), secret("X"), os.environ.get("X"), os.environ["X"]
READS = re.compile(
    r"""(?:\benv|\benv_int|\bsecret|environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
)


def names_read_by_code() -> set[str]:
    found = set()
    for folder in CODE_DIRS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for match in READS.finditer(path.read_text()):
                found.add(match.group(1) or match.group(2))
    found.update(variable_names())  # the stack's settings class
    return found


def test_a_misspelled_setting_is_named_with_a_guess() -> None:
    problems = unknown_names(["UNIVERSE_TOP_N", "JOB_TRADE_LIMIT", "HOME", "POSTGRES_PORT"])
    assert problems == [
        "JOB_TRADE_LIMIT is not a setting of cap-stock; did you mean JOB_TRADES_LIMIT?",
        "UNIVERSE_TOP_N is not a setting of cap-stock; did you mean UNIVERSE_SYMBOLS?",
    ]


def test_every_documented_setting_is_known() -> None:
    documented = set(parse_env(EXAMPLE_FILE.read_text()))
    assert documented and not unknown_names(documented, extra=variable_names())


def test_every_setting_the_code_reads_is_known() -> None:
    read = names_read_by_code()
    assert {"STACK_HOME", "CASSANDRA_SINK", "SIMULATOR_PORT"} <= read  # the scan works
    ours = {n for n in read if not n.startswith(("CAP_STOCK_", "BENCH_"))}
    assert not unknown_names(ours, extra=variable_names())


def run_pipeline(source: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("UNIVERSE_", "BINANCE_"))}
    return subprocess.run(
        [sys.executable, "-m", "stack", "pipeline", "--source", source],
        cwd=REPO_ROOT,
        env={**clean, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def nothing_started() -> list[Path]:
    """Pid files of the pipeline's processes: none may appear during a refused start."""
    run_dir = REPO_ROOT / ".stack" / "run"
    before = set(run_dir.glob("*.pid")) if run_dir.exists() else set()
    yield list(before)
    after = set(run_dir.glob("*.pid")) if run_dir.exists() else set()
    assert after <= before, f"started despite the refusal: {sorted(after - before)}"


def test_bad_settings_exit_2_before_anything_starts(nothing_started) -> None:  # type: ignore[no-untyped-def]
    done = run_pipeline("demo", UNIVERSE_TOP_N="5", UNIVERSE_SIZE="abc")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "UNIVERSE_TOP_N is not a setting of cap-stock; did you mean" in done.stderr
    assert "UNIVERSE_SIZE='abc' is not allowed" in done.stderr
    assert "Traceback" not in done.stderr and "starting" not in done.stdout


def test_an_unreachable_exchange_stops_make_up_with_the_cause(nothing_started) -> None:  # type: ignore[no-untyped-def]
    url = "http://127.0.0.1:9/api"  # the discard port: nothing listens
    done = run_pipeline("live", BINANCE_API_URL=url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{url}/v3/ping does not answer: ConnectionRefusedError" in done.stderr
    assert "make demo" in done.stderr and "Traceback" not in done.stderr


def test_the_runner_settings_are_known_only_through_their_class() -> None:
    assert unknown_names(["STACK_KAFKA_HEAP"]) != []  # not listed by hand in capstock
    assert unknown_names(["STACK_KAFKA_HEAP"], extra=variable_names()) == []
