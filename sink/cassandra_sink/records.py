"""Turn Debezium change events into Cassandra rows, value by value, without loss.

A change event from the Debezium PostgreSQL connector (JSON converter, schemas
off, `decimal.handling.mode=string`) looks like::

    {"before": null,
     "after": {"symbol": "PEPEUSDT", "price": "0.00001234",
               "trade_time": "2026-11-21T10:15:30.123Z", "trade_id": 42},
     "source": {...}, "op": "c", "ts_ms": 1795255130130}

Numeric columns arrive as decimal strings and timestamptz columns as ISO-8601
strings, so both convert exactly; `date` columns arrive as days since the epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

EPOCH_DAY = date(1970, 1, 1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadRecord(ValueError):
    """A record that cannot become a row; counted and logged, never fatal."""


@dataclass(frozen=True)
class Change:
    """One decoded event: the row image to upsert, or a delete."""

    key: dict[str, Any]
    row: dict[str, Any] | None  # None for a delete
    op: str


def _unwrap_schema(doc: Any) -> Any:
    # With schemas enabled the JSON converter wraps everything in {"schema", "payload"}.
    if isinstance(doc, dict) and set(doc) == {"schema", "payload"}:
        return doc["payload"]
    return doc


def decode(key_bytes: bytes | None, value_bytes: bytes | None, unwrap: bool) -> Change | None:
    """Decode one Kafka record; None for a tombstone (nothing to do)."""
    if value_bytes is None:
        return None
    try:
        key = _unwrap_schema(json.loads(key_bytes)) if key_bytes else {}
        value = _unwrap_schema(json.loads(value_bytes))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRecord(f"not JSON: {err}") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRecord(f"expected a JSON object, got {type(value).__name__}")
    if not unwrap or "op" not in value:
        return Change(key=key or {}, row=value, op=value.get("__op", "u"))
    op = value["op"]
    if op == "d":
        return Change(key=key or value.get("before") or {}, row=None, op="d")
    after = value.get("after")
    if not isinstance(after, dict):
        raise BadRecord(f"op {op!r} without an 'after' image")
    return Change(key=key or {}, row=after, op=op)


def to_timestamp(raw: Any) -> datetime:
    if isinstance(raw, str):
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(raw, int):
        # Connect's Timestamp and io.debezium.time.Timestamp are epoch milliseconds.
        return EPOCH + timedelta(milliseconds=raw)
    raise BadRecord(f"cannot read {raw!r} as a timestamp")


def to_date(raw: Any) -> date:
    if isinstance(raw, int):
        return EPOCH_DAY + timedelta(days=raw)
    if isinstance(raw, str):
        return date.fromisoformat(raw[:10])
    raise BadRecord(f"cannot read {raw!r} as a date")


def to_decimal(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        # A float here means precision was already lost upstream: refuse it.
        raise BadRecord(f"decimal {raw!r} must arrive as a string (decimal.handling.mode=string)")
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise BadRecord(f"cannot read {raw!r} as a decimal") from None


_CONVERTERS = {
    "decimal": to_decimal,
    "timestamp": to_timestamp,
    "date": to_date,
    "bigint": int,
    "int": int,
    "smallint": int,
    "tinyint": int,
    "varint": int,
    "counter": int,
    "boolean": bool,
    "double": float,
    "float": float,
    "text": str,
    "varchar": str,
    "ascii": str,
}


def convert(value: Any, cql_type: str, column: str) -> Any:
    """Convert one JSON value to what the Cassandra driver binds for cql_type."""
    if value is None:
        return None
    converter = _CONVERTERS.get(cql_type)
    if converter is None:
        return value
    try:
        return converter(value)
    except BadRecord as err:
        raise BadRecord(f"column {column}: {err}") from None
    except (TypeError, ValueError) as err:
        raise BadRecord(f"column {column}: cannot read {value!r} as {cql_type}: {err}") from None
