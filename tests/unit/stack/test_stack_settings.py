"""Native stack runner pieces that need no services."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from stack import settings as settings_module
from stack.process import pid_alive
from stack.secrets import EXAMPLE_FILE, secret_names
from stack.services import Cassandra
from stack.services.base import STACK_DIR, connection_env, render
from stack.settings import (
    REPO_ROOT,
    CassandraLogins,
    PipelineSettings,
    PostgresLogins,
    SettingsError,
    StackSettings,
    env_name,
    load_from,
    read_env_file,
    variable_names,
    versions,
)


def test_versions_pin_every_component() -> None:
    pins = versions()
    for key in ("KAFKA_VERSION", "DEBEZIUM_VERSION", "CASSANDRA_VERSION", "POSTGRES_MAJOR"):
        assert pins.get(key), f"{key} missing from versions.env"
    assert pins["CASSANDRA_VERSION"].startswith("5.0.")


def test_maven_poms_take_versions_from_versions_env_only() -> None:
    poms = [*(REPO_ROOT / "stack" / "maven").glob("*.xml"), REPO_ROOT / "plugins" / "pom.xml"]
    pins = set(versions().values())
    for pom in poms:
        text = pom.read_text()
        for pin in pins:
            assert f"<version>{pin}</version>" not in text, f"{pom} hard-codes {pin}"


def test_env_file_parsing_ignores_comments(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text("# c\nA=1\n\nB = 'two'\nnot a setting\n")
    assert read_env_file(env) == {"A": "1", "B": "two"}


def test_render_fills_ports_and_keeps_connect_provider_references(tmp_path: Path) -> None:
    out = render(
        STACK_DIR / "kafka" / "connect-distributed.properties",
        tmp_path / "connect.properties",
        kafka_port=1111,
        connect_port=2222,
        plugin_path="/p",
    )
    text = out.read_text()
    assert "bootstrap.servers=127.0.0.1:1111" in text
    assert "listeners=http://127.0.0.1:2222" in text
    assert "${env:POSTGRES_PASSWORD}" in text
    assert "config.providers=env,file" in text


def test_cassandra_jvm_options_have_no_comments_or_blanks() -> None:
    options = Cassandra(StackSettings()).jvm_options()
    assert options
    assert all(o.startswith("-") for o in options)
    assert "--add-opens=java.base/java.nio=ALL-UNNAMED" in options


def test_ports_come_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CONNECT_PORT", "18083")
    assert StackSettings().connect_url == "http://127.0.0.1:18083"


def test_dead_pid_is_not_alive() -> None:
    assert pid_alive(None) is False
    assert pid_alive(2**22 + 12345) is False


def test_no_password_shows_in_the_settings_repr(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    names = [n for n in StackSettings.model_fields if n.endswith("_password")]
    for name in names:
        monkeypatch.setenv(name.upper(), f"pw-{name}-x9")
    text = repr(StackSettings())
    assert len(names) == 8  # with GRAFANA_ADMIN_PASSWORD, read by the settings now
    assert not [n for n in names if f"pw-{n}-x9" in text]
    assert "postgres_user=" in text  # the repr still shows the rest


# -- the settings layer: environment, .env, defaults, errors ------------------------------------

PASSWORDS = [name for name in variable_names() if name.endswith("_PASSWORD")]


@pytest.fixture
def no_stack_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No stack variable in the environment; every password set (none generated)."""
    for name in variable_names():
        monkeypatch.delenv(name, raising=False)
    for name in PASSWORDS:
        monkeypatch.setenv(name, f"pw-{name.lower()}")
    return monkeypatch


def test_the_environment_wins_over_dotenv(no_stack_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"KAFKA_PORT=1111\nCONNECT_PORT='2222'\nSTACK_HOME={tmp_path}/home\n")
    no_stack_env.setenv("CONNECT_PORT", "3333")
    settings = StackSettings(_env_file=dotenv)
    assert (settings.kafka_port, settings.connect_port) == (1111, 3333)
    assert settings.home == tmp_path / "home"
    assert settings.postgres_password.get_secret_value() == "pw-postgres_password"


def test_an_empty_value_is_the_default(no_stack_env) -> None:  # type: ignore[no-untyped-def]
    no_stack_env.setenv("KAFKA_PORT", "")
    assert StackSettings(_env_file=None).kafka_port == 29092


def test_home_is_stack_home_never_the_users_home(no_stack_env) -> None:  # type: ignore[no-untyped-def]
    no_stack_env.setenv("HOME", "/somewhere/else")
    assert StackSettings(_env_file=None).home == REPO_ROOT / ".stack"
    # Keyword arguments take the attribute's name too, not only the variable's.
    assert StackSettings(_env_file=None, home=Path("/x"), os_user="svc").os_user == "svc"


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("CONNECT_PORT", "80x3", "valid integer"),
        ("POSTGRES_PORT", "70000", "less than or equal to 65535"),
        ("STACK_KAFKA_HEAP", "lots", "pattern"),
    ],
)
def test_a_bad_value_exits_naming_the_variable_and_the_fix(  # type: ignore[no-untyped-def]
    no_stack_env, variable: str, value: str, why: str
) -> None:
    no_stack_env.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        StackSettings(_env_file=None)
    message = str(err.value)
    assert isinstance(err.value, SystemExit), "an exit with a message, not a traceback"
    assert message.startswith(f"stack: {variable}={value!r} is not allowed")
    assert why in message and ".env" in message and "\n" not in message


def test_a_password_nobody_set_is_generated_into_dotenv_once(  # type: ignore[no-untyped-def]
    no_stack_env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dotenv = tmp_path / ".env"
    no_stack_env.setattr(settings_module, "ENV_FILE", dotenv)
    no_stack_env.delenv("CASSANDRA_JMX_PASSWORD")
    first = StackSettings(_env_file=dotenv).cassandra_jmx_password.get_secret_value()
    out = capsys.readouterr().out
    assert f"stack: generated CASSANDRA_JMX_PASSWORD into {dotenv} (mode 600)" in out
    assert "POSTGRES_PASSWORD" not in out, "a password set in the environment is the user's"
    assert dotenv.stat().st_mode & 0o777 == 0o600
    assert read_env_file(dotenv)["CASSANDRA_JMX_PASSWORD"] == first
    assert StackSettings(_env_file=dotenv).cassandra_jmx_password.get_secret_value() == first
    assert capsys.readouterr().out == ""


def test_every_password_is_a_secret(no_stack_env) -> None:  # type: ignore[no-untyped-def]
    settings = StackSettings(_env_file=None)
    fields = [n for n in StackSettings.model_fields if n.endswith("_password")]
    assert fields and all(isinstance(getattr(settings, n), SecretStr) for n in fields)
    assert set(PASSWORDS) <= set(secret_names()), "each one is generated on first use"


def test_env_example_shows_the_stack_defaults() -> None:
    example = read_env_file(EXAMPLE_FILE)
    compared = 0
    for field, info in StackSettings.model_fields.items():
        variable = env_name(StackSettings, field)
        if variable in example and not variable.endswith("_PASSWORD"):
            assert example[variable] == str(info.default), variable
            compared += 1
    assert compared >= 15


def test_processes_find_the_stores_where_the_settings_say(no_stack_env) -> None:  # type: ignore[no-untyped-def]
    no_stack_env.setenv("POSTGRES_HOST", "pg.internal")
    env = connection_env(StackSettings(_env_file=None, cassandra_host="c1,c2"))
    assert env["POSTGRES_HOST"] == "pg.internal"
    assert env["CASSANDRA_HOST"] == "c1,c2"


def test_compose_logins_come_from_their_environment_alone(no_stack_env) -> None:  # type: ignore[no-untyped-def]
    no_stack_env.setenv("CASSANDRA_USER", "from_the_shell")
    environ = {
        "CASSANDRA_HOST": "cassandra",
        "CASSANDRA_ADMIN_PASSWORD": "a",
        "CASSANDRA_PASSWORD": "b",
        "CASSANDRA_READER_PASSWORD": "c",
        "CASSANDRA_READER_USER": "",
    }
    logins = load_from(CassandraLogins, environ)
    assert logins.cassandra_host == "cassandra"
    for field in ("cassandra_user", "cassandra_reader_user", "cassandra_datacenter"):
        assert getattr(logins, field) == StackSettings.model_fields[field].default
    assert logins.cassandra_user != "from_the_shell", "the shell is not read, only environ"
    with pytest.raises(SettingsError, match=r"^POSTGRES_CDC_PASSWORD is not set; add it"):
        load_from(PostgresLogins, {"POSTGRES_PASSWORD": "a"}, hint="add it")
    with pytest.raises(SettingsError, match="POSTGRES_PORT='x' is not allowed"):
        load_from(PostgresLogins, {"POSTGRES_PORT": "x"})


def test_the_pipeline_settings_need_no_password(no_stack_env) -> None:  # type: ignore[no-untyped-def]
    for name in PASSWORDS:
        no_stack_env.delenv(name)
    no_stack_env.setenv("SIMULATOR_PORT", "18900")
    assert PipelineSettings(_env_file=None).simulator_port == 18900
