"""The compose `secrets` step: passwords into .env, then each service's share into its volume.

Runs first on every `docker compose up` (docker-compose.yml, service `secrets`), in the
pinned Python image with the checkout mounted at /workspace:

1. ``stack.secrets.ensure_secrets``, the same code as native mode, generates every
   password .env.example leaves empty and .env does not set yet, into ``.env``
   (mode 600, then owned by whoever owns the checkout, not root).
2. For each service in :data:`CONSUMERS`, ``/run/cap-stock/<service>/secrets.env``
   (that service's own volume, mounted nowhere else) gets only the passwords the service
   needs, under the names its program reads. The service sources the file before its
   usual entrypoint, so no password passes through compose's interpolation and none is
   printed by ``docker compose config``.

Only .env is read, never the shell: a password exported in the shell would have to be
passed through compose, which prints it. A former shipped default (``cap_stock``,
``cassandra``, ``admin``) is refused, so an old .env copied from .env.example cannot keep
a shared password.

    $ docker compose run --rm secrets
    secrets: generated POSTGRES_PASSWORD, ... into /workspace/.env (mode 600)
    secrets: wrote the passwords of postgres, init, connect, producer, grafana
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from stack.secrets import ensure_secrets, parse_env, secret_names

WORKSPACE = Path(os.environ.get("CAP_STOCK_WORKSPACE", "/workspace"))
OUTPUT_ROOT = Path(os.environ.get("CAP_STOCK_SECRETS_DIR", "/run/cap-stock"))
FILE_NAME = "secrets.env"

# Who gets which password, under which variable name (name in the file -> name in .env).
CONSUMERS: dict[str, dict[str, str]] = {
    # The image's superuser "postgres"; the image applies it to an empty data directory only.
    "postgres": {"POSTGRES_PASSWORD": "POSTGRES_ADMIN_PASSWORD"},
    # postgres-init and cassandra-init: create the roles as the superusers, then set up
    # the schemas (init-db as the table owner, cassandra-setup as the Cassandra admin).
    "init": {
        name: name
        for name in (
            "POSTGRES_ADMIN_PASSWORD",
            "POSTGRES_PASSWORD",
            "POSTGRES_CDC_PASSWORD",
            "POSTGRES_READER_PASSWORD",
            "CASSANDRA_ADMIN_PASSWORD",
            "CASSANDRA_PASSWORD",
            "CASSANDRA_READER_PASSWORD",
        )
    },
    # The worker resolves ${env:...} in register-postgres.json / register_cassandra.json.
    "connect": {name: name for name in ("POSTGRES_CDC_PASSWORD", "CASSANDRA_PASSWORD")},
    "producer": {"POSTGRES_PASSWORD": "POSTGRES_PASSWORD"},
    # Grafana's admin (first start only) and the read-only logins of datasources.yaml.
    "grafana": {
        "GF_SECURITY_ADMIN_PASSWORD": "GRAFANA_ADMIN_PASSWORD",
        "POSTGRES_READER_PASSWORD": "POSTGRES_READER_PASSWORD",
        "CASSANDRA_READER_PASSWORD": "CASSANDRA_READER_PASSWORD",
    },
}

# Passwords older .env.example files shipped as defaults.
FORMER_DEFAULTS = frozenset({"cap_stock", "cassandra", "admin"})


class SecretsError(Exception):
    pass


def weak(values: dict[str, str], names: list[str]) -> list[str]:
    return [name for name in names if values.get(name) in FORMER_DEFAULTS]


def render(consumer: str, values: dict[str, str]) -> str:
    """The file a service sources: NAME='value' lines, quoted for sh."""
    lines = [f"# {consumer}: written by the secrets service from .env; do not edit"]
    for target, source in CONSUMERS[consumer].items():
        lines.append(f"{target}={shlex.quote(values[source])}")
    return "\n".join(lines) + "\n"


def write_file(path: Path, text: str) -> None:
    """Replace path atomically. Readable by every user: only its own service mounts it."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o444)
    os.replace(tmp, path)


def give_to_checkout_owner(env_file: Path, workspace: Path) -> None:
    """Created as root in the container: hand .env to the owner of the checkout."""
    owner = workspace.stat()
    current = env_file.stat()
    if (current.st_uid, current.st_gid) == (owner.st_uid, owner.st_gid):
        return
    try:
        os.chown(env_file, owner.st_uid, owner.st_gid)
    except OSError as err:
        print(f"secrets: could not give {env_file} to uid {owner.st_uid}: {err}", file=sys.stderr)


def run(workspace: Path = WORKSPACE, output_root: Path = OUTPUT_ROOT) -> list[str]:
    """Steps 1 and 2 above; returns the names generated into .env."""
    env_file, example = workspace / ".env", workspace / ".env.example"
    if not example.is_file():
        raise SecretsError(f"{example} not found: is the checkout mounted at {workspace}?")
    generated = ensure_secrets(env_file, example, environ={})
    give_to_checkout_owner(env_file, workspace)
    values = parse_env(env_file.read_text())
    names = secret_names(example)
    missing = sorted({s for m in CONSUMERS.values() for s in m.values()} - set(names))
    if missing:
        raise SecretsError(f".env.example does not declare {', '.join(missing)} as a secret")
    refused = weak(values, names)
    if refused:
        raise SecretsError(
            f"{', '.join(refused)} in {env_file} still hold a former default password. "
            "Delete those lines (they are generated again) or set strong values; for an "
            "existing data volume see docs/docker.md, 'Upgrading a volume'."
        )
    for consumer in CONSUMERS:
        directory = output_root / consumer
        if not directory.is_dir():
            raise SecretsError(f"{directory} is not mounted (volume secrets-{consumer})")
        write_file(directory / FILE_NAME, render(consumer, values))
    return generated


def main() -> int:
    try:
        generated = run()
    except SecretsError as err:
        print(f"secrets: {err}", file=sys.stderr)
        return 1
    if generated:
        print(f"secrets: generated {', '.join(generated)} into {WORKSPACE / '.env'} (mode 600)")
    print(f"secrets: wrote the passwords of {', '.join(CONSUMERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
