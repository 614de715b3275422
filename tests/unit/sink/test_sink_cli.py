"""The Python sink's command line reads the same settings layer as the producer."""

from __future__ import annotations

import pytest
from cassandra_sink import cli


def test_a_bad_setting_is_named_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    assert cli.main(["--config", "register_cassandra.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cap-stock-sink: LOG_LEVEL='CHATTY' is not allowed: ")
    assert "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in err


def test_the_bootstrap_default_comes_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:1234")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "default kafka.example:1234" in capsys.readouterr().out
