"""Debezium change events become exact Cassandra values."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from cassandra_sink.records import BadRecord, convert, decode


def _event(op: str, before: dict | None, after: dict | None) -> bytes:
    return json.dumps({"before": before, "after": after, "op": op, "source": {}}).encode()


def test_create_event_yields_the_after_image() -> None:
    change = decode(b'{"trade_id": 7}', _event("c", None, {"trade_id": 7, "price": "1.5"}), True)
    assert change is not None
    assert change.row == {"trade_id": 7, "price": "1.5"}
    assert change.key == {"trade_id": 7}


def test_delete_event_has_no_row_and_keeps_the_key() -> None:
    change = decode(b'{"trade_id": 7}', _event("d", {"trade_id": 7}, None), True)
    assert change is not None
    assert change.row is None
    assert change.op == "d"
    assert change.key == {"trade_id": 7}


def test_tombstone_is_skipped() -> None:
    assert decode(b'{"trade_id": 7}', None, True) is None


def test_schema_wrapped_payload_is_unwrapped() -> None:
    value = json.dumps({"schema": {}, "payload": {"op": "u", "after": {"x": 1}}}).encode()
    change = decode(None, value, True)
    assert change is not None
    assert change.row == {"x": 1}


def test_not_json_is_a_bad_record() -> None:
    with pytest.raises(BadRecord, match="not JSON"):
        decode(None, b"{oops", True)


@pytest.mark.parametrize("text", ["0.00001234", "123456789012345678.12345678", "1.10", "-0.5"])
def test_decimal_strings_keep_digits_and_scale(text: str) -> None:
    value = convert(text, "decimal", "price")
    assert value == Decimal(text)
    assert str(value) == text


def test_float_decimal_is_refused_because_precision_is_already_lost() -> None:
    with pytest.raises(BadRecord, match="column price: decimal"):
        convert(0.1, "decimal", "price")


def test_iso_timestamp_keeps_milliseconds() -> None:
    assert convert("2026-11-21T10:15:30.123Z", "timestamp", "t") == datetime(
        2026, 11, 21, 10, 15, 30, 123000, tzinfo=UTC
    )


def test_epoch_millisecond_timestamp() -> None:
    assert convert(1_795_255_130_123, "timestamp", "t") == datetime(
        2026, 11, 21, 9, 58, 50, 123000, tzinfo=UTC
    )


def test_debezium_date_is_days_since_epoch() -> None:
    assert convert(20413, "date", "day") == date(2025, 11, 21)


def test_null_stays_null_and_booleans_and_ints_convert() -> None:
    assert convert(None, "decimal", "p") is None
    assert convert(True, "boolean", "b") is True
    assert convert(9_007_199_254_740_993, "bigint", "id") == 9_007_199_254_740_993


def test_unreadable_value_names_the_column() -> None:
    with pytest.raises(BadRecord, match="column trade_id"):
        convert("abc", "bigint", "trade_id")
