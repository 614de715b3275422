"""producer/README.md documents every setting and every command."""

from pathlib import Path

import pytest
from capstock.cli import COMMANDS
from capstock.config import (
    BinanceSettings,
    JobSettings,
    LogSettings,
    PostgresSettings,
    UniverseSettings,
)

README = Path(__file__).resolve().parents[2] / "producer" / "README.md"
SETTINGS = (PostgresSettings, BinanceSettings, UniverseSettings, JobSettings, LogSettings)


def variables():
    for model in SETTINGS:
        prefix = model.model_config["env_prefix"]
        for field in model.model_fields:
            yield f"{prefix}{field}".upper()


@pytest.mark.parametrize("variable", list(variables()))
def test_every_setting_is_in_the_table(variable):
    assert f"| `{variable}` |" in README.read_text()


@pytest.mark.parametrize("command", ["run", "once", "init-db", "simulator"])
def test_every_producer_command_is_documented(command):
    assert command in COMMANDS
    assert f"`cap-stock {command}" in README.read_text()
