"""JSON field values to Cassandra values, accepting and rejecting what the DataStax engine does.

The DataStax sink engine (messaging-connectors-commons 1.0.15 with the dsbulk JSON codecs)
reads a record's JSON with Jackson (floats as BigDecimal with trailing zeros stripped,
integers exact) and converts each field with the topic's codec settings
(`topic.<topic>.codec.*`). This module reproduces those conversions for the column
types the pipeline uses; `records.py` reproduces the JSON reading. Every row below was
checked against the engine's own codec classes, except two deliberate, stricter rules for
text columns (marked "strict" below; the Connect adapter must apply them too, or the two
sinks store different rows): an array or object is rejected, where the engine stores its
compact JSON, and a text longer than TEXT_MAX_CHARS is rejected, where the engine stores
anything up to Cassandra's limits. Every text column of the pipeline holds a short
identifier (a symbol, an interval, a book side, a heartbeat source), so a long text or a
JSON container there is a malformed record, not data.

Codec settings (defaults): locale en_US (the only one supported here), timeZone UTC,
timestamp CQL_TIMESTAMP (or UNITS_SINCE_EPOCH), date ISO_LOCAL_DATE (or ISO_DATE),
unit MILLISECONDS.

"null" below means: no value. A non-key column is then left unset (nullToUnset=true, the
default) or written null; a primary-key column makes the record bad.

==================  =====================  ====================  ===========================
JSON value          text                   decimal               bigint / int
==================  =====================  ====================  ===========================
null                null                   null                  null
true / false        "true" / "false"       1 / 0                 1 / 0
integer             its digits             exact, scale 0        exact if in range
fraction/exponent   Jackson's text: 1.50   trailing zeros        exact if integral and in
(1.50, 100.0, 1e3)  "1.5", 100.0 "1E+2"    stripped: 1.5, 1E+2   range (12.0, 1e3); 12.5 no
beyond a double     "Infinity"             rejected              rejected
(1e400)
"" (empty string)   ""                     null                  null
other string        as is                  number text (1)       number text (1), then an
                                                                 exact integer in range
array / object      rejected (strict)      null                  null
longer than         rejected (strict)      -                     -
TEXT_MAX_CHARS
==================  =====================  ====================  ===========================

==================  ========================  =====================  =====================
JSON value          boolean                   timestamp              date
==================  ========================  =====================  =====================
null                null                      null                   null
true / false        true / false              rejected               rejected
number              1 true, 0 false (1.0 and  rejected (epoch        rejected (epoch days)
                    0.0 too), else rejected   numbers: see (2))
"" (empty string)   null                      null                   null
other string        1 0 y n t f yes no true   CQL timestamp (2)      date (3)
                    false in any case; else
                    rejected (" true", "on")
array / object      rejected                  null                   null
==================  ========================  =====================  =====================

(1) Number text, the first reading that succeeds:
    a. en_US DecimalFormat "#,###.##", exact (keeps the scale): optional "-", digits (any
       Unicode decimal digit), "," groupings before the point, one ".", an "E" exponent
       (uppercase, optional "-"). "123.45", "1.10", "1,234.56", ",5" (=5), "1.". No
       surrounding whitespace. "NaN", "Infinity", "-Infinity" parse but are rejected.
    b. Java BigDecimal text: optional "+"/"-", "e"/"E" exponent with a sign.
       "+42", "1.5e3" (=1.5E+3), "1E+2".
    c. Java double text: surrounding whitespace, an f/d suffix or hex ("0x1p4") allowed;
       the value goes through a binary double and Java's Double.toString: " 42 " 42.0,
       " 1.50 " 1.5, " 0.1 " 0.1, "1d" 1.0. Only for 0 and 2.2e-308 <= |x| < 2**53:
       beyond that JDK 17 prints digits this module does not reproduce, so it rejects.
    d. A CQL timestamp (2), as its distance from the epoch in codec.unit, floored:
       "2024-01-15T10:30:00.1239Z" 1705314600123 (MILLISECONDS).
    e. A boolean word (as for boolean columns): 1 or 0.
    Otherwise rejected ("abc", "4_2", "1,000,", "0x10", "nan"). bigint and int then need
    an exact integer in range: "12.0", "1e3", "1,000", " 42 " accepted; "12.5",
    "9223372036854775808" (bigint), "2147483648" (int) rejected.

(2) CQL timestamp (codec.timestamp=CQL_TIMESTAMP): yyyy-MM-dd, then optionally "T" and/or
    " " and HH:mm[:ss[.fraction of 0 to 9 digits]], then optionally " " and a zone (UTC,
    GMT, UT, Z or an Area/Location id such as Europe/Paris), then optionally an offset
    (Z, +HH:MM, +HHMM or +HH, up to 18 hours). An offset wins over a zone; with neither the
    time is read in codec.timeZone; a date alone is midnight. Strict calendar (no Feb 30,
    no 24:00, no :60); years of 4 digits, or more with a sign. No surrounding whitespace.
    Sub-millisecond digits are floored (Instant.toEpochMilli): .1239 is 123 ms and
    1969-12-31T23:59:59.9995Z is -1 ms. Rejected: "...+01:00[Europe/Paris]", RFC 1123,
    epoch digits and JSON numbers, lowercase t or z, zone abbreviations other than
    UTC/GMT/UT/Z (the engine resolves CET, PST... through Java's locale data; stricter).
    codec.timestamp=UNITS_SINCE_EPOCH instead: an integral JSON number or number text (1a)
    in codec.unit since the epoch; ISO text is then rejected.

(3) date: yyyy-MM-dd (same year rules). codec.date=ISO_DATE also takes a trailing Z/z or
    +HH:MM[:ss] offset, which is ignored ("2026-11-21Z" is 2026-11-21; Debezium's
    isostring mode writes Postgres dates so). A day 29-31 past the end of its month moves
    to the month's last day, as Java's SMART resolver does: "2024-02-30" is 2024-02-29.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cassandra.util import Date

# What records.py produces: Decimal for JSON fractions/exponents, float only for a JSON
# number beyond double range (Jackson keeps it as a double: +-Infinity).
Json = None | bool | int | Decimal | float | str | list[Any] | dict[str, Any]

CQL_TYPES = ("text", "varchar", "decimal", "bigint", "int", "boolean", "timestamp", "date")
TIME_UNITS_NS = {
    "NANOSECONDS": 1,
    "MICROSECONDS": 1_000,
    "MILLISECONDS": 1_000_000,
    "SECONDS": 1_000_000_000,
    "MINUTES": 60_000_000_000,
    "HOURS": 3_600_000_000_000,
    "DAYS": 86_400_000_000_000,
}
BOOLEAN_WORDS = {
    "1": True, "0": False, "y": True, "n": False, "t": True, "f": False,
    "yes": True, "no": False, "true": True, "false": False,
}  # fmt: skip

# The longest text accepted, in Unicode code points (Java: String.codePointCount). The
# pipeline's text columns are short identifiers (BTCUSDT, 1m, BUY, producer); 256 leaves
# ample room and keeps a runaway value out of a partition key. The Connect adapter must
# use the same number.
TEXT_MAX_CHARS = 256

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_NS_PER_S = 1_000_000_000
# java.time.Instant's range, in seconds.
_INSTANT_MIN_S, _INSTANT_MAX_S = -31557014167219200, 31556889864403199
_YEAR_LIMIT = 999_999_999
_EXPONENT_LIMIT = 999_999_999
_OFFSET_LIMIT_S = 18 * 3600
# Below 2**53 and above the smallest normal double, JDK 17's Double.toString prints the
# shortest round-trip digits, which Python's repr also prints (checked over 7,000 values).
_DOUBLE_EXACT_MIN, _DOUBLE_EXACT_LIMIT = 2.2250738585072014e-308, 2.0**53
_AREAS = (
    "Africa/", "America/", "Antarctica/", "Arctic/", "Asia/", "Atlantic/", "Australia/",
    "Europe/", "Indian/", "Pacific/",
)  # fmt: skip
_FIXED_ZONE_TEXTS = ("UTC", "GMT", "UT", "Z")


class Rejected(ValueError):
    """The engine would refuse this value for this column type."""


@dataclass(frozen=True)
class Codecs:
    """One topic's `topic.<topic>.codec.*` settings (config.py validates them)."""

    time_zone: tzinfo = field(default=UTC)
    timestamp: str = "CQL_TIMESTAMP"
    date: str = "ISO_LOCAL_DATE"
    unit: str = "MILLISECONDS"


DEFAULT_CODECS = Codecs()


def convert(value: Json, cql_type: str, codecs: Codecs = DEFAULT_CODECS) -> Any:
    """The driver value for one JSON field, None for no value; raises Rejected."""
    if value is None:
        return None
    if cql_type in ("text", "varchar"):
        return _text(value)
    if isinstance(value, list | dict):
        # Jackson's text of a container is "", which every converter but text and
        # boolean reads as no value.
        if cql_type == "boolean":
            raise Rejected(f"{_show(value)} is not a boolean")
        return None
    if isinstance(value, str) and value == "":
        return None
    if cql_type == "decimal":
        return _decimal(value, codecs)
    if cql_type == "bigint":
        return _integer(value, codecs, LONG_MIN, LONG_MAX)
    if cql_type == "int":
        return _integer(value, codecs, INT_MIN, INT_MAX)
    if cql_type == "boolean":
        return _boolean(value)
    if cql_type == "timestamp":
        return _timestamp(value, codecs)
    if cql_type == "date":
        return _date(value, codecs)
    raise Rejected(f"cap-stock-sink does not convert {cql_type} columns")


# --- text ------------------------------------------------------------------------------


def _text(value: Json) -> str:
    if isinstance(value, list | dict):
        # Strict: the engine would store the container's compact JSON.
        raise Rejected(f"{_show(value)[:80]} is a JSON {_container(value)}, not text")
    text = value if isinstance(value, str) else jackson_text(value)
    if len(text) > TEXT_MAX_CHARS:
        # Strict: the engine stores any length Cassandra takes.
        raise Rejected(f"text of {len(text)} characters is longer than {TEXT_MAX_CHARS}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(f"{_show(value)} is not valid Unicode (a lone surrogate)") from None
    return text


def _container(value: list[Any] | dict[str, Any]) -> str:
    return "array" if isinstance(value, list) else "object"


def jackson_text(value: bool | int | Decimal | float | str) -> str:
    """What Jackson's JsonNode.asText() gives for a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "Infinity" if value > 0 else "-Infinity"
    # str(Decimal) and Java's BigDecimal.toString follow the same scientific-notation rule.
    return str(value)


def jackson_json(value: Json) -> str:
    """Compact JSON as Jackson writes it (uppercase \\u00XX escapes, non-ASCII as is)."""
    if isinstance(value, dict):
        items = (f"{_json_string(k)}:{jackson_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(jackson_json(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, float):
        # Jackson quotes non-finite numbers when it writes them.
        return _json_string(jackson_text(value))
    return jackson_text(value)


_SHORT_ESCAPES = {
    '"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r",
}  # fmt: skip
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _json_string(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04X}"

    return '"' + _NEEDS_ESCAPE.sub(escape, text) + '"'


# --- numbers ---------------------------------------------------------------------------

Number = int | Decimal | float  # Java Long/BigInteger, BigDecimal, Double


def _decimal(value: bool | int | Decimal | float | str, codecs: Codecs) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        raise Rejected(f"{jackson_text(value)} is not a decimal")
    return _to_decimal(_parse_number(value, codecs), value)


def _integer(value: bool | int | Decimal | float | str, codecs: Codecs, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        return int(value)
    number = _parse_number(value, codecs) if isinstance(value, str) else value
    result = _exact_integer(number, value)
    if not lo <= result <= hi:
        raise Rejected(f"{_show(value)} is out of range ({lo}..{hi})")
    return result


def _to_decimal(number: Number, original: Json) -> Decimal:
    if isinstance(number, int):
        return Decimal(number)
    if isinstance(number, float):
        number = _double_as_decimal(number, original)
    # BigDecimal has no negative zero.
    return number.copy_abs() if number.is_zero() else number


def _exact_integer(number: Number, original: Json) -> int:
    if isinstance(number, int):
        return number
    if isinstance(number, float):
        number = _double_as_decimal(number, original)
    if number.is_zero():
        return 0
    if number.adjusted() > 20 or number != number.to_integral_value():
        raise Rejected(f"{_show(original)} is not an integer in range")
    return int(number)


def _double_as_decimal(number: float, original: Json) -> Decimal:
    """new BigDecimal(Double.toString(d)), as the engine narrows a Java double."""
    if not math.isfinite(number):
        raise Rejected(f"{_show(original)} is not a finite number")
    if number != 0 and not _DOUBLE_EXACT_MIN <= abs(number) < _DOUBLE_EXACT_LIMIT:
        raise Rejected(
            f"{_show(original)} reads as the double {number!r}, whose Java digits this sink "
            "does not reproduce"
        )
    return Decimal(java_double_text(number))


def java_double_text(number: float) -> str:
    """Java's Double.toString layout: plain for 1e-3 <= |d| < 1e7, else d.dddE<n>."""
    if number == 0:
        return "-0.0" if math.copysign(1.0, number) < 0 else "0.0"
    sign = "-" if number < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(number))).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    point = len(digit_tuple) + exponent  # digits before the decimal point
    if 1e-3 <= abs(number) < 1e7:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point - 1}"


def _parse_number(text: str, codecs: Codecs) -> Number:
    """CodecUtils.parseNumber: format, BigDecimal, double, timestamp, boolean word."""
    if text == _java_trim(text):
        number = parse_decimal_format(text)
        if number is not None:
            return number
    number = _big_decimal(text)
    if number is not None:
        return number
    number = _java_double(text)
    if number is not None:
        return number
    if codecs.timestamp == "CQL_TIMESTAMP":
        # (Under UNITS_SINCE_EPOCH this step can only read what the first one already did.)
        try:
            nanos = parse_cql_timestamp(text, codecs.time_zone)
        except Rejected:
            pass
        else:
            return _instant_to_units(nanos, codecs.unit)
    word = BOOLEAN_WORDS.get(text.lower())
    if word is not None:
        return int(word)
    raise Rejected(f"cannot read {text!r} as a number")


def _java_trim(text: str) -> str:
    # String.trim(): every character up to U+0020, not only whitespace.
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _digit(char: str) -> int | None:
    # Character.digit(c, 10) on a UTF-16 unit: Unicode decimal digits of the BMP.
    if "0" <= char <= "9":
        return ord(char) - 48
    if ord(char) > 0xFFFF:
        return None
    return unicodedata.decimal(char, None)


def parse_decimal_format(text: str) -> Decimal | float | None:
    """The whole of `text` read by an en_US DecimalFormat("#,###.##") set to parse
    BigDecimals; None when it does not read to the end. NaN/Infinity come back as floats."""
    if text.startswith("NaN"):
        return math.nan if text == "NaN" else None
    pos = 1 if text.startswith("-") else 0
    negative = pos == 1
    if text.startswith("Infinity", pos):
        return (-math.inf if negative else math.inf) if pos + 8 == len(text) else None
    digits: list[str] = []  # significant digits, trailing zeros included
    point = 0  # where the decimal point sits relative to digits, as DigitList.decimalAt
    saw_digit = saw_point = False
    backup = -1  # a grouping comma must be followed by a digit, else parsing stops at it
    exponent = 0
    while pos < len(text):
        char = text[pos]
        value = _digit(char)
        if value is not None:
            saw_digit, backup = True, -1
            if value == 0 and not digits:
                # Leading zeros: ignored before the point, shift the point after it.
                if saw_point:
                    point -= 1
            else:
                digits.append(str(value))
        elif char == ".":
            if saw_point:
                break
            point, saw_point = len(digits), True
        elif char == ",":
            if saw_point:
                break
            backup = pos
        elif char == "E":
            end, value = _format_exponent(text, pos + 1)
            if end is not None:
                pos, exponent = end, value
            break
        else:
            break
        pos += 1
    if backup != -1:
        pos = backup
    if not saw_point:
        point = len(digits)
    if not saw_digit or pos != len(text):
        return None
    point += exponent
    if not digits:
        return Decimal((0, (0,), point))
    return Decimal((int(negative), tuple(map(int, digits)), point - len(digits)))


def _format_exponent(text: str, pos: int) -> tuple[int | None, int]:
    negative = text.startswith("-", pos)
    pos += negative
    start, magnitude = pos, 0
    while pos < len(text) and (value := _digit(text[pos])) is not None:
        magnitude = magnitude * 10 + value
        pos += 1
    if pos == start:
        return None, 0
    if magnitude > _EXPONENT_LIMIT:
        # Java casts the exponent to an int (4294967296 becomes 0): stricter here.
        raise Rejected(f"exponent in {text!r} is out of range")
    return pos, -magnitude if negative else magnitude


_BIG_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _big_decimal(text: str) -> Decimal | None:
    """new BigDecimal(text): Unicode digits allowed, whitespace not, scale within int."""
    if not _BIG_DECIMAL.fullmatch(text) or any(ord(c) > 0xFFFF for c in text):
        return None
    ascii_text = "".join(str(_digit(c)) if c.isdigit() else c for c in text)
    mantissa, _, exp = ascii_text.lower().partition("e")
    fraction = mantissa.partition(".")[2]
    exponent = int(exp or 0)
    # Both the exponent and the resulting scale must fit in an int.
    if not INT_MIN <= exponent <= INT_MAX or not INT_MIN <= len(fraction) - exponent <= INT_MAX:
        return None
    number = Decimal(ascii_text)
    return number.copy_abs() if number.is_zero() else number


_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity"
    r"|(?P<dec>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[fFdD]?"
    r"|(?P<hex>0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)[fFdD]?)"
)


def _java_double(text: str) -> float | None:
    """Double.valueOf(text): trims, ASCII digits, f/d suffix, hex with a binary exponent."""
    trimmed = _java_trim(text)
    match = _JAVA_DOUBLE.fullmatch(trimmed)
    if not match:
        return None
    negative = trimmed.startswith("-")
    if match["hex"]:
        try:
            magnitude = float.fromhex(match["hex"])
        except OverflowError:
            magnitude = math.inf
    elif match["dec"]:
        magnitude = float(match["dec"])
    else:
        magnitude = math.nan if "NaN" in trimmed else math.inf
    return -magnitude if negative else magnitude


# --- booleans --------------------------------------------------------------------------


def _boolean(value: bool | int | Decimal | float | str) -> bool:
    if isinstance(value, bool):
        return value
    word = BOOLEAN_WORDS.get(jackson_text(value).lower())
    if word is None:
        raise Rejected(f"{_show(value)} is not a boolean")
    return word


# --- time ------------------------------------------------------------------------------


def _timestamp(value: bool | int | Decimal | float | str, codecs: Codecs) -> int:
    """Milliseconds since the epoch, what the driver binds for a timestamp column."""
    if codecs.timestamp == "UNITS_SINCE_EPOCH":
        if isinstance(value, bool):
            raise Rejected(f"{_show(value)} is not a number of {codecs.unit.lower()}")
        if isinstance(value, str):
            parsed = parse_decimal_format(value)
            if parsed is None:
                raise Rejected(f"cannot read {value!r} as a number of {codecs.unit.lower()}")
            value = parsed
        try:
            units = _exact_integer(value, value)
        except Rejected:
            raise Rejected(f"{_show(value)} is not a whole number of units") from None
        if not LONG_MIN <= units <= LONG_MAX:
            raise Rejected(f"{_show(value)} is out of range")
        nanos = units * TIME_UNITS_NS[codecs.unit]
        if not _INSTANT_MIN_S <= nanos // _NS_PER_S <= _INSTANT_MAX_S:
            raise Rejected(f"{_show(value)} {codecs.unit.lower()} is beyond Java's Instant range")
    else:
        nanos = parse_cql_timestamp(jackson_text(value), codecs.time_zone)
    millis = nanos // 1_000_000  # Instant.toEpochMilli floors
    if not LONG_MIN <= millis <= LONG_MAX:
        raise Rejected(f"{_show(value)} is beyond the timestamp range")
    return millis


def _instant_to_units(nanos: int, unit: str) -> int:
    """CodecUtils.instantToNumber: TimeUnit.convert of the seconds (saturating) plus that
    of the nanoseconds, added with Java's long overflow."""
    seconds, nano_part = divmod(nanos, _NS_PER_S)
    per_unit = TIME_UNITS_NS[unit]
    if per_unit <= _NS_PER_S:
        whole = _saturate(seconds * (_NS_PER_S // per_unit))
    else:
        whole = _truncate_div(seconds, per_unit // _NS_PER_S)
    total = whole + nano_part // per_unit
    return (total - LONG_MIN) % 2**64 + LONG_MIN


def _saturate(value: int) -> int:
    return max(LONG_MIN, min(LONG_MAX, value))


def _truncate_div(a: int, b: int) -> int:
    quotient = abs(a) // b
    return quotient if a >= 0 else -quotient


def _date(value: bool | int | Decimal | float | str, codecs: Codecs) -> date | Date:
    year, month, day, pos = _local_date(text := jackson_text(value), 0, value)
    if codecs.date == "ISO_DATE" and pos < len(text):
        end = _iso_offset(text, pos)
        if end is not None:
            pos = end
    if pos != len(text):
        raise Rejected(f"cannot read {_show(value)} as a date ({codecs.date})")
    # Java's SMART resolver: a day past the end of its month becomes the month's last day.
    day = min(day, _month_length(year, month))
    if 1 <= year <= 9999:
        return date(year, month, day)
    days = _days_from_civil(year, month, day)
    if not INT_MIN <= days <= INT_MAX:
        raise Rejected(f"{_show(value)} is beyond the date range")
    return Date(days)


def _two_digits(text: str, pos: int) -> int | None:
    chunk = text[pos : pos + 2]
    return int(chunk) if len(chunk) == 2 and chunk.isascii() and chunk.isdigit() else None


def _local_date(text: str, pos: int, original: Json) -> tuple[int, int, int, int]:
    """ISO_LOCAL_DATE, strict: 4-digit year, more digits only with a sign, no -0000."""
    sign = text[pos : pos + 1]
    start = pos + (sign in ("+", "-"))
    end = start
    while end < len(text) and end - start < 10 and "0" <= text[end] <= "9":
        end += 1
    width = end - start
    year = int(text[start:end]) if width else 0
    month = _two_digits(text, end + 1)
    day = _two_digits(text, end + 4)
    if (
        width < 4
        or (sign == "+" and width <= 4)
        or (sign not in ("+", "-") and width > 4)
        or (sign == "-" and year == 0)
        or year > _YEAR_LIMIT
        or text[end : end + 1] != "-"
        or text[end + 3 : end + 4] != "-"
        or month is None
        or day is None
        or not 1 <= month <= 12
        or not 1 <= day <= 31
    ):
        raise Rejected(f"cannot read {_show(original)} as a date or timestamp")
    return (-year if sign == "-" else year), month, day, end + 6


def _local_time(text: str, pos: int) -> tuple[int, int] | None:
    """HH:mm[:ss[.f{0,9}]] at pos: (nanoseconds into the day, end), or None."""
    hour, minute = _two_digits(text, pos), _two_digits(text, pos + 3)
    if hour is None or minute is None or text[pos + 2 : pos + 3] != ":":
        return None
    second, nanos, end = 0, 0, pos + 5
    if text[end : end + 1] == ":" and (parsed := _two_digits(text, end + 1)) is not None:
        second, end = parsed, end + 3
        if text[end : end + 1] == ".":
            end += 1
            fraction = ""
            while end < len(text) and len(fraction) < 9 and "0" <= text[end] <= "9":
                fraction += text[end]
                end += 1
            nanos = int(fraction.ljust(9, "0"))
    if hour > 23 or minute > 59 or second > 59:
        return None
    return ((hour * 60 + minute) * 60 + second) * _NS_PER_S + nanos, end


def _offset(text: str, pos: int, colon: bool) -> tuple[int, int] | None:
    """Z, +HH:MM (colon) or Z, +HH[MM] (no colon) at pos: (seconds east, end), or None."""
    if text[pos : pos + 1] == "Z":
        return 0, pos + 1
    sign = text[pos : pos + 1]
    hours = _two_digits(text, pos + 1)
    if sign not in ("+", "-") or hours is None:
        return None
    end, minutes = pos + 3, 0
    if colon:
        minutes_part = _two_digits(text, pos + 4)
        if text[pos + 3 : pos + 4] != ":" or minutes_part is None:
            return None
        minutes, end = minutes_part, pos + 6
    elif (minutes_part := _two_digits(text, pos + 3)) is not None:
        minutes, end = minutes_part, pos + 5
    if hours > 23 or minutes > 59:
        return None
    seconds = (hours * 60 + minutes) * 60
    return (-seconds if sign == "-" else seconds), end


def _iso_offset(text: str, pos: int) -> int | None:
    """ISO_DATE's offset: Z or z, or +HH:MM[:ss]; the end position, or None."""
    if text[pos : pos + 1] in ("Z", "z"):
        return pos + 1
    parsed = _offset(text, pos, colon=True)
    if parsed is None:
        return None
    end = parsed[1]
    if text[end : end + 1] == ":" and (seconds := _two_digits(text, end + 1)) is not None:
        end = end + 3 if seconds <= 59 else end
    return end


@cache
def _region_ids() -> frozenset[str]:
    return frozenset(z for z in available_timezones() if z.startswith(_AREAS))


_ZONE_RUN = re.compile(r"[A-Za-z0-9_/+-]+")


def _zone_text(text: str, pos: int) -> tuple[tzinfo, int] | None:
    """The longest zone name at pos (UTC, GMT, UT, Z or an Area/Location id)."""
    run = _ZONE_RUN.match(text, pos)
    if not run:
        return None
    word = run.group()
    for end in range(len(word), 0, -1):
        name = word[:end]
        if name in _FIXED_ZONE_TEXTS:
            return UTC, pos + end
        if "/" in name and name in _region_ids():
            return ZoneInfo(name), pos + end
    return None


def parse_cql_timestamp(text: str, default_zone: tzinfo) -> int:
    """Nanoseconds since the epoch for the engine's CQL_TIMESTAMP format (rule 2)."""
    year, month, day, pos = _local_date(text, 0, text)
    nanos_of_day = 0
    # Optional time section: "T"? " "? then the time; dropped whole when the time is absent.
    start = pos + (text[pos : pos + 1] == "T")
    start += text[start : start + 1] == " "
    parsed_time = _local_time(text, start)
    if parsed_time:
        nanos_of_day, pos = parsed_time
    zone: tzinfo | None = None
    if text[pos : pos + 1] == " " and (parsed_zone := _zone_text(text, pos + 1)):
        zone, pos = parsed_zone
    offset: int | None = None
    for colon in (True, False):
        parsed_offset = _offset(text, pos, colon)
        # A second, different offset fails its optional section and is left unparsed.
        if parsed_offset and offset in (None, parsed_offset[0]):
            offset, pos = parsed_offset
    if pos != len(text):
        raise Rejected(f"cannot read {text!r} as a CQL timestamp")
    if day > _month_length(year, month):
        raise Rejected(f"{text!r} is not a calendar date")
    if offset is not None and abs(offset) > _OFFSET_LIMIT_S:
        raise Rejected(f"{text!r} has an offset beyond 18 hours")
    local_seconds = _days_from_civil(year, month, day) * 86400 + nanos_of_day // _NS_PER_S
    zone = zone or default_zone
    if offset is None:
        offset = _zone_offset(zone, year, month, day, nanos_of_day, text)
    return (local_seconds - offset) * _NS_PER_S + nanos_of_day % _NS_PER_S


def _zone_offset(zone: tzinfo, year: int, month: int, day: int, nanos: int, text: str) -> int:
    if isinstance(zone, timezone):
        delta = zone.utcoffset(None)
    else:
        if not 1 <= year <= 9999:
            raise Rejected(f"{text!r}: year {year} in a region time zone is not supported")
        seconds = nanos // _NS_PER_S
        # fold=0 takes the earlier offset in an overlap and, in a gap, the offset before
        # it: the same instants as Java's ZonedDateTime.of.
        local = datetime(year, month, day, seconds // 3600, seconds // 60 % 60, seconds % 60)
        delta = zone.utcoffset(local)
    assert delta is not None
    return int(delta.total_seconds())


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 in the proleptic Gregorian calendar, any year."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


_ZONE_OFFSET = re.compile(r"[+-](\d{1,2}|\d{2}:?\d{2}|\d{2}:\d{2}:\d{2}|\d{6})")


def parse_time_zone(name: str) -> tzinfo:
    """ZoneId.of for codec.timeZone: Z, UTC/GMT/UT, an offset (+h, +hh, +hh:mm, +hhmm,
    +hh:mm:ss, +hhmmss) with or without a UTC/GMT/UT prefix, or a tz database id.
    Raises ValueError."""
    if name in ("Z", "UTC", "GMT", "UT"):
        return UTC
    prefix = next((p for p in ("UTC", "GMT", "UT") if re.match(p + "[+-]", name)), "")
    offset = name[len(prefix) :]
    match = _ZONE_OFFSET.fullmatch(offset)
    if match:
        digits = match.group(1).replace(":", "").rjust(2, "0").ljust(6, "0")
        hours, minutes, seconds = int(digits[:2]), int(digits[2:4]), int(digits[4:])
        total = hours * 3600 + minutes * 60 + seconds
        if minutes > 59 or seconds > 59 or total > _OFFSET_LIMIT_S:
            raise ValueError(f"offset {offset!r} is out of range (at most 18 hours)")
        return timezone(timedelta(seconds=-total if offset[0] == "-" else total))
    if prefix or not re.fullmatch(r"[A-Za-z][A-Za-z0-9~/._+-]+", name):
        raise ValueError(f"{name!r} is not a time zone id")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _show(value: Json) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | dict):
        return jackson_json(value)
    return jackson_text(value)
