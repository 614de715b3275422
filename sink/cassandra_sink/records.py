"""Read a Kafka record's key and value as the DataStax engine reads JSON text.

With `ExtractNewRecordState` at the source and Connect's StringConverter at the sink, a
topic carries flat rows: the value is the row, the key its primary key::

    key   {"symbol":"PEPEUSDT","trade_id":42}
    value {"symbol":"PEPEUSDT","trade_id":42,"price":"0.00001234",
           "trade_time":"2026-11-21T10:15:30.123Z","is_buyer_maker":true,
           "day":"2026-11-21Z","ingested_at":"2026-11-21T10:15:30.456789Z"}

A null value (a tombstone) is skipped; deletes never leave the source.

The engine parses the text with Jackson (USE_BIG_DECIMAL_FOR_FLOATS) and keeps the first
JSON value: a fraction or exponent becomes a BigDecimal with its trailing zeros stripped
(1.50 is 1.5, 100.0 is 1E+2), an integer stays exact, a float beyond double range becomes
+-Infinity, and text after the first value is ignored. A value that is not a JSON object
(or not JSON: NaN, single quotes, a byte-order mark...) cannot be mapped: a bad record. A
key that is not an object only matters to a mapping that reads `key.` fields.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cassandra_sink.codecs import INT_MAX, INT_MIN, Json


class BadRecord(ValueError):
    """A record the engine could not map to a row; the message says why."""


@dataclass(frozen=True)
class Record:
    key: dict[str, Json]
    value: dict[str, Json]


def _json_float(text: str) -> Decimal | float:
    number = float(text)
    if math.isinf(number):
        return number
    sign, digits, exponent = Decimal(text).as_tuple()
    assert isinstance(exponent, int)
    if not any(digits):
        return Decimal(0)
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if not INT_MIN <= -(exponent + trailing) <= INT_MAX:
        # BigDecimal's scale is an int: Jackson cannot read this number at all.
        raise BadRecord(f"number {text} is out of BigDecimal range")
    return Decimal((sign, digits[: len(digits) - trailing], exponent + trailing))


def _no_constant(name: str) -> Any:
    raise BadRecord(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_float=_json_float, parse_constant=_no_constant)


def parse_json(data: bytes) -> Json:
    """The first JSON value in UTF-8 bytes (malformed bytes read as U+FFFD, as Java does)."""
    text = data.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    try:
        value, _end = _DECODER.raw_decode(text, start)
    except (json.JSONDecodeError, ValueError) as err:  # ValueError: an integer too long
        raise BadRecord(f"not JSON: {err}") from None
    return value


def decode(key: bytes | None, value: bytes | None) -> Record | None:
    """The record's key and value fields; None for a tombstone."""
    if value is None:
        return None
    row = parse_json(value)
    if not isinstance(row, dict):
        raise BadRecord(f"the value is not a JSON object: {value[:80]!r}")
    key_fields: Json = None
    if key is not None:
        try:
            key_fields = parse_json(key)
        except BadRecord:
            key_fields = None
    return Record(key=key_fields if isinstance(key_fields, dict) else {}, value=row)
