"""``cap-stock simulator`` settings: the flag wins, then SIMULATOR_*, then .env, then the one
declared default; a bad value names its flag or variable and what is allowed (exit 2)."""

import inspect
import os

import pytest
from capstock.cli import build_parser, main
from capstock.config import ConfigError
from capstock.simulator import Simulator
from capstock.simulator.cli import given_flags
from capstock.simulator.settings import (
    DEFAULTS,
    SimulatorSettings,
    env_name,
    load_simulator_settings,
)
from capstock.variables import OTHER_NAMES, known_names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No inherited SIMULATOR_* variables and no stray .env."""
    for name in list(os.environ):
        if name.startswith("SIMULATOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def settings_from(*argv: str) -> SimulatorSettings:
    args = build_parser().parse_args(["simulator", *argv])
    return load_simulator_settings(given_flags(args))


def test_without_flags_or_variables_the_declared_defaults_apply():
    assert settings_from() == DEFAULTS
    assert (DEFAULTS.port, DEFAULTS.symbols, DEFAULTS.weight_limit) == (8900, 20, 6000)
    assert DEFAULTS.state_dir is None


def test_in_process_simulators_share_the_declared_defaults_but_pick_a_free_port():
    defaults = {
        name: p.default
        for name, p in inspect.signature(Simulator).parameters.items()
        if name in SimulatorSettings.model_fields
    }
    assert defaults.pop("port") == 0
    assert defaults == {name: getattr(DEFAULTS, name) for name in defaults}
    assert set(defaults) | {"port"} == set(SimulatorSettings.model_fields)


def test_a_variable_is_the_fallback_of_its_flag(monkeypatch):
    monkeypatch.setenv("SIMULATOR_PORT", "8901")
    monkeypatch.setenv("SIMULATOR_TRADE_RATE", "2.5")
    s = settings_from("--seed", "4")
    assert (s.port, s.trade_rate, s.seed) == (8901, 2.5, 4)


def test_the_flag_wins_over_the_variable(monkeypatch):
    monkeypatch.setenv("SIMULATOR_PORT", "8901")
    monkeypatch.setenv("SIMULATOR_STATE_DIR", "/var/lib/sim")
    s = settings_from("--port", "8902", "--state-dir", "here")
    assert s.port == 8902 and str(s.state_dir) == "here"


def test_dot_env_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("SIMULATOR_SEED=7\nSIMULATOR_SYMBOLS=9\n")
    monkeypatch.setenv("SIMULATOR_SYMBOLS", "3")
    s = settings_from()
    assert (s.seed, s.symbols) == (7, 3)


def test_an_empty_state_dir_means_none(monkeypatch):
    monkeypatch.setenv("SIMULATOR_STATE_DIR", "")
    assert settings_from().state_dir is None


def test_an_absent_flag_is_not_passed_on():
    assert given_flags(build_parser().parse_args(["simulator", "--fault", "429"])) == {}


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        (
            {"SIMULATOR_SYMBOLS": "0"},
            [],
            "SIMULATOR_SYMBOLS='0' is not allowed: Input should be greater than or equal to 1",
        ),
        ({}, ["--symbols", "0"], "--symbols '0' is not allowed: Input should be greater than"),
        ({"SIMULATOR_PORT": "http"}, [], "SIMULATOR_PORT='http' is not allowed: Input should be"),
        ({}, ["--port", "70000"], "--port '70000' is not allowed: Input should be less than or"),
        ({}, ["--trade-rate", "0"], "--trade-rate '0' is not allowed: Input should be greater"),
        ({}, ["--trade-rate", "nan"], "--trade-rate 'nan' is not allowed: Input should be a"),
    ],
)
def test_a_bad_value_names_its_flag_or_variable_and_what_is_allowed(
    monkeypatch, env, argv, message
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        settings_from(*argv)
    assert str(err.value).startswith(message)


def test_every_bad_value_is_listed(monkeypatch):
    monkeypatch.setenv("SIMULATOR_HISTORY_MINUTES", "-1")
    with pytest.raises(ConfigError) as err:
        settings_from("--weight-limit", "0", "--ban-seconds", "soon")
    assert [line.split(" ")[0] for line in str(err.value).splitlines()] == [
        "SIMULATOR_HISTORY_MINUTES='-1'",
        "--weight-limit",
        "--ban-seconds",
    ]


def test_the_command_exits_2_with_the_message_and_no_traceback(monkeypatch, capsys):
    monkeypatch.setenv("SIMULATOR_SEED", "one")
    assert main(["simulator", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "SIMULATOR_SEED='one' is not allowed: Input should be a valid integer" in err
    assert "Traceback" not in err


def test_a_bad_simulator_variable_does_not_break_other_commands(monkeypatch):
    monkeypatch.setenv("SIMULATOR_PORT", "http")
    assert build_parser().parse_args(["once"]).command == "once"


def test_every_setting_has_a_flag_and_a_known_variable(capsys):
    with pytest.raises(SystemExit):
        main(["simulator", "--help"])
    help_text = capsys.readouterr().out
    for field in SimulatorSettings.model_fields:
        assert f"--{field.replace('_', '-')} " in help_text
        assert env_name(field) in help_text
        assert env_name(field) in known_names()
    assert not [n for n in OTHER_NAMES if n.startswith("SIMULATOR_")], "derived, not listed"
