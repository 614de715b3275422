"""Where the CPU went during a measurement: each stack service and this benchmark.

On two shared cores the chain's floor is CPU: this is the evidence printed next to a
step that fell behind (which process was busy, and how much of the machine was left).
"""

from __future__ import annotations

import os
import time

from stack.process import cpu_seconds
from stack.services import all_components
from stack.settings import StackSettings


class CpuShares:
    """CPU used between `start()` and `report()`, in percent of one core."""

    def __init__(self, settings: StackSettings) -> None:
        self.pids = {c.name: (c.pid(), c.forks_sessions) for c in all_components(settings)}
        self.start()

    def sample(self) -> dict[str, float]:
        found = {name: cpu_seconds(*pid) for name, pid in self.pids.items()}
        times = os.times()
        found["benchmark"] = times.user + times.system
        return found

    def start(self) -> None:
        self.began, self.before = time.monotonic(), self.sample()

    def shares(self) -> dict[str, float]:
        elapsed = max(1e-6, time.monotonic() - self.began)
        after = self.sample()
        return {k: 100 * (after[k] - self.before[k]) / elapsed for k in after}

    def report(self) -> str:
        used = self.shares()
        parts = [f"{k} {v:.0f}" for k, v in used.items()]
        cores = os.cpu_count() or 1
        return (
            f"  cpu, % of one core: {', '.join(parts)}; together {sum(used.values()):.0f} "
            f"of {100 * cores}"
        )
