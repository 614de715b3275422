"""Generated passwords: no shared default secret in either mode.

Every `*_PASSWORD` key that `.env.example` leaves empty is a secret. On the first
start each one the user has not set (in the shell or in `.env`) gets a fresh random
value, appended to `.env` (git-ignored, mode 600). Later starts reuse it, so the
roles in Postgres and Cassandra keep matching.

Standard library only: the compose `secrets` init service imports it
(docker/init/compose_secrets.py).
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FILE = REPO_ROOT / ".env.example"
ENV_FILE = REPO_ROOT / ".env"
# Letters and digits only: safe unquoted in conninfo strings, YAML, shell and JMX files.
ALPHABET = string.ascii_letters + string.digits
LENGTH = 32


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines ignored; surrounding quotes dropped)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def secret_names(example: Path = EXAMPLE_FILE) -> list[str]:
    """The keys .env.example declares as generated secrets: `*_PASSWORD=` with no value."""
    declared = parse_env(example.read_text())
    return [name for name, value in declared.items() if name.endswith("_PASSWORD") and not value]


def new_secret() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def ensure_secrets(
    env_file: Path = ENV_FILE,
    example: Path = EXAMPLE_FILE,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """Generate every secret not set yet into env_file (created with mode 600).

    Returns the names generated. A value set in the environment wins and is not
    written: the user owns it.
    """
    environ = os.environ if environ is None else environ
    existing = parse_env(env_file.read_text()) if env_file.exists() else {}
    missing = [n for n in secret_names(example) if not environ.get(n) and not existing.get(n)]
    if not missing:
        _restrict(env_file)
        return []
    lines = [f"{name}={new_secret()}" for name in missing]
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        if existing or env_file.stat().st_size:
            out.write("\n")
        out.write("# Generated on first start (stack/secrets.py); see README, Security.\n")
        out.write("\n".join(lines) + "\n")
    _restrict(env_file)
    return missing


def _restrict(env_file: Path) -> None:
    """Secrets are readable by their owner only."""
    if env_file.exists() and env_file.stat().st_mode & 0o077:
        env_file.chmod(0o600)
