"""CASSANDRA_SINK picks exactly one sink; a wrong value names the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import pipeline
from stack.process import StackError
from stack.settings import PipelineSettings, StackSettings


def test_the_default_sink_is_the_datastax_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASSANDRA_SINK", raising=False)
    monkeypatch.setitem(PipelineSettings.model_config, "env_file", None)  # no .env
    assert pipeline.sink_choice() == "datastax"


def test_python_is_the_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASSANDRA_SINK", "python")
    assert pipeline.sink_choice() == "python"


def test_an_unknown_sink_names_the_allowed_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASSANDRA_SINK", "kafka-connect")
    with pytest.raises(StackError) as err:
        pipeline.sink_choice()
    assert "CASSANDRA_SINK='kafka-connect'" in str(err.value)
    assert "datastax" in str(err.value) and "python" in str(err.value)


def test_only_the_datastax_sink_registers_the_sink_connector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[list[str]] = []
    monkeypatch.setattr(
        pipeline, "run_step", lambda what, argv, settings, extra=None: steps.append(argv)
    )
    pipeline.prepare(StackSettings(), "datastax")
    assert steps[-1][-2:] == [str(pipeline.SOURCE_CONFIG), str(pipeline.SINK_CONFIG)]
    steps.clear()
    pipeline.prepare(StackSettings(), "python")
    assert steps[-1][-1] == str(pipeline.SOURCE_CONFIG)


def test_a_wrong_sink_stops_the_pipeline_before_the_stack_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from stack import __main__ as stack_cli

    monkeypatch.setenv("CASSANDRA_SINK", "nope")
    monkeypatch.setattr(stack_cli, "up", lambda settings: pytest.fail("the stack was started"))
    settings = StackSettings(home=tmp_path)
    assert stack_cli.pipeline_up(settings, "demo") == 2
    assert "CASSANDRA_SINK='nope'" in capsys.readouterr().err
