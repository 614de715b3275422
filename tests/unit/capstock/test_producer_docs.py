"""The READMEs document every setting every settings class reads and every command."""

import re
from pathlib import Path

import pytest
from capstock.cli import commands
from capstock.variables import settings_classes

from stack.settings import variable_names

ROOT = Path(__file__).resolve().parents[3]
PRODUCER_README = ROOT / "producer" / "README.md"
DOCS = (ROOT / "README.md").read_text() + PRODUCER_README.read_text()


def documented() -> set[str]:
    """The names in the first cell of every table row (`` `A` / `B` `` rows give both)."""
    names = set()
    for line in DOCS.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


def variables() -> list[str]:
    names = set(variable_names())
    for model in settings_classes():
        prefix = model.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in model.model_fields}
    return sorted(names)


@pytest.mark.parametrize("variable", variables())
def test_every_setting_is_in_a_table(variable: str) -> None:
    assert variable in documented()


@pytest.mark.parametrize("command", list(commands()))
def test_every_command_is_documented(command: str) -> None:
    assert f"`cap-stock {command}" in PRODUCER_README.read_text()


def test_the_registry_has_every_stage_entry_point() -> None:
    assert set(commands()) >= {"run", "once", "init-db", "simulator", "cassandra-setup"}
