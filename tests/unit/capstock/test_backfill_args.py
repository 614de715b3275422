"""``cap-stock backfill``'s arguments and its summary of a run."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from capstock.commands import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from capstock.ingest.backfill import DatasetRun, Outcome
from capstock.ingest.backfill_cli import parse_datasets, parse_interval, parse_symbols, parse_when

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T06:30", datetime(2026, 11, 20, 6, 30, tzinfo=UTC)),
        ("2026-11-20 06:30:15", datetime(2026, 11, 20, 6, 30, 15, tzinfo=UTC)),
        ("2026-11-20T06:30Z", datetime(2026, 11, 20, 6, 30, tzinfo=UTC)),
        ("2026-11-20T08:30+02:00", datetime(2026, 11, 20, 6, 30, tzinfo=UTC)),
        ("90m", NOW - timedelta(minutes=90)),
        ("6h", NOW - timedelta(hours=6)),
        ("1d", NOW - timedelta(days=1)),
        ("2w", NOW - timedelta(weeks=2)),
        ("now", NOW),
    ],
)
def test_times(text, expected):
    assert parse_when(text).resolve(NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "1y", "-1d", "2026-13-01", "6 h", ""])
def test_bad_times_name_the_accepted_forms(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"is not a time \(UTC: 2026-11-20"):
        parse_when(text)


def test_datasets_symbols_and_intervals():
    assert parse_datasets("klines") == ("klines",)
    assert parse_datasets(" Trades,klines,trades ") == ("trades", "klines")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown dataset 'depth'"):
        parse_datasets("klines,depth")
    with pytest.raises(argparse.ArgumentTypeError, match="choose from klines, trades"):
        parse_datasets(",")
    assert parse_symbols("btcusdt, ETHUSDT,btcusdt") == ("BTCUSDT", "ETHUSDT")
    with pytest.raises(argparse.ArgumentTypeError, match="'BTC/USDT' is not a symbol list"):
        parse_symbols("BTC/USDT")
    assert parse_interval("1h") == "1h"
    with pytest.raises(argparse.ArgumentTypeError, match="'1y' is not a kline interval"):
        parse_interval("1y")


def test_the_dataset_line_and_the_exit_status():
    run = DatasetRun("klines", symbols=2, wanted=10, stored=4, missing=6, covered=6, rows=5)
    assert run.absent == 1
    assert run.line().startswith(
        "backfill dataset=klines symbols=2 wanted=10 stored=4 missing=6 fetched=6 rows=5 "
        "changed=0 absent=1 bad=0 skipped=0 failed=0 weight=0"
    )
    assert Outcome([run]).status == EXIT_OK
    assert Outcome([run], stopped="interrupted").status == EXIT_FAILED
    assert Outcome([DatasetRun("trades", failed=["BTCUSDT"])]).status == EXIT_FAILED
    assert Outcome([run], usage_error="no").status == EXIT_CONFIG
