"""`make status` text and the run record, and how `make up` tells a changed process."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import pipeline, status
from stack.process import write_json_atomic
from stack.settings import StackSettings


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(home=tmp_path)


def test_task_states_have_one_format() -> None:
    connector = {
        "state": "RUNNING",
        "tasks": [{"id": 0, "state": "RUNNING"}, {"id": 1, "state": "FAILED"}],
    }
    assert status.task_text(connector) == "RUNNING (task 0=RUNNING, task 1=FAILED)"
    assert status.task_text({"state": "UNASSIGNED", "tasks": []}) == "UNASSIGNED (no tasks)"
    script = (pipeline.REPO_ROOT / "connect_connectors.sh").read_text()
    assert '"task \\(.id)=\\(.state)"' in script  # the same words from the shell script


def test_the_run_record_names_the_processes_a_start_meant(settings: StackSettings) -> None:
    status.record_run(settings, "demo", "python")
    assert status.read_run(settings)["processes"] == [
        "python-sink",
        "simulator",
        "producer",
        "supervisor",
    ]
    status.record_run(settings, "live", "datastax")
    assert status.read_run(settings)["processes"] == ["producer", "supervisor"]
    status.forget_run(settings)
    assert status.read_run(settings) == {}


def test_the_text_ends_with_the_verdict() -> None:
    report = status.Report(
        components=[
            {
                "name": "producer",
                "state": "down",
                "pid": None,
                "port": None,
                "version": "-",
                "rss_mib": None,
                "restarts": 2,
            }
        ],
        tables=[
            {
                "table": "recent_trades",
                "postgres_newest": "2026-11-21T10:00:00+00:00",
                "age_s": 412.0,
                "stale_after_s": 120.0,
                "stale": True,
                "in_cassandra": False,
            }
        ],
        problems=["producer: down", "recent_trades: newest row 412s old (stale after 120s)"],
    )
    text = status.render(report)
    assert "producer    down" in text and "restarts=2" in text
    assert "recent_trades" in text and "NOT YET  STALE" in text
    assert (
        text.splitlines()[-1]
        == "NOT OK: producer: down; recent_trades: newest row 412s old (stale after 120s)"
    )
    assert not report.ok and '"ok": false' in report.to_json()
    assert status.render(status.Report()).splitlines()[-1] == "ok"


def test_a_changed_setting_is_named_and_a_password_only_by_name(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = pipeline.Producer(settings, api_url="http://127.0.0.1:8900/api")
    write_json_atomic(producer.spec_file, producer.spec())
    assert producer.changes() == []
    spec_text = producer.spec_file.read_text()
    assert settings.postgres_password.get_secret_value() not in spec_text and "sha256:" in spec_text

    monkeypatch.setenv("BINANCE_API_URL", "https://data-api.binance.vision/api")
    monkeypatch.setenv("POSTGRES_PASSWORD", "rotated-password-1")
    # `make up` after `make demo` (a new runner: no simulator URL, the new password)
    live = pipeline.Producer(StackSettings(home=settings.home))
    changes = live.changes()
    assert (
        "BINANCE_API_URL 'http://127.0.0.1:8900/api' -> 'https://data-api.binance.vision/api'"
        in changes
    )
    assert "POSTGRES_PASSWORD" in changes
    assert not any("rotated-password-1" in c for c in changes)


def test_no_spec_file_means_no_restart(settings: StackSettings) -> None:
    assert pipeline.Producer(settings).changes() == []


def test_a_process_restarts_only_for_settings_it_reads(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = pipeline.Simulator(settings)
    write_json_atomic(simulator.spec_file, simulator.spec())
    monkeypatch.setenv("UNIVERSE_SIZE", "5")
    assert simulator.changes() == []
    monkeypatch.setenv("SIMULATOR_SEED", "7")
    assert simulator.changes() == ["SIMULATOR_SEED '(unset)' -> '7'"]


def test_the_exchange_trouble_in_the_heartbeat_is_a_problem() -> None:
    beat = {"age_s": 3.0, "weight_used_1m": 0, "trade_gaps_total": 0}
    healthy = status.Report(heartbeat={**beat, "exchange_error": None})
    status.judge_data(healthy)
    assert healthy.ok

    cause = "unreachable: NameResolutionError: Failed to resolve 'api.binance.com'"
    report = status.Report(
        heartbeat={**beat, "exchange_error": cause, "exchange_error_since": "2026-11-22T10:00:00"}
    )
    status.judge_data(report)
    assert report.problems == [f"exchange {cause} (since 2026-11-22T10:00:00)"]
    lines = status.render(report).splitlines()
    assert f"  exchange {cause} (since 2026-11-22T10:00:00)" in lines
    assert lines[-1].startswith("NOT OK: exchange unreachable: NameResolutionError")


def test_the_demo_producer_streams_from_the_simulator_and_restarts_when_the_mode_changes(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator = pipeline.Simulator(settings)
    assert simulator.stream_url() == f"ws://127.0.0.1:{settings.simulator_streams_port}"
    producer = pipeline.Producer(
        settings, api_url=simulator.api_url, stream_url=simulator.stream_url()
    )
    assert producer.extra_env["INGEST_STREAM_URL"] == simulator.stream_url()
    write_json_atomic(producer.spec_file, producer.spec())
    monkeypatch.setenv("INGEST_MODE", "stream")
    assert producer.changes() == ["INGEST_MODE '(unset)' -> 'stream'"]


def test_the_heartbeat_line_shows_the_mode_and_in_stream_mode_filled_and_open_gaps() -> None:
    beat = {"age_s": 2.0, "weight_used_1m": 80, "trade_gaps_total": 3, "exchange_error": None}
    polling = status.render(status.Report(heartbeat={**beat, "ingest_mode": "rest"}))
    assert "producer heartbeat 2s ago (rest): weight_used_1m=80 trade_gaps_total=3\n" in polling
    streaming = status.render(
        status.Report(
            heartbeat={
                **beat,
                "ingest_mode": "stream",
                "trade_gaps_filled": 2,
                "trade_gaps_open": 1,
            }
        )
    )
    assert "(stream): weight_used_1m=80 trade_gaps_total=3 filled=2 open=1" in streaming
