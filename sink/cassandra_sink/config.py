"""Read a DataStax Cassandra sink connector config (the `register_cassandra.json` format).

Understood keys (everything else is ignored, so the same file also registers the
real connector in Connect):

    topics                                  comma-separated topic names
    contactPoints, port, loadBalancing.localDc
    auth.username, auth.password            may be ${env:NAME} or ${file:/path:key}
    topic.<topic>.<keyspace>.<table>.mapping      "col=value.field, col2=key.field"
    topic.<topic>.<keyspace>.<table>.ttl          seconds; -1 or absent: none
    topic.<topic>.<keyspace>.<table>.deletesEnabled   "false": ignore deletes
    transforms.<name>.type = ...ExtractNewRecordState  unwrap Debezium envelopes
    transforms.<name>.delete.tombstone.handling.mode = drop   deletes are dropped
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

UNWRAP_SMT = "io.debezium.transforms.ExtractNewRecordState"
_PROVIDER_REF = re.compile(r"\$\{(env|file):([^}]*)\}")


class SinkConfigError(ValueError):
    """The connector JSON is not usable; the message names the key."""


@dataclass(frozen=True)
class TableMapping:
    topic: str
    keyspace: str
    table: str
    # Cassandra column -> (record part, field name), e.g. "price" -> ("value", "price").
    columns: dict[str, tuple[str, str]]
    ttl_seconds: int | None = None
    deletes_enabled: bool = False


@dataclass(frozen=True)
class SinkConfig:
    name: str
    topics: list[str]
    mappings: dict[str, list[TableMapping]]
    contact_points: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 9042
    local_dc: str = "datacenter1"
    username: str | None = None
    password: str | None = None
    unwrap: bool = True
    # ExtractNewRecordState with delete.tombstone.handling.mode=drop: deletes never reach a table.
    drop_deletes: bool = False
    max_concurrent_requests: int = 64


def resolve_refs(value: str) -> str:
    """Expand ${env:NAME} and ${file:/path:key} the way Connect's config providers do."""

    def expand(match: re.Match[str]) -> str:
        provider, ref = match.groups()
        if provider == "env":
            if ref not in os.environ:
                raise SinkConfigError(f"${{env:{ref}}}: environment variable {ref} is not set")
            return os.environ[ref]
        path, _, key = ref.rpartition(":")
        props = dict(
            line.split("=", 1)
            for line in Path(path).read_text().splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        )
        if key not in props:
            raise SinkConfigError(f"${{file:{ref}}}: no key {key!r} in {path}")
        return props[key].strip()

    return _PROVIDER_REF.sub(expand, value)


def parse_mapping(text: str, where: str) -> dict[str, tuple[str, str]]:
    columns: dict[str, tuple[str, str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        column, sep, source = (s.strip() for s in item.partition("="))
        part, dot, name = source.partition(".")
        if not sep or not dot or part not in ("key", "value") or not column or not name:
            raise SinkConfigError(
                f"{where}: cannot read {item!r}; expected column=value.field or column=key.field"
            )
        columns[column] = (part, name)
    if not columns:
        raise SinkConfigError(f"{where}: the mapping is empty")
    return columns


def _table_settings(config: dict[str, str], topic: str) -> dict[tuple[str, str], dict[str, str]]:
    prefix = f"topic.{topic}."
    tables: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in config.items():
        if not key.startswith(prefix):
            continue
        parts = key[len(prefix) :].split(".")
        if len(parts) != 3:
            continue
        keyspace, table, setting = parts
        tables.setdefault((keyspace, table), {})[setting] = value
    return tables


def _mappings_for(config: dict[str, str], topic: str) -> list[TableMapping]:
    found = []
    for (keyspace, table), settings in _table_settings(config, topic).items():
        where = f"topic.{topic}.{keyspace}.{table}.mapping"
        if "mapping" not in settings:
            raise SinkConfigError(f"{where} is missing")
        ttl = int(settings.get("ttl", "-1"))
        found.append(
            TableMapping(
                topic=topic,
                keyspace=keyspace,
                table=table,
                columns=parse_mapping(settings["mapping"], where),
                ttl_seconds=ttl if ttl > 0 else None,
                deletes_enabled=settings.get("deletesEnabled", "true").lower() == "true",
            )
        )
    if not found:
        raise SinkConfigError(f"topic {topic!r} is listed in 'topics' but has no mapping")
    return found


def load_config(document: dict) -> SinkConfig:
    """Build a SinkConfig from a parsed connector JSON ({"name": ..., "config": {...}})."""
    if "config" not in document or "name" not in document:
        raise SinkConfigError("expected a connector document with 'name' and 'config'")
    config = {k: str(v) for k, v in document["config"].items()}
    topics = [t.strip() for t in config.get("topics", "").split(",") if t.strip()]
    if not topics:
        raise SinkConfigError("'topics' is empty")
    smt_names = [n.strip() for n in config.get("transforms", "").split(",") if n.strip()]
    unwrap_names = [n for n in smt_names if config.get(f"transforms.{n}.type") == UNWRAP_SMT]
    drop_deletes = any(
        config.get(f"transforms.{n}.delete.tombstone.handling.mode") == "drop"
        or config.get(f"transforms.{n}.delete.handling.mode") == "drop"
        for n in unwrap_names
    )
    username = config.get("auth.username")
    password = config.get("auth.password")
    return SinkConfig(
        name=document["name"],
        topics=topics,
        mappings={topic: _mappings_for(config, topic) for topic in topics},
        contact_points=[
            resolve_refs(h.strip()) for h in config.get("contactPoints", "127.0.0.1").split(",")
        ],
        port=int(resolve_refs(config.get("port", "9042"))),
        local_dc=resolve_refs(config.get("loadBalancing.localDc", "datacenter1")),
        username=resolve_refs(username) if username else None,
        password=resolve_refs(password) if password else None,
        unwrap=bool(unwrap_names),
        drop_deletes=drop_deletes,
        max_concurrent_requests=int(config.get("maxConcurrentRequests", "64")),
    )


def load_config_file(path: Path) -> SinkConfig:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SinkConfigError(f"{path}: {err}") from None
    return load_config(document)
