"""Expand a panel query exactly as Grafana would before it reaches the database.

Two data sources, two pipelines; both start with Grafana's template service, which
replaces dashboard variables in the browser.

Postgres (``grafana-postgresql-datasource``), in order:

1. variables: ``$name``, ``${name}``, ``${name:format}``, ``[[name]]``. Without an explicit
   format the SQL data source formats values itself: a single-valued variable is inserted
   raw with ``'`` doubled (so the query writes the quotes: ``'$symbol'``); a multi-valued or
   include-All variable becomes a comma-separated list of quoted literals;
2. server-wide substitutions: ``$__interval_ms``, ``$__interval``, ``$__unixEpochFrom()``,
   ``$__unixEpochTo()``;
3. macros, any ``$__name(args)``: ``$__timeFilter(c)`` -> ``c BETWEEN '<from>' AND '<to>'``,
   ``$__timeFrom()``/``$__timeTo()`` -> ``'<time>'`` (RFC 3339, UTC, Go's trailing-zero-free
   fraction), ``$__timeGroup(c, '1m')`` -> ``floor(extract(epoch from c)/60)*60`` and
   ``$__timeGroupAlias`` the same plus ``AS "time"``. An unknown macro is an error, as in
   Grafana.

Cassandra (``hadesarchitect-cassandra-datasource``): the plugin adds ``__timeFrom`` and
``__timeTo`` to the scoped variables as epoch milliseconds and runs the template service
over the CQL with no data-source formatter, so ``$__timeFrom`` becomes ``1795240229155``
(CQL accepts an integer literal for a ``timestamp``), a single value is inserted raw and a
multi-valued variable needs an explicit format, e.g. ``${day:singlequote}`` ->
``'2026-11-20','2026-11-21'``.

A variable whose current value is All expands to every option (no custom all-value).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

ALL = "$__all"

# Grafana's template-variable syntax (public/app/features/variables/utils.ts).
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)
# The Postgres macro engine's pattern: $name(args), args up to the first ')'.
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class ExpansionError(ValueError):
    """The query uses a macro or variable Grafana would reject."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange needs timezone-aware datetimes")

    @property
    def from_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def to_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


@dataclass
class Variable:
    """A resolved dashboard variable: its options and what is selected."""

    name: str
    options: list[str]
    current: str | list[str] = ALL
    multi: bool = False
    include_all: bool = False
    extra: dict = field(default_factory=dict)

    def value(self) -> str | list[str]:
        if self.current == ALL or self.current == [ALL]:
            return list(self.options)
        return self.current


# -- Grafana formats (public/app/features/templating/formatRegistry.ts) ----------------------


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _fmt_singlequote(value: str | list[str]) -> str:
    return ",".join("'" + v.replace("'", "\\'") + "'" for v in _as_list(value))


def _fmt_doublequote(value: str | list[str]) -> str:
    return ",".join('"' + v.replace('"', '\\"') + '"' for v in _as_list(value))


def _fmt_sqlstring(value: str | list[str]) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in _as_list(value))


def _fmt_csv(value: str | list[str]) -> str:
    return ",".join(_as_list(value))


def _fmt_raw(value: str | list[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _fmt_glob(value: str | list[str]) -> str:
    if isinstance(value, list) and len(value) > 1:
        return "{" + ",".join(value) + "}"
    return _as_list(value)[0] if value else ""


FORMATS: dict[str, Callable[[str | list[str]], str]] = {
    "singlequote": _fmt_singlequote,
    "doublequote": _fmt_doublequote,
    "sqlstring": _fmt_sqlstring,
    "csv": _fmt_csv,
    "raw": _fmt_raw,
    "glob": _fmt_glob,
}


def _sql_interpolate(value: str | list[str], variable: Variable) -> str:
    """The SQL data sources' own formatter (grafana-sql SqlDatasource.interpolateVariable)."""
    if isinstance(value, str):
        if variable.multi or variable.include_all:
            return "'" + value.replace("'", "''") + "'"
        return value.replace("'", "''")
    return ",".join("'" + v.replace("'", "''") + "'" for v in value)


def _default_interpolate(value: str | list[str], _variable: Variable) -> str:
    """Template service default: raw single value, glob for a list."""
    return _fmt_glob(value)


def replace_variables(
    text: str,
    variables: dict[str, Variable],
    scoped: dict[str, str],
    formatter: Callable[[str | list[str], Variable], str],
) -> str:
    """Grafana's templateSrv.replace: unknown names are left as written."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in scoped:
            return scoped[name]
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        value = variable.value()
        if fmt:
            if fmt not in FORMATS:
                raise ExpansionError(f"unsupported variable format {fmt!r} in {match.group(0)}")
            return FORMATS[fmt](value)
        return formatter(value, variable)

    return _VARIABLE.sub(sub, text)


# -- Postgres ----------------------------------------------------------------------------------


def go_rfc3339nano(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: fraction without trailing zeros, 'Z' suffix."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def go_float(value: float) -> str:
    """fmt's %v for a float64 (%g, shortest): exponent form when exp < -4 or >= 6 (1e+06)."""
    d = Decimal(repr(float(value))).normalize()
    exp = d.adjusted()
    if exp < -4 or exp >= 6:
        digits = str(abs(d.as_tuple().digits[0]))
        rest = "".join(str(x) for x in d.as_tuple().digits[1:])
        mantissa = digits + ("." + rest if rest else "")
        sign = "-" if d < 0 else ""
        return f"{sign}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    return format(d, "f")


def parse_interval(text: str) -> float:
    """Seconds in a Grafana interval string such as ``1m`` or ``30s``."""
    match = _INTERVAL.match(text.strip().strip("'"))
    if not match:
        raise ExpansionError(f"error parsing interval {text}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_interval(seconds: float) -> str:
    """gtime.FormatInterval, enough for whole units."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def _postgres_macro(name: str, args: list[str], rng: TimeRange) -> str:
    start, end = go_rfc3339nano(rng.start), go_rfc3339nano(rng.end)
    if name in {"__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter"} and not args[0]:
        raise ExpansionError(f"missing time column argument for macro {name}")
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name in {"__timeGroup", "__timeGroupAlias"}:
        if len(args) < 2:
            raise ExpansionError(f"macro {name} needs time column and interval")
        if len(args) == 3:
            raise ExpansionError("fill mode is not supported by this expander")
        seconds = go_float(parse_interval(args[1]))
        group = f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"
        return group + ' AS "time"' if name == "__timeGroupAlias" else group
    if name == "__unixEpochFilter":
        return (
            f"{args[0]} >= {int(rng.start.timestamp())} AND {args[0]} <= {int(rng.end.timestamp())}"
        )
    raise ExpansionError(f"unknown macro {name!r}")


def expand_postgres(
    sql: str,
    rng: TimeRange,
    variables: dict[str, Variable] | None = None,
    interval_seconds: float = 60.0,
) -> str:
    """The SQL the Postgres data source sends to the server."""
    text = replace_variables(
        sql,
        variables or {},
        {
            "__interval": format_interval(interval_seconds),
            "__interval_ms": str(int(interval_seconds * 1000)),
        },
        _sql_interpolate,
    )
    text = text.replace("$__interval_ms", str(int(interval_seconds * 1000)))
    text = text.replace("$__interval", format_interval(interval_seconds))
    text = text.replace("$__unixEpochFrom()", str(int(rng.start.timestamp())))
    text = text.replace("$__unixEpochTo()", str(int(rng.end.timestamp())))

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "__timeGroup":
            after = match.end()
            if after < len(text) and text[after] == ",":
                name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility rule
        args = [a.strip() for a in match.group(2).split(",")]
        return _postgres_macro(name, args, rng)

    return _MACRO.sub(sub, text)


# -- Cassandra ---------------------------------------------------------------------------------


def expand_cassandra(cql: str, rng: TimeRange, variables: dict[str, Variable] | None = None) -> str:
    """The CQL the Cassandra plugin sends to the cluster."""
    scoped = {"__timeFrom": str(rng.from_ms), "__timeTo": str(rng.to_ms)}
    return replace_variables(cql, variables or {}, scoped, _default_interpolate)


def expand(store: str, query: str, rng: TimeRange, variables: dict[str, Variable]) -> str:
    if store == "postgres":
        return expand_postgres(query, rng, variables)
    if store == "cassandra":
        return expand_cassandra(query, rng, variables)
    raise ValueError(f"unknown store {store!r}")


def referenced_variables(query: str) -> Sequence[str]:
    """Names of the template variables a query uses (built-ins excluded)."""
    names = []
    for match in _VARIABLE.finditer(query):
        name = match.group(1) or match.group(2) or match.group(4)
        if not name.startswith("__") and name not in names:
            names.append(name)
    return names
