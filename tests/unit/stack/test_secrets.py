"""Generated passwords: one per secret, kept across starts, user-set values win."""

from __future__ import annotations

import stat
from pathlib import Path

from stack.secrets import EXAMPLE_FILE, LENGTH, ensure_secrets, parse_env, secret_names

REPO = Path(__file__).resolve().parents[3]


def test_every_password_in_the_example_is_a_generated_secret() -> None:
    declared = parse_env(EXAMPLE_FILE.read_text())
    passwords = [k for k in declared if k.endswith("_PASSWORD")]
    assert passwords, "no *_PASSWORD in .env.example"
    # No shared default: every password is left empty, i.e. generated.
    assert sorted(secret_names()) == sorted(passwords)
    assert {"POSTGRES_PASSWORD", "CASSANDRA_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= set(
        passwords
    )


def test_first_start_writes_strong_distinct_passwords_to_a_private_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    generated = ensure_secrets(env_file, environ={})
    assert sorted(generated) == sorted(secret_names())
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = parse_env(env_file.read_text())
    secrets = [values[name] for name in generated]
    assert all(len(s) == LENGTH and s.isalnum() for s in secrets)
    assert len(set(secrets)) == len(secrets)


def test_later_starts_keep_the_passwords(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    ensure_secrets(env_file, environ={})
    before = env_file.read_text()
    assert ensure_secrets(env_file, environ={}) == []
    assert env_file.read_text() == before


def test_a_password_the_user_set_is_not_replaced(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("POSTGRES_PASSWORD=mine\nUNIVERSE_SIZE=5\n")
    env_file.chmod(0o644)
    generated = ensure_secrets(env_file, environ={"CASSANDRA_PASSWORD": "from-shell"})
    assert "POSTGRES_PASSWORD" not in generated
    assert "CASSANDRA_PASSWORD" not in generated  # the shell owns it: not written
    values = parse_env(env_file.read_text())
    assert values["POSTGRES_PASSWORD"] == "mine"
    assert values["UNIVERSE_SIZE"] == "5"
    assert "CASSANDRA_PASSWORD" not in values
    # An existing .env with secrets in it is closed to other users too.
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_env_file_is_git_ignored() -> None:
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_postgres_access_rules_have_no_trust_line() -> None:
    rules = (REPO / "stack" / "postgres" / "pg_hba.conf").read_text().splitlines()
    active = [line.split() for line in rules if line.strip() and not line.startswith("#")]
    assert active and all("trust" not in fields for fields in active)
    # The superuser only through the socket with a peer map; everyone else with a password.
    local = [f for f in active if f[0] == "local"]
    assert local == [["local", "all", "postgres", "peer", "map=stack"]]
    assert all(f[-1] == "scram-sha-256" for f in active if f[0] == "host")
