"""Read a Cassandra sink connector config (the `register_cassandra.json` format).

The same file registers the DataStax sink in Kafka Connect, so keys this sink does not
use (connector.class, tasks.max, converters, auth.provider...) are ignored. What it
reads, and rejects where the engine would, before connecting to anything:

    topics                                        comma-separated; each needs a section
    contactPoints, port, loadBalancing.localDc    auth.username, auth.password
        (values may be ${env:NAME} or ${file:/path:key}, as Connect resolves them)
    maxConcurrentRequests                         in-flight writes
    ignoreErrors                                  None (default), Driver or All
    errors.tolerance                              none (default) or all
    errors.deadletterqueue.topic.name             where bad records go with tolerance all
    errors.deadletterqueue.topic.replication.factor   for creating that topic (default 3)
    topic.<topic>.<keyspace>.<table>.<setting>    mapping (required), ttl, ttlTimeUnit,
        deletesEnabled, nullToUnset, consistencyLevel, timestampTimeUnit, query
    topic.<topic>.codec.<x>                       locale, timeZone, timestamp, date, time, unit

A `topic.` key matching neither pattern is an error, as at the engine's task start. A
topic name may contain dots: `topic.cap_stock.public.kline_data.cap_stock.kline_data.mapping`
is topic `cap_stock.public.kline_data`, keyspace `cap_stock`, table `kline_data`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from capstock.config import CASSANDRA_DATACENTER, CASSANDRA_PORT

from cassandra_sink.codecs import TIME_UNITS_NS, Codecs, parse_time_zone

_PROVIDER_REF = re.compile(r"\$\{(env|file):([^}]*)\}")
TABLE_SETTINGS = (
    "mapping", "consistencyLevel", "ttl", "nullToUnset", "deletesEnabled", "ttlTimeUnit",
    "timestampTimeUnit", "query",
)  # fmt: skip
CODEC_SETTINGS = ("locale", "timeZone", "timestamp", "date", "time", "unit")
_TABLE_KEY = re.compile(
    r"topic\.([a-zA-Z0-9._-]+)\.([^.]+)\.([^.]+)\.(" + "|".join(TABLE_SETTINGS) + ")"
)
_CODEC_KEY = re.compile(r"topic\.([a-zA-Z0-9._-]+)\.codec\.(" + "|".join(CODEC_SETTINGS) + ")")
CONSISTENCY_LEVELS = (
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_ONE", "LOCAL_QUORUM",
    "EACH_QUORUM", "SERIAL", "LOCAL_SERIAL",
)  # fmt: skip
# ignoreErrors values, any case; false and true are the engine's deprecated spellings.
IGNORE_ERRORS = {
    "none": "none",
    "all": "all",
    "driver": "driver",
    "false": "none",
    "true": "driver",
}


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
    deletes_enabled: bool = True
    null_to_unset: bool = True
    consistency_level: str = "LOCAL_ONE"


@dataclass(frozen=True)
class ErrorPolicy:
    """What to do with a record the engine could not map (see runner.py)."""

    tolerance_all: bool = False
    dead_letter_topic: str | None = None
    dead_letter_replication_factor: int = 3
    ignore_errors: str = "none"


@dataclass(frozen=True)
class SinkConfig:
    name: str
    topics: list[str]
    mappings: dict[str, list[TableMapping]]
    codecs: dict[str, Codecs] = field(default_factory=dict)
    contact_points: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = CASSANDRA_PORT
    local_dc: str = CASSANDRA_DATACENTER
    username: str | None = None
    password: str | None = None
    max_concurrent_requests: int = 64
    errors: ErrorPolicy = field(default_factory=ErrorPolicy)


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
        if column in columns:
            raise SinkConfigError(f"{where}: column {column!r} is mapped twice")
        columns[column] = (part, name)
    if not columns:
        raise SinkConfigError(f"{where}: the mapping is empty")
    return columns


def _boolean(value: str, key: str) -> bool:
    # Kafka's ConfigDef BOOLEAN: trimmed, any case.
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise SinkConfigError(f"{key}={value!r}: expected true or false")
    return lowered == "true"


def _integer(value: str, key: str, minimum: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise SinkConfigError(f"{key}={value!r}: expected an integer") from None
    if number < minimum:
        raise SinkConfigError(f"{key}={value!r}: must be at least {minimum}")
    return number


def _time_unit(value: str, key: str) -> str:
    # TimeUnit.valueOf: exact names.
    if value.strip() not in TIME_UNITS_NS:
        raise SinkConfigError(f"{key}={value!r}: expected one of {', '.join(TIME_UNITS_NS)}")
    return value.strip()


def _table_mapping(topic: str, keyspace: str, table: str, settings: dict[str, str]) -> TableMapping:
    base = f"topic.{topic}.{keyspace}.{table}"
    if "mapping" not in settings:
        raise SinkConfigError(f"{base}.mapping is missing")
    if "query" in settings:
        raise SinkConfigError(f"{base}.query: custom queries are not supported by cap-stock-sink")
    ttl = _integer(settings.get("ttl", "-1"), f"{base}.ttl", -1)
    ttl_unit = _time_unit(settings.get("ttlTimeUnit", "SECONDS"), f"{base}.ttlTimeUnit")
    _time_unit(settings.get("timestampTimeUnit", "MICROSECONDS"), f"{base}.timestampTimeUnit")
    consistency = settings.get("consistencyLevel", "LOCAL_ONE").strip().upper()
    if consistency not in CONSISTENCY_LEVELS:
        raise SinkConfigError(
            f"{base}.consistencyLevel={consistency!r}: valid values include "
            + ", ".join(CONSISTENCY_LEVELS)
        )
    # TimeUnit.convert to seconds truncates; 0 and -1 both mean no TTL.
    ttl_seconds = ttl * TIME_UNITS_NS[ttl_unit] // TIME_UNITS_NS["SECONDS"] if ttl > 0 else 0
    return TableMapping(
        topic=topic,
        keyspace=keyspace,
        table=table,
        columns=parse_mapping(settings["mapping"], f"{base}.mapping"),
        ttl_seconds=ttl_seconds or None,
        deletes_enabled=_boolean(settings.get("deletesEnabled", "true"), f"{base}.deletesEnabled"),
        null_to_unset=_boolean(settings.get("nullToUnset", "true"), f"{base}.nullToUnset"),
        consistency_level=consistency,
    )


def codecs_from(topic: str, settings: dict[str, str]) -> Codecs:
    """The topic's codec settings; those this sink cannot mirror exactly are refused."""
    where = f"topic.{topic}.codec"
    locale = settings.get("locale", "en_US").strip()
    if [p.lower() for p in locale.split("_")] not in (["en"], ["en", "us"]):
        raise SinkConfigError(
            f"{where}.locale={locale!r}: cap-stock-sink reads numbers as en_US only"
        )
    try:
        time_zone = parse_time_zone(settings.get("timeZone", "UTC").strip())
    except ValueError as err:
        raise SinkConfigError(f"{where}.timeZone: {err}") from None
    timestamp = settings.get("timestamp", "CQL_TIMESTAMP").strip()
    if timestamp not in ("CQL_TIMESTAMP", "UNITS_SINCE_EPOCH"):
        raise SinkConfigError(
            f"{where}.timestamp={timestamp!r}: cap-stock-sink supports CQL_TIMESTAMP "
            "and UNITS_SINCE_EPOCH"
        )
    date = settings.get("date", "ISO_LOCAL_DATE").strip()
    if date not in ("ISO_LOCAL_DATE", "ISO_DATE"):
        raise SinkConfigError(
            f"{where}.date={date!r}: cap-stock-sink supports ISO_LOCAL_DATE and ISO_DATE"
        )
    # codec.time only matters to CQL time columns, which this sink does not write.
    unit = _time_unit(settings.get("unit", "MILLISECONDS"), f"{where}.unit")
    return Codecs(time_zone=time_zone, timestamp=timestamp, date=date, unit=unit)


def _topic_sections(
    config: dict[str, str],
) -> tuple[dict[str, dict[tuple[str, str], dict[str, str]]], dict[str, dict[str, str]]]:
    """topic -> (keyspace, table) -> settings, and topic -> codec settings."""
    tables: dict[str, dict[tuple[str, str], dict[str, str]]] = {}
    codecs: dict[str, dict[str, str]] = {}
    for key, value in config.items():
        if not key.startswith("topic."):
            continue
        if match := _TABLE_KEY.fullmatch(key):
            topic, keyspace, table, setting = match.groups()
            tables.setdefault(topic, {}).setdefault((keyspace, table), {})[setting] = value
        elif match := _CODEC_KEY.fullmatch(key):
            codecs.setdefault(match[1], {})[match[2]] = value
        else:
            raise SinkConfigError(
                f"{key}: matches neither topic.<topic>.<keyspace>.<table>.<setting> (setting: "
                f"{', '.join(TABLE_SETTINGS)}) nor topic.<topic>.codec.<x> "
                f"(x: {', '.join(CODEC_SETTINGS)})"
            )
    orphans = sorted(codecs.keys() - tables.keys())
    if orphans:
        # The engine's TopicConfig needs at least one table per topic section.
        raise SinkConfigError(f"topic {orphans[0]!r} has codec settings but no table mapping")
    return tables, codecs


def _error_policy(config: dict[str, str]) -> ErrorPolicy:
    ignore = config.get("ignoreErrors", "None").strip()
    if ignore.lower() not in IGNORE_ERRORS:
        raise SinkConfigError(f"ignoreErrors={ignore!r}: expected None, Driver or All")
    tolerance = config.get("errors.tolerance", "none").strip().lower()
    if tolerance not in ("none", "all"):
        raise SinkConfigError(f"errors.tolerance={tolerance!r}: expected none or all")
    topic = config.get("errors.deadletterqueue.topic.name", "").strip()
    replication = _integer(
        config.get("errors.deadletterqueue.topic.replication.factor", "3"),
        "errors.deadletterqueue.topic.replication.factor",
        1,
    )
    return ErrorPolicy(
        tolerance_all=tolerance == "all",
        dead_letter_topic=topic or None,
        dead_letter_replication_factor=replication,
        ignore_errors=IGNORE_ERRORS[ignore.lower()],
    )


def load_config(document: dict) -> SinkConfig:
    """Build a SinkConfig from a parsed connector JSON ({"name": ..., "config": {...}})."""
    if "config" not in document or "name" not in document:
        raise SinkConfigError("expected a connector document with 'name' and 'config'")
    config = {k: str(v) for k, v in document["config"].items()}
    topics = [t.strip() for t in config.get("topics", "").split(",") if t.strip()]
    if not topics:
        raise SinkConfigError("'topics' is empty")
    tables, codec_settings = _topic_sections(config)
    for topic in topics:
        if topic not in tables:
            raise SinkConfigError(
                f"topic {topic!r} is listed in 'topics' but has no mapping "
                f"(topic.{topic}.<keyspace>.<table>.mapping)"
            )
    mappings = {
        topic: [_table_mapping(topic, ks, table, s) for (ks, table), s in sections.items()]
        for topic, sections in tables.items()
    }
    username = config.get("auth.username")
    password = config.get("auth.password")
    return SinkConfig(
        name=document["name"],
        topics=topics,
        mappings=mappings,
        codecs={topic: codecs_from(topic, codec_settings.get(topic, {})) for topic in tables},
        contact_points=[
            resolve_refs(h.strip()) for h in config.get("contactPoints", "127.0.0.1").split(",")
        ],
        port=_integer(resolve_refs(config.get("port", str(CASSANDRA_PORT))), "port", 1),
        local_dc=resolve_refs(config.get("loadBalancing.localDc", CASSANDRA_DATACENTER)),
        username=resolve_refs(username) if username else None,
        password=resolve_refs(password) if password else None,
        max_concurrent_requests=_integer(
            config.get("maxConcurrentRequests", "64"), "maxConcurrentRequests", 1
        ),
        errors=_error_policy(config),
    )


def load_config_file(path: Path) -> SinkConfig:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SinkConfigError(f"{path}: {err}") from None
    return load_config(document)
