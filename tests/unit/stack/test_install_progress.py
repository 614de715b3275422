"""pip and the Maven fetch report what they download and how far along, without flooding.

The watchers read lines recorded from real runs (pip 23.0.1 creating .venv, Maven 3.8.7
in `make fetch` on an empty local repository) on a simulated clock; `run` is exercised
with small Python commands standing in for the tools.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

from stack import install_progress
from stack.install_progress import (
    PROGRESS_EVERY,
    STILL_EVERY,
    MavenWatcher,
    PipWatcher,
    Watcher,
    run,
)

CENTRAL = "https://repo.maven.apache.org/maven2"
RECORDED = Path(__file__).parent / "recorded"
# Excerpts: what decides the console lines, kept in order.
MAVEN_COLD = (RECORDED / "maven-fetch-cold.log").read_text().splitlines()
PIP = (RECORDED / "pip-install.log").read_text().splitlines()


def feed_all(watcher: Watcher, lines: list[str], every: float) -> list[str]:
    """Feed lines one per `every` seconds from t=0; what the watcher says."""
    said = []
    for i, line in enumerate(lines):
        said += watcher.feed(line, i * every)
    return said


def maven_download(i: int) -> str:
    jar = f"{CENTRAL}/org/example/artifact-{i}/1.0/artifact-{i}-1.0.jar"
    return f"[INFO] Downloaded from central: {jar} (1.5 MB at 10 MB/s)"


def test_a_cold_maven_fetch_reports_counts_sizes_and_names_every_few_seconds() -> None:
    watcher = MavenWatcher(started=0.0)
    # 600 files in 60 s, one line every 0.1 s: as chatty as a cold fetch of Kafka.
    said = feed_all(watcher, [maven_download(i) for i in range(600)], every=0.1)
    progress = [line for line in said if "downloaded" in line]
    assert len(said) == len(progress)
    assert 60 / PROGRESS_EVERY - 2 <= len(progress) <= 60 / PROGRESS_EVERY + 1
    assert progress[0].startswith("51 files, 76.5 MB downloaded: artifact-0 1.0, artifact-1 1.0")
    assert progress[0].endswith("+48 more")
    assert watcher.summary(now=61.0) == "600 files (900.0 MB) downloaded in 61 s"


def test_maven_phases_tests_and_errors_show_warnings_are_counted() -> None:
    watcher = MavenWatcher(started=0.0)
    said = feed_all(watcher, MAVEN_COLD, every=0.01)
    assert said == [
        "3 files, 3.0 MB downloaded: lz4-java 1.8.0, snappy-java 1.1.10.5",
        "running the tests",
        "Tests run: 19, Failures: 0, Errors: 0, Skipped: 0",
    ]
    assert watcher.files == 3
    assert watcher.summary(now=2.0) == "3 files (3.0 MB) downloaded in 2 s, 1 warning in the log"
    error = (
        "[ERROR] Failed to execute goal on project kafka-runtime: Could not resolve dependencies"
    )
    assert watcher.feed(error, 3.0) == [error]


def test_a_maven_run_that_downloads_nothing_says_so() -> None:
    watcher = MavenWatcher(started=0.0)
    feed_all(watcher, ["[INFO] BUILD SUCCESS"], every=1.0)
    assert watcher.summary(now=3.0) == (
        "nothing to download (all in the local Maven repository), 3 s"
    )


def test_a_quiet_phase_gets_a_still_line_now_and_then() -> None:
    watcher = MavenWatcher(started=0.0)
    mojo = (
        "[INFO] --- maven-surefire-plugin:3.2.5:test (default-test) @ cap-stock-cassandra-sink ---"
    )
    assert watcher.feed(mojo, 1.0) == ["running the tests"]
    assert watcher.idle(1.0 + STILL_EVERY - 1) == []
    assert watcher.idle(1.0 + STILL_EVERY) == ["still running maven-surefire-plugin:test (16 s)"]
    assert watcher.idle(1.0 + STILL_EVERY + 1) == []


def test_pip_reports_resolution_build_install_and_the_total() -> None:
    watcher = PipWatcher(started=0.0)
    said = feed_all(watcher, PIP, every=0.5)
    assert said == [
        "3 packages resolved, 12.8 MB downloaded: python-binance, psycopg, pandas",
        "building cap-stock-cassandra-sink, cap-stock",
        "installing 5 packages",
    ]
    # pip says nothing while it unpacks the wheels.
    assert watcher.idle(5.5 + STILL_EVERY) == ["still installing 5 packages (20 s)"]
    assert watcher.summary(now=30.0) == "done in 30 s: 5 packages installed, 12.8 MB downloaded"
    assert watcher.feed("WARNING: Retrying (Retry(total=4)) after connection broken", 31.0) == []
    assert watcher.summary(now=32.0).endswith(", 1 warning in the log")


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_keeps_the_whole_output_in_the_log_and_no_escape_code_anywhere(
    tmp_path: Path,
) -> None:
    # What Maven 3.8's console library prints first, even in batch mode without colour.
    code = (
        r"print('\x1b[0m\x1b[0m[INFO] Scanning for projects...');"
        r"print('[INFO] \x1b[1mBUILD SUCCESS\x1b[m')"
    )
    out = io.StringIO()
    log = tmp_path / "logs" / "fetch.log"
    watcher = MavenWatcher(time.monotonic())
    assert run(python_command(code), watcher, "fetch 1/4", log, out=out) == 0
    assert "\x1b" not in out.getvalue()
    assert out.getvalue().startswith("fetch 1/4: nothing to download")
    text = log.read_text()
    assert "\x1b" not in text
    assert "[INFO] Scanning for projects...\n[INFO] BUILD SUCCESS\n" in text


def test_run_fails_with_the_tools_exit_code_and_the_tail_of_its_output(tmp_path: Path) -> None:
    code = "import sys; [print(f'line {i}') for i in range(100)]; sys.exit(3)"
    out = io.StringIO()
    log = tmp_path / "pip-install.log"
    assert run(python_command(code), PipWatcher(time.monotonic()), "pip", log, out=out) == 3
    lines = out.getvalue().splitlines()
    assert lines[0] == f"pip: FAILED (exit 3); the last lines of {log}:"
    assert lines[1:] == [f"  line {i}" for i in range(100 - install_progress.TAIL_LINES, 100)]
    assert log.read_text().count("\nline ") == 100


def test_the_command_line_runs_what_follows_the_double_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "x.log"
    argv = ["--label", "pip", "--log", str(log), "pip", "--", *python_command("print('ok')")]
    assert install_progress.main(argv) == 0
    assert capsys.readouterr().out.startswith("pip: done in ")
    assert "ok\n" in log.read_text()
