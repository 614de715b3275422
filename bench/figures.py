"""What a benchmark measured, next to its baseline and goal: the shape `make bench` collects.

Each benchmark module has ``run(argv) -> list[Figure]`` (printing its own detail as it
goes) and a ``main`` that calls it; ``bench/run_all.py`` runs them all and writes the
figures to a dated file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """A bound the figure must reach: ``at_least`` (rates) or ``at_most`` (latencies)."""

    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def describe(self, unit: str) -> str:
        return f"{'>=' if self.at_least else '<='} {number(self.bound)} {unit}"


def at_least(bound: float) -> Goal:
    return Goal(bound, at_least=True)


def at_most(bound: float) -> Goal:
    return Goal(bound, at_least=False)


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline: str = ""
    """What the same run measured to compare with (a naive method, the other mode)."""
    goal: Goal | None = None

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return "-"
        return "met" if self.goal.met(self.value) else "NOT met"

    def row(self) -> str:
        goal = self.goal.describe(self.unit) if self.goal else "-"
        value = f"{number(self.value)} {self.unit}"
        return f"| {self.name} | {value} | {self.baseline or '-'} | {goal} | {self.verdict} |"


def number(value: float) -> str:
    """Thousands separated; one decimal below 10 (ratios), none above."""
    return f"{value:,.1f}" if abs(value) < 10 else f"{value:,.0f}"


def table(figures: list[Figure]) -> str:
    lines = ["| figure | value | baseline (same run) | goal | |", "|---|---|---|---|---|"]
    return "\n".join(lines + [f.row() for f in figures])
