"""Detached processes with pid files, bounded waits and log tails."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LOG_TAIL_LINES = 40
# Enough for LOG_TAIL_LINES of even long Java lines, without reading a whole log.
LOG_TAIL_BYTES = 256 * 1024


class StackError(RuntimeError):
    """A component did not start or stop; the message says which and why."""


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def start_detached(
    argv: Sequence[str],
    log_file: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> int:
    """Start argv in its own session, stdout/stderr appended to log_file.

    With `user` (we are root) the process runs as that unprivileged user; files it
    creates are not readable by other users either way (umask 027).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {}), **_home_of(user)},
            user=user,
            group=_group_of(user),
            extra_groups=[] if user else None,
            umask=0o027,
            cwd=cwd,
        )
    pid_file.write_text(f"{proc.pid}\n")
    # Keep the Popen object: when it is collected, subprocess polls (and so reaps) a child
    # that already exited, and the supervisor could no longer say how it ended.
    _STARTED[proc.pid] = proc
    return proc.pid


_STARTED: dict[int, subprocess.Popen[bytes]] = {}


def forget(pid: int) -> None:
    """The caller reaped ``pid`` itself (os.waitpid): drop our handle on it."""
    _STARTED.pop(pid, None)


def _group_of(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_gid if user else None


def _home_of(user: str | None) -> dict[str, str]:
    """HOME and USER of `user`: root's home is not readable by it."""
    if not user:
        return {}
    entry = pwd.getpwnam(user)
    return {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user}


def log_tail(log_file: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(log_file, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            content = log.read().decode(errors="replace").splitlines()
    except OSError:
        return f"(no log at {log_file})"
    return "\n".join(content[-lines:])


def failure_report(log_file: Path) -> str:
    """The tail of log_file, then of the .out file beside it when that is not empty.

    JVM components log through their own (size-rolled) files and send stdout/stderr
    to <name>.out: a JVM that dies before its logging starts leaves the reason there.
    """
    report = f"--- {log_file} ---\n{log_tail(log_file)}"
    out = log_file.with_suffix(".out")
    with contextlib.suppress(OSError):
        if out != log_file and out.stat().st_size > 0:
            report += f"\n--- {out} ---\n{log_tail(out)}"
    return report


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log_file: Path,
    pid: int | None = None,
    interval: float = 1.0,
) -> None:
    """Poll check() until it is true; on timeout or early death raise with the log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise StackError(f"{what}: process {pid} exited\n{failure_report(log_file)}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise StackError(f"{what}: not healthy after {timeout:.0f}s\n{failure_report(log_file)}")


def stop_pid(pid: int, *, what: str, timeout: float, sig: int = signal.SIGTERM) -> bool:
    """Signal pid and wait for it to go; SIGKILL after timeout. True if it stopped cleanly."""
    if not pid_alive(pid):
        return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.3)
    print(f"  {what}: still running after {timeout:.0f}s, sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return False


def rss_kib(pid: int | None, sessions: bool = False) -> int | None:
    """Memory of pid and its children, in KiB (see `_children` for `sessions`): each
    process's proportional share (Pss) where readable, so Postgres's shared buffers,
    mapped by every backend, count once; its resident set (VmRSS) otherwise."""
    if not pid_alive(pid):
        return None
    return sum(_memory_kib(p) for p in [pid, *_children(pid, sessions)])


def _memory_kib(pid: int) -> int:
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return int(line.split()[1])
        except OSError:
            continue
    return 0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None, sessions: bool = False) -> float:
    """CPU time (user + system) pid and its children have used so far."""
    total = 0.0
    for p in [pid, *_children(pid, sessions)] if pid_alive(pid) else []:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
    return total


def _children(pid: int, sessions: bool = False) -> list[int]:
    """Descendants of pid. A child leading its own session is a detached service (one
    the supervisor restarted, counted on its own line) unless `sessions`: Postgres's
    backends each lead one too."""
    found: list[int] = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for kid in map(int, kids):
        if not sessions and _session_leader(kid):
            continue
        found.append(kid)
        found.extend(_children(kid, sessions))
    return found


def _session_leader(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return int(fields[3]) == pid  # after the state: ppid, pgrp, session


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
