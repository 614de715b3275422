"""Native stack runner pieces that need no services."""

from __future__ import annotations

from pathlib import Path

from stack.process import pid_alive
from stack.services import Cassandra
from stack.services.base import STACK_DIR, render
from stack.settings import REPO_ROOT, StackSettings, read_env_file, versions


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
    names = [n for n in StackSettings.__dataclass_fields__ if n.endswith("_password")]
    for name in names:
        monkeypatch.setenv(name.upper(), f"pw-{name}-x9")
    text = repr(StackSettings())
    assert len(names) == 7
    assert not [n for n in names if f"pw-{n}-x9" in text]
    assert "postgres_user=" in text  # the repr still shows the rest
