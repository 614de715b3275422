"""`make bench`'s verdicts: a figure meets its goal only on the right side of the bound."""

from __future__ import annotations

from bench.figures import Figure, at_least, at_most, table


def test_rates_must_reach_and_latencies_must_stay_under_their_bound() -> None:
    assert Figure("writer", 100_000, "rows/s", goal=at_least(100_000)).verdict == "met"
    assert Figure("writer", 99_999, "rows/s", goal=at_least(100_000)).verdict == "NOT met"
    assert Figure("p99", 500, "ms", goal=at_most(500)).verdict == "met"
    assert Figure("p99", 501, "ms", goal=at_most(500)).verdict == "NOT met"
    assert Figure("hop", 7, "ms").verdict == "-"


def test_the_table_shows_value_baseline_goal_and_verdict_per_figure() -> None:
    rows = table(
        [
            Figure("writer, trades", 152_745.4, "rows/s", "pandas 50,394 rows/s", at_least(1e5)),
            Figure("ratio", 3.04, "x", "", at_least(10)),
        ]
    ).splitlines()
    assert rows[2] == (
        "| writer, trades | 152,745 rows/s | pandas 50,394 rows/s | >= 100,000 rows/s | met |"
    )
    assert rows[3] == "| ratio | 3.0 x | - | >= 10 x | NOT met |"
