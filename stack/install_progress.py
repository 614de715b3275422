"""Progress for the two long installs: pip into .venv, Maven into ~/.m2.

Quiet, both tools say nothing for a minute or more; verbose, they print a line per file.
This runs one of them with its whole output going to a log file, and prints on the
console a line when a phase begins, at most one line every PROGRESS_EVERY seconds while
files download (how many so far, how many megabytes, the newest names), a "still ..."
line after STILL_EVERY seconds without news, and one summary line. Downloads not yet
reported are reported before a phase's line. Errors pass through, warnings are counted
in the summary, a failure prints the tail of the log. No terminal escape code reaches
the console or the log. Standard library only: it runs before the venv exists.

$ python3 -m stack.install_progress --label pip --log .venv/pip-install.log pip -- \\
      .venv/bin/pip install --progress-bar off -e './producer[dev]' -e ./sink
pip: 21 packages resolved, 38.4 MB downloaded: numpy, pandas, sqlalchemy, +4 more
pip: building cap-stock-cassandra-sink, cap-stock
pip: installing 57 packages
pip: done in 23 s: 57 packages installed, 58.0 MB downloaded
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TextIO

# At most one download line this often, so that 300 files make a dozen lines.
PROGRESS_EVERY = 5.0
# A phase without output (pip unpacking wheels, Maven running tests) is reported this often.
STILL_EVERY = 15.0
# Names listed per progress line; the rest is counted.
NAMES_SHOWN = 3
TAIL_LINES = 30
# How often the runner wakes up without output, to notice a quiet phase.
TICK = 1.0

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
SIZE_UNITS = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def plain(text: str) -> str:
    """Without terminal escape codes (colours, cursor moves) and carriage returns."""
    return ESCAPE.sub("", text).replace("\r", "")


def size_bytes(number: str, unit: str) -> int:
    return int(float(number) * SIZE_UNITS[unit])


def megabytes(count: int) -> str:
    if count < 10**6:
        return f"{count / 10**3:.0f} kB"
    return f"{count / 10**6:.1f} MB"


def listing(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return f"{shown}, +{more} more" if more > 0 else shown


class Watcher:
    """Turns a tool's output lines into the few console lines worth showing.

    ``feed`` is called with each line (escape codes removed) and ``idle`` about every
    TICK seconds without output; both return what to print, without the label.
    Subclasses count downloads into ``files``/``bytes``/``fresh`` and warnings into
    ``warnings``, and set ``activity``.
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.last_said = started
        self.last_progress = started
        self.files = 0
        self.bytes = 0
        self.files_shown = 0  # files counted in the last progress line
        self.fresh: list[str] = []  # names downloaded since the last progress line
        self.warnings = 0
        self.activity = "starting"

    def feed(self, line: str, now: float) -> list[str]:
        return self._said(self.read(line), now)

    def idle(self, now: float) -> list[str]:
        return self._said([], now)

    def _said(self, said: list[str], now: float) -> list[str]:
        # Before a phase's line, the downloads of the phase before it, however recent.
        due = said or now - self.last_progress >= PROGRESS_EVERY
        if self.files > self.files_shown and due:
            said.insert(0, self.progress())
            self.fresh = []
            self.files_shown = self.files
            self.last_progress = now
        elif not said and now - self.last_said >= STILL_EVERY:
            said.append(f"still {self.activity} ({now - self.started:.0f} s)")
        if said:
            self.last_said = now
        return said

    def names(self) -> str:
        """The names downloaded since the last progress line, if any, as its tail."""
        return f": {listing(self.fresh)}" if self.fresh else ""

    def read(self, line: str) -> list[str]:
        """What this line says at once (a phase, a warning); counts downloads."""
        raise NotImplementedError

    def progress(self) -> str:
        raise NotImplementedError

    def summary(self, now: float) -> str:
        raise NotImplementedError

    def warned(self) -> str:
        if not self.warnings:
            return ""
        return f", {self.warnings} warning{'s' if self.warnings > 1 else ''} in the log"


class PipWatcher(Watcher):
    """``pip install --progress-bar off`` (pip 23), one line per step::

    Collecting pandas>=2.2
      Downloading pandas-3.1.1-cp311-cp311-manylinux_2_24_x86_64.whl (12.4 MB)
    Building wheels for collected packages: cap-stock-cassandra-sink, cap-stock
    Installing collected packages: pytz, wrapt, ..., cap-stock
    Successfully installed Deprecated-1.3.1 ... yarl-1.25.1
    """

    COLLECTING = re.compile(r"^Collecting ([A-Za-z0-9._-]+)")
    DOWNLOADING = re.compile(r"^\s*Downloading \S+ \(([\d.]+) (B|kB|MB|GB)\)")
    BUILDING = re.compile(r"^Building wheels for collected packages: (.+)")
    INSTALLING = re.compile(r"^Installing collected packages: (.+)")
    INSTALLED = re.compile(r"^Successfully installed (.+)")
    ERROR = re.compile(r"^ERROR:")
    WARNING = re.compile(r"^(WARNING|DEPRECATION):")

    def __init__(self, started: float) -> None:
        super().__init__(started)
        self.activity = "resolving the requirements"
        self.installed = 0

    def read(self, line: str) -> list[str]:
        if match := self.COLLECTING.match(line):
            self.files += 1
            self.fresh.append(match[1])
            self.activity = f"resolving the requirements ({self.files} packages so far)"
        elif match := self.DOWNLOADING.match(line):
            self.bytes += size_bytes(match[1], match[2])
        elif match := self.BUILDING.match(line):
            self.activity = f"building {match[1]}"
            return [f"building {match[1]}"]
        elif match := self.INSTALLING.match(line):
            count = len(match[1].split(","))
            self.activity = f"installing {count} packages"
            return [self.activity]
        elif match := self.INSTALLED.match(line):
            self.installed = len(match[1].split())
        elif self.ERROR.match(line):
            return [line]
        elif self.WARNING.match(line):
            self.warnings += 1
        return []

    def progress(self) -> str:
        return f"{self.files} packages resolved, {megabytes(self.bytes)} downloaded{self.names()}"

    def summary(self, now: float) -> str:
        return (
            f"done in {now - self.started:.0f} s: {self.installed} packages installed, "
            f"{megabytes(self.bytes)} downloaded{self.warned()}"
        )


class MavenWatcher(Watcher):
    """``mvn -B`` (Maven 3.8), whose INFO lines name each file it downloads::

    [INFO] Downloaded from central: https://repo.maven.apache.org/maven2/org/apache/
      kafka/kafka-clients/3.9.1/kafka-clients-3.9.1.jar (11 MB at 8.2 MB/s)
    [INFO] --- maven-surefire-plugin:3.2.5:test (default-test) @ cap-stock-cassandra-sink ---
    [INFO] Tests run: 19, Failures: 0, Errors: 0, Skipped: 0
    """

    DOWNLOADED = re.compile(
        r"^\[INFO\] Downloaded from [^:]+: (\S+) \(([\d.]+) (B|kB|MB|GB) at [^)]*\)"
    )
    MOJO = re.compile(r"^\[INFO\] --- ([\w.-]+):[^:]+:(\w+) \(.*\) @ ")
    # The totals after "Results:", not the per-class lines ("... Time elapsed ... -- in X").
    TESTS = re.compile(r"^\[(?:INFO|WARNING|ERROR)\] (Tests run: \d+, .*)$")
    ERROR = re.compile(r"^\[ERROR\] \S")
    # Some come on every run (cassandra-all names parsers whose POMs Maven cannot read).
    WARNING = re.compile(r"^\[WARNING\] \S")
    # Goals that take a while on their own and are worth a line.
    ANNOUNCED: ClassVar[dict[str, str]] = {"compile": "compiling", "test": "running the tests"}

    def __init__(self, started: float) -> None:
        super().__init__(started)
        self.activity = "resolving"

    def read(self, line: str) -> list[str]:
        if match := self.DOWNLOADED.match(line):
            self.files += 1
            self.bytes += size_bytes(match[2], match[3])
            path = match[1].rstrip("/").split("/")
            if path[-1].endswith(".jar") and len(path) >= 3:
                self.fresh.append(f"{path[-3]} {path[-2]}")
            self.activity = f"downloading ({self.files} files so far)"
        elif match := self.MOJO.match(line):
            plugin, goal = match[1], match[2]
            self.activity = f"running {plugin}:{goal}"
            if goal in self.ANNOUNCED:
                return [self.ANNOUNCED[goal]]
        elif (match := self.TESTS.match(line)) and "Time elapsed" not in line:
            return [match[1]]
        elif self.ERROR.match(line):
            return [line]
        elif self.WARNING.match(line):
            self.warnings += 1
        return []

    def progress(self) -> str:
        return f"{self.files} files, {megabytes(self.bytes)} downloaded{self.names()}"

    def summary(self, now: float) -> str:
        took = f"{now - self.started:.0f} s"
        if not self.files:
            return f"nothing to download (all in the local Maven repository), {took}{self.warned()}"
        return f"{self.files} files ({megabytes(self.bytes)}) downloaded in {took}{self.warned()}"


WATCHERS: dict[str, type[Watcher]] = {"pip": PipWatcher, "maven": MavenWatcher}


def _pump(stream: TextIO, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def run(
    argv: list[str],
    watcher: Watcher,
    label: str,
    log_path: Path,
    out: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run argv to completion, reporting through watcher; returns its exit code."""
    out = out or sys.stdout

    def say(text: str) -> None:
        print(f"{label}: {text}", file=out, flush=True)

    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    shown: set[str] = set()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                # A Python child (pip) writes to a pipe in blocks unless told otherwise.
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        except OSError as err:
            say(f"cannot run {argv[0]}: {err}")
            return 127
        lines: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        try:
            while True:
                try:
                    raw = lines.get(timeout=TICK)
                except queue.Empty:
                    for text in watcher.idle(clock()):
                        say(text)
                    continue
                if raw is None:
                    break
                line = plain(raw.rstrip("\n"))
                log.write(line + "\n")
                tail.append(line)
                for text in watcher.feed(line, clock()):
                    shown.add(text)
                    say(text)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            return 130
        code = proc.wait()
    if code == 0:
        say(watcher.summary(clock()))
        return 0
    say(f"FAILED (exit {code}); the last lines of {log_path}:")
    for line in tail:
        if line not in shown:
            print(f"  {line}", file=out)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m stack.install_progress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--label", help="the console lines' prefix (default: the tool)")
    parser.add_argument("--log", type=Path, required=True, help="appended with the whole output")
    parser.add_argument("tool", choices=sorted(WATCHERS), help="whose output to read")
    parser.add_argument("command", nargs="+", help="after --: the command to run")
    args = parser.parse_args(argv)
    watcher = WATCHERS[args.tool](time.monotonic())
    return run(args.command, watcher, args.label or args.tool, args.log)


if __name__ == "__main__":
    sys.exit(main())
