"""Memory and CPU of a process tree: detached children are someone else's line, except
where a component's own children lead sessions (Postgres's backends)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from stack.process import cpu_seconds, rss_kib


def test_a_detached_child_counts_only_when_sessions_belong_to_the_component() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "x = bytearray(64 << 20); import time; time.sleep(30)"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while rss_kib(os.getpid(), sessions=True) - rss_kib(os.getpid()) < 60 << 10:
            assert time.monotonic() < deadline, "the child's 64 MiB never showed"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()


def test_cpu_seconds_grow_with_work_and_are_zero_for_a_dead_pid() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.2
    assert cpu_seconds(None) == 0.0
