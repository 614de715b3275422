"""Kafka records are flat JSON rows, read as the DataStax engine's Jackson reads them."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from cassandra_sink.records import BadRecord, Record, decode, parse_json

ROW = (
    b'{"symbol":"PEPEUSDT","trade_id":42,"price":"0.00001234",'
    b'"trade_time":"2026-11-21T10:15:30.123Z","is_buyer_maker":true,'
    b'"day":"2026-11-21Z","ingested_at":"2026-11-21T10:15:30.456789Z"}'
)
KEY = b'{"symbol":"PEPEUSDT","trade_id":42}'


def test_a_flat_row_is_the_value_and_the_key_its_primary_key() -> None:
    record = decode(KEY, ROW)
    assert record == Record(
        key={"symbol": "PEPEUSDT", "trade_id": 42},
        value={
            "symbol": "PEPEUSDT",
            "trade_id": 42,
            "price": "0.00001234",
            "trade_time": "2026-11-21T10:15:30.123Z",
            "is_buyer_maker": True,
            "day": "2026-11-21Z",
            "ingested_at": "2026-11-21T10:15:30.456789Z",
        },
    )


def test_an_envelope_is_not_unwrapped_any_more() -> None:
    # ExtractNewRecordState runs at the source now; an envelope here is just a row whose
    # fields are before/after/op, so a mapping to value.symbol finds nothing.
    record = decode(None, b'{"before":null,"after":{"symbol":"X"},"op":"c"}')
    assert record is not None
    assert record.value == {"before": None, "after": {"symbol": "X"}, "op": "c"}


def test_a_tombstone_is_skipped() -> None:
    assert decode(KEY, None) is None


@pytest.mark.parametrize(
    "value",
    [
        b"[1,2]",
        b'"str"',
        b"42",
        b"null",
        b"",
        b"   ",
        b"{oops",
        b'{"f":NaN}',
        b'{"f":-Infinity}',
        b"{'f':1}",
        b"{f:1}",
        b'{"f":1,}',
        b'{"f":01}',
        b'\xef\xbb\xbf{"f":1}',  # a byte-order mark
    ],
)
def test_a_value_that_is_not_a_json_object_is_a_bad_record(value: bytes) -> None:
    with pytest.raises(BadRecord):
        decode(KEY, value)


def test_like_jackson_only_the_first_json_value_counts() -> None:
    assert parse_json(b' {"f":1} ') == {"f": 1}
    assert parse_json(b'{"f":1} trailing') == {"f": 1}
    assert parse_json(b'{"f":1}{"g":2}') == {"f": 1}
    assert parse_json(b'{"f":1,"f":2}') == {"f": 2}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"1.50", "1.5"),
        (b"100.0", "1E+2"),
        (b"0.0", "0"),
        (b"-0.0", "0"),
        (b"0.10", "0.1"),
        (b"1e3", "1E+3"),
        (b"1.0e-400", "1E-400"),
        (b"123456789.123456789", "123456789.123456789"),
    ],
)
def test_json_fractions_are_exact_with_trailing_zeros_stripped(raw: bytes, expected: str) -> None:
    value = parse_json(b'{"f":' + raw + b"}")["f"]  # type: ignore[index]
    assert isinstance(value, Decimal)
    assert str(value) == expected


def test_json_integers_stay_exact_and_huge_floats_become_infinite() -> None:
    row = parse_json(b'{"big":123456789012345678901234567890,"inf":1e400,"ninf":-1e400}')
    assert row == {"big": 123456789012345678901234567890, "inf": math.inf, "ninf": -math.inf}


def test_a_key_that_is_not_an_object_is_no_key_fields() -> None:
    for key in (b"42", b"not json", b"[1]"):
        record = decode(key, b'{"a":1}')
        assert record == Record(key={}, value={"a": 1})


def test_malformed_utf8_reads_as_replacement_characters() -> None:
    assert parse_json(b'{"f":"a\xffb"}') == {"f": "a\ufffdb"}
