"""Where the CPU went during a measurement: each stack service, this benchmark, the rest.

On two shared cores the chain's floor is CPU: this is the evidence printed next to a
step that fell behind (which process was busy, and how much of the machine was left).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from stack.process import CLOCK_TICKS, cpu_seconds
from stack.services import all_components
from stack.settings import StackSettings


def machine_busy_seconds() -> float:
    """CPU seconds every core spent not idle since boot (/proc/stat's first line)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


class CpuShares:
    """CPU used between `start()` and `report()`, in percent of one core."""

    def __init__(self, settings: StackSettings) -> None:
        self.pids = {c.name: (c.pid(), c.forks_sessions) for c in all_components(settings)}
        self.start()

    def sample(self) -> dict[str, float]:
        found = {name: cpu_seconds(*pid) for name, pid in self.pids.items()}
        times = os.times()
        found["benchmark"] = times.user + times.system
        found["machine"] = machine_busy_seconds()
        return found

    def start(self) -> None:
        self.began, self.before = time.monotonic(), self.sample()

    def shares(self) -> dict[str, float]:
        elapsed = max(1e-6, time.monotonic() - self.began)
        after = self.sample()
        used = {k: 100 * (after[k] - self.before[k]) / elapsed for k in after}
        used["other"] = used["machine"] - sum(v for k, v in used.items() if k != "machine")
        return used

    def report(self) -> str:
        used = self.shares()
        parts = [f"{k} {v:.0f}" for k, v in used.items() if k != "machine"]
        cores = os.cpu_count() or 1
        return (
            f"  cpu, % of one core: {', '.join(parts)}; machine {used['machine']:.0f} "
            f"of {100 * cores}"
        )
