"""Stage 3, fallback: a local spool for the batches Postgres could not take.

Guarantee: a batch handed to :meth:`SpoolingWriter.write` is, when ``write`` returns,
either committed in Postgres or in a spool file on local disk (written under a temporary
name, fsynced, renamed, the directory fsynced). Spooled batches go to Postgres oldest
first: when the producer starts, and while it runs before any newer batch, once Postgres
answers again. A file is deleted only after its transaction committed; the writes are
idempotent upserts (each table's ``on_conflict``), so a crash between the commit and the
delete replays the batch without duplicating anything.

While the spool holds a batch for this database, newer batches queue behind it, so an
older image of an updated row (the open kline, the heartbeat) never overwrites a newer one.

When the database stays unreachable for ``PRODUCER_SPOOL_AFTER_SECONDS``, the writer logs
once ``postgres unreachable ...`` and then ``spooled N rows of <table> to <path>
(postgres unreachable)`` per batch; from then on it asks Postgres at most every
:data:`PROBE_SECONDS` instead of waiting on each batch. When it answers: ``replayed N
spooled rows ...``.

One file per batch, ``<sequence>-<table>.jsonl``, JSON lines (no pickle): a header, then
one array per row in the header's column order::

    {"spool": 1, "table": "latest_prices", "target": "127.0.0.1:5432/cap_stock_db",
     "columns": ["symbol", "ts", "price", "day", "ingested_at"], "rows": 1,
     "spooled_at": "2026-11-21T05:35:00.123+00:00"}
    ["BTCUSDT", "2026-11-21T05:35:00.123+00:00", "97123.45000000", "2026-11-21",
     "2026-11-21T05:35:00.123+00:00"]

(each on one line). Values keep their exact form: numerics as decimal strings,
timestamps in ISO 8601 with milliseconds (microseconds when there are any), dates in ISO
form, integers and booleans as JSON. ``target`` is the database the rows are for: a
producer only replays its own database's files. A file that cannot be read back, or whose
rows Postgres rejects as invalid, is renamed ``*.bad``, logged once with the reason and
kept for a person to inspect; the spool moves on.

The directory is created mode 700 and must belong to the user running the producer (the
files replay straight into Postgres, so nobody else may write there); files are mode 600.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from capstock.config import ConfigError
from capstock.model.tables import TABLES, Table
from capstock.staging.writer import (
    DatabaseUnavailable,
    PostgresWriter,
    WriteAbandoned,
    WriteResult,
    dedupe,
    error_line,
)

log = logging.getLogger(__name__)

SPOOL_FORMAT = 1
SUFFIX = ".jsonl"
BAD_SUFFIX = ".bad"
TMP_PREFIX = ".tmp-"
LOCK_NAME = ".lock"
DIR_MODE = 0o700
FILE_MODE = 0o600
PROBE_SECONDS = 3.0
"""While Postgres is unreachable, at most one connection attempt per this many seconds."""
REJECTED_ERRORS = (psycopg.DataError, psycopg.IntegrityError)
"""Errors that say a batch can never be written as it is (so it is set aside, not retried)."""

_NAME = re.compile(r"^(\d+)-([a-z_][a-z0-9_]*)\.jsonl$")
_SEQUENCE = re.compile(r"^(\d+)-")

T = TypeVar("T")


class SpoolError(Exception):
    """The spool could not be written or used (disk full, permissions, ownership)."""


class SpoolCorrupt(Exception):
    """A spool file cannot be read back as a batch."""


# -- values -----------------------------------------------------------------------------------


def _decimal_text(v: Decimal) -> str:
    """``Decimal('0.00001230')`` → ``'0.00001230'`` (not ``1.230E-5``); exact either way."""
    if v.is_finite() and isinstance(v.as_tuple().exponent, int) and v.as_tuple().exponent <= 0:
        return format(v, "f")
    return str(v)


def _time_text(v: datetime) -> str:
    if v.tzinfo is None:
        raise TypeError(f"naive datetime {v!r} for a timestamptz column")
    spec = "milliseconds" if v.microsecond % 1000 == 0 else "microseconds"
    return v.isoformat(timespec=spec)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_date(v: Any) -> bool:
    return isinstance(v, date) and not isinstance(v, datetime)


def _aware(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError("no time zone")
    return t


def _same(v: Any) -> Any:
    return v


@dataclass(frozen=True)
class _Codec:
    """How one Postgres type is kept in a spool file."""

    python: Callable[[Any], bool]
    encode: Callable[[Any], Any]
    json: Callable[[Any], bool]
    decode: Callable[[Any], Any]


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


CODECS: dict[str, _Codec] = {
    "numeric": _Codec(lambda v: isinstance(v, Decimal), _decimal_text, _is_str, Decimal),
    "timestamptz": _Codec(lambda v: isinstance(v, datetime), _time_text, _is_str, _aware),
    "date": _Codec(_is_date, date.isoformat, _is_str, date.fromisoformat),
    "bigint": _Codec(_is_int, _same, _is_int, _same),
    "integer": _Codec(_is_int, _same, _is_int, _same),
    "boolean": _Codec(lambda v: isinstance(v, bool), _same, lambda v: isinstance(v, bool), _same),
    "text": _Codec(_is_str, _same, _is_str, _same),
}
"""Every Postgres type the table registry uses (tests check none is missing)."""


def _encode(pg_type: str, v: Any) -> Any:
    if v is None:
        return None
    codec = CODECS.get(pg_type)
    if codec is None:
        raise TypeError(f"no spool encoding for Postgres type {pg_type}")
    if not codec.python(v):
        raise TypeError(f"{v!r} ({type(v).__name__}) for a {pg_type} column")
    return codec.encode(v)


def _decode(pg_type: str, v: Any) -> Any:
    if v is None:
        return None
    codec = CODECS[pg_type]
    if codec.json(v):
        try:
            return codec.decode(v)
        except (ValueError, InvalidOperation):
            pass
    raise SpoolCorrupt(f"{v!r} is not a {pg_type} value")


# -- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpooledBatch:
    """One spool file read back: rows as dicts keyed by column name, values decoded."""

    path: Path
    table: Table
    target: str
    rows: list[dict]


class Spool:
    """A directory of spool files (see the module docstring), shared safely by processes:
    sequence numbers are taken and files are replayed under an exclusive ``flock``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Create the directory (mode 700) or check an existing one belongs to this user."""
        try:
            self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            st = self.directory.stat()
        except OSError as e:
            raise SpoolError(f"cannot create {self.directory}: {e.strerror}") from e
        if st.st_uid != os.geteuid():
            raise SpoolError(
                f"{self.directory} belongs to uid {st.st_uid}, not to this process "
                f"(uid {os.geteuid()}): give the producer a directory of its own"
            )
        if st.st_mode & 0o077:
            os.chmod(self.directory, DIR_MODE)
            log.warning("spool %s was open to other users: now mode 700", self.directory)
        self._lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
        self._remove_stale_temporaries()

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access among processes using this directory (not re-entrant)."""
        if self._lock_fd is None:
            self.open()
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _remove_stale_temporaries(self) -> None:
        """Half-written files of processes that died before their rename (never published)."""
        for path in self.directory.glob(f"{TMP_PREFIX}*"):
            pid = path.name[len(TMP_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    path.unlink()

    def files(self) -> list[Path]:
        """Spool files, oldest first."""
        found = []
        for path in self.directory.iterdir():
            m = _NAME.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
        return [path for _, path in sorted(found)]

    def _next_sequence(self) -> int:
        numbers = [
            int(m.group(1)) for p in self.directory.iterdir() if (m := _SEQUENCE.match(p.name))
        ]
        return max(numbers, default=0) + 1

    def put(self, table: Table, values: list[tuple], *, target: str) -> Path:
        """Write one batch (tuples in ``table.column_names`` order) durably; its path.

        Raises :class:`SpoolError` when it cannot (nothing is left behind then)."""
        header = {
            "spool": SPOOL_FORMAT,
            "table": table.name,
            "target": target,
            "columns": list(table.column_names),
            "rows": len(values),
            "spooled_at": _time_text(datetime.now(UTC)),
        }
        types = [c.pg_type for c in table.columns]
        try:
            lines = [_dumps(header)]
            lines.extend(
                _dumps([_encode(t, v) for t, v in zip(types, row, strict=True)]) for row in values
            )
        except TypeError as e:
            raise SpoolError(f"cannot encode a row of {table.name}: {e}") from e
        data = ("\n".join(lines) + "\n").encode()
        tmp = self.directory / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}{SUFFIX}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self.locked():
                path = self.directory / f"{self._next_sequence():012d}-{table.name}{SUFFIX}"
                os.rename(tmp, path)
            self._sync_directory()
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise SpoolError(f"cannot write {tmp}: {e.strerror or e}") from e
        return path

    def read(self, path: Path) -> SpooledBatch:
        """Read one file back; :class:`SpoolCorrupt` if it is not a complete, valid batch."""
        try:
            with path.open(encoding="utf-8") as f:
                header = json.loads(f.readline())
                raw = [json.loads(line) for line in f if line.strip()]
        except (OSError, ValueError) as e:
            raise SpoolCorrupt(f"unreadable: {e}") from e
        table, columns, target = self._check_header(header)
        if len(raw) != header.get("rows"):
            raise SpoolCorrupt(f"{len(raw)} rows, the header says {header.get('rows')}")
        types = [table.column(c).pg_type for c in columns]
        # A file written before a column was added has no value for it: NULL, as the
        # column is nullable (see tables.postgres_added_columns).
        added = {c: None for c in table.column_names if c not in columns}
        rows = []
        for values in raw:
            if not isinstance(values, list) or len(values) != len(columns):
                raise SpoolCorrupt(f"row {values!r} does not match the columns {columns}")
            decoded = zip(columns, types, values, strict=True)
            rows.append({**added, **{c: _decode(t, v) for c, t, v in decoded}})
        return SpooledBatch(path, table, target, rows)

    def header(self, path: Path) -> dict:
        """The first line of a spool file ({} if unreadable)."""
        try:
            with path.open(encoding="utf-8") as f:
                header = json.loads(f.readline())
        except (OSError, ValueError):
            return {}
        return header if isinstance(header, dict) else {}

    @staticmethod
    def _check_header(header: Any) -> tuple[Table, list[str], str]:
        if not isinstance(header, dict) or header.get("spool") != SPOOL_FORMAT:
            raise SpoolCorrupt(f"not a version {SPOOL_FORMAT} spool header: {header!r}")
        table = TABLES.get(header.get("table"))  # type: ignore[arg-type]
        if table is None:
            raise SpoolCorrupt(f"unknown table {header.get('table')!r}")
        columns = header.get("columns")
        if (
            not isinstance(columns, list)
            or not set(table.primary_key) <= set(columns)
            or not set(columns) <= set(table.column_names)
            or len(set(columns)) != len(columns)
        ):
            raise SpoolCorrupt(f"columns {columns!r} do not fit table {table.name}")
        return table, columns, str(header.get("target", ""))

    def remove(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def set_aside(self, path: Path, reason: str) -> Path:
        """Rename a file that can never be written to ``*.bad`` (kept, not replayed)."""
        bad = path.with_name(path.name + BAD_SUFFIX)
        os.rename(path, bad)
        log.error("spool file set aside as %s: %s", bad, reason)
        return bad

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the producer's writer --------------------------------------------------------------------


def target_of(conninfo: str) -> str:
    """``host:port/dbname`` of a conninfo: which database spooled rows belong to."""
    info = conninfo_to_dict(conninfo)
    return f"{info.get('host', '')}:{info.get('port', '5432')}/{info.get('dbname', '')}"


class SpoolingWriter:
    """The producer's writer: Postgres when it answers, the spool when it does not.

    Same interface as :class:`~capstock.staging.writer.PostgresWriter` for the jobs (``write``,
    ``delete_older_than``, ``last_trade_id``, ``trade_gaps_total``, ``trade_gaps_filled``,
    ``close``), plus
    :meth:`open` (at start: schema, then replay), :meth:`replay` and :meth:`pending`. See
    the module docstring for the guarantee. If the spool itself fails (disk full), the batch
    waits for Postgres as the plain writer does; rows still unwritten at shutdown then count
    in :attr:`lost_rows` and :class:`~capstock.staging.writer.WriteAbandoned` is raised.
    """

    def __init__(
        self,
        postgres: PostgresWriter,
        spool: Spool,
        *,
        spool_after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.postgres = postgres
        self.spool = spool
        self.spool_after = spool_after
        self.target = target_of(postgres.conninfo)
        self._clock = clock
        self._schema_ready = False
        self._down_since: float | None = None
        self._next_probe = 0.0
        self.spooled_rows = 0
        """Rows this process put in the spool."""
        self.replayed_rows = 0
        """Spooled rows this process wrote to Postgres."""
        self.lost_rows = 0
        """Rows neither written nor spooled (Postgres down and the spool failing at shutdown)."""

    # -- state -----------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        """Postgres did not answer the last attempt."""
        return self._down_since is not None

    def _call(self, fn: Callable[[], T]) -> T:
        """One Postgres operation: with the full patience while it answers, a single
        attempt (at most every PROBE_SECONDS) while it does not."""
        now = self._clock()
        if self.down and now < self._next_probe:
            raise DatabaseUnavailable("postgres unreachable (waiting for the next probe)")
        with self.postgres.patience_of(0 if self.down else self.spool_after):
            try:
                result = fn()
            except DatabaseUnavailable as e:
                self._went_down(e)
                raise
        if self._down_since is not None:
            log.info(
                "postgres answers again after %.0fs unreachable", self._clock() - self._down_since
            )
            self._down_since = None
        return result

    def _went_down(self, error: Exception) -> None:
        now = self._clock()
        self._next_probe = now + PROBE_SECONDS
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "postgres unreachable (%s): batches go to the spool %s until it answers "
                "(checked every %.0fs)",
                error,
                self.spool.directory,
                PROBE_SECONDS,
            )

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            self._call(self.postgres.init_schema)
            self._schema_ready = True

    # -- start and replay ----------------------------------------------------------------------

    def open(self) -> None:
        """At start: the spool directory, the schema, then every spooled batch of this
        database. Postgres being down is not an error here (jobs run and spool); an
        unusable spool directory is a :class:`~capstock.config.ConfigError`."""
        try:
            self.spool.open()
        except (SpoolError, OSError) as e:
            raise ConfigError(f"PRODUCER_SPOOL_DIR={str(self.spool.directory)!r}: {e}") from e
        files, rows = self.pending()
        if files:
            log.info(
                "spool %s holds %d rows in %d files from an earlier run",
                self.spool.directory,
                rows,
                files,
            )
        others = sorted(
            {str(self.spool.header(p).get("target")) for p in self.spool.files()} - {self.target}
        )
        if others:
            log.warning(
                "spool %s also holds files for other databases, not written by this producer: "
                "%s (start it with those POSTGRES_* settings to write them)",
                self.spool.directory,
                ", ".join(others),
            )
        with contextlib.suppress(DatabaseUnavailable):
            self.replay()
            self._ensure_schema()

    def _mine(self) -> list[Path]:
        return [p for p in self.spool.files() if self.spool.header(p).get("target") == self.target]

    def pending(self) -> tuple[int, int]:
        """(files, rows) waiting in the spool for this database."""
        paths = self._mine()
        rows = (self.spool.header(p).get("rows") for p in paths)
        return len(paths), sum(n for n in rows if isinstance(n, int))

    def replay(self) -> int:
        """Write this database's spooled batches, oldest first, deleting each file after its
        commit. Returns the rows written; raises :class:`DatabaseUnavailable` (the rest kept)
        when Postgres does not answer."""
        paths = self._mine()
        if not paths:
            return 0
        self._ensure_schema()
        started = time.monotonic()
        rows = changed = files = 0
        try:
            for group in _by_table(self.spool, paths):
                for written in self._replay_group(group):
                    rows += written.rows
                    changed += written.changed
                    files += 1
        finally:
            if files:
                self.replayed_rows += rows
                log.info(
                    "replayed %d spooled rows (%d files, %d changed) into postgres in %d ms; "
                    "%d files left",
                    rows,
                    files,
                    changed,
                    int((time.monotonic() - started) * 1000),
                    len(self._mine()),
                )
        return rows

    def _replay_group(self, paths: list[Path]) -> list[WriteResult]:
        """One table's spooled files in one write: the newest image of each key wins.

        One change event per key, not one per file: several images of one open candle
        committed within a millisecond would reach Cassandra with equal write times, and
        there the greater value, not the newer, wins. Falls back to file by file when
        Postgres refuses the merged batch, so only the bad file is set aside.
        """
        if len(paths) == 1:
            written = self._replay_file(paths[0])
            return [written] if written is not None else []
        with self.spool.locked():
            batches = []
            for path in paths:
                if not path.exists():  # another process replayed it
                    continue
                try:
                    batches.append(self.spool.read(path))
                except SpoolCorrupt as e:
                    self.spool.set_aside(path, str(e))
            if not batches:
                return []
            table = batches[0].table
            rows = [row for batch in batches for row in batch.rows]
            try:
                written = self._call(lambda: self.postgres.write(table, rows))
            except REJECTED_ERRORS:
                written = None
            if written is not None:
                for batch in batches:
                    self.spool.remove(batch.path)
                return [written] + [WriteResult(table.name, 0, 0)] * (len(batches) - 1)
        results = (self._replay_file(batch.path) for batch in batches)
        return [r for r in results if r is not None]

    def _replay_file(self, path: Path) -> WriteResult | None:
        with self.spool.locked():
            if not path.exists():  # another process replayed it
                return None
            try:
                batch = self.spool.read(path)
            except SpoolCorrupt as e:
                self.spool.set_aside(path, str(e))
                return None
            try:
                written = self._call(lambda: self.postgres.write(batch.table, batch.rows))
            except REJECTED_ERRORS as e:
                self.spool.set_aside(path, f"postgres rejects it: {error_line(e)}")
                return None
            self.spool.remove(path)
            return written

    # -- the jobs' interface ---------------------------------------------------------------------

    def write(self, table: Table, rows: Iterable[dict]) -> WriteResult:
        """Upsert ``rows`` into Postgres, behind any spooled batches; spool them when Postgres
        stays unreachable. ``rows`` in the result counts distinct rows either way."""
        rows = list(rows)
        if not rows:
            return WriteResult(table.name, 0, 0)
        try:
            self._ensure_schema()
            self.replay()
        except DatabaseUnavailable:
            return self._spool(table, rows)
        except Exception:
            self._spool(table, rows)  # behind the batches that could not be replayed
            raise
        try:
            return self._call(lambda: self.postgres.write(table, rows))
        except DatabaseUnavailable:
            return self._spool(table, rows)
        except REJECTED_ERRORS as e:
            self._keep_rejected(table, rows, e)
            raise

    def _keep_rejected(self, table: Table, rows: list[dict], error: Exception) -> None:
        """A batch Postgres refuses is kept as a ``*.bad`` spool file for a person to read."""
        try:
            path = self.spool.put(table, dedupe(table, rows), target=self.target)
            self.spool.set_aside(path, f"postgres rejects it: {error_line(error)}")
        except (SpoolError, OSError) as e:
            log.error("cannot keep the rejected batch of %s: %s", table.name, e)

    def _spool(self, table: Table, rows: list[dict]) -> WriteResult:
        values = dedupe(table, rows)
        try:
            path = self.spool.put(table, values, target=self.target)
        except SpoolError as e:
            log.error(
                "cannot spool %d rows of %s (%s): waiting for postgres instead",
                len(values),
                table.name,
                e,
            )
            return self._wait_for_postgres(table, rows, len(values))
        self.spooled_rows += len(values)
        log.warning(
            "spooled %d rows of %s to %s (postgres unreachable)", len(values), table.name, path
        )
        return WriteResult(table.name, len(values), 0, spooled=len(values))

    def _wait_for_postgres(self, table: Table, rows: list[dict], count: int) -> WriteResult:
        sleeper = self.postgres.sleeper
        while True:
            try:
                self.replay()
                return self._call(lambda: self.postgres.write(table, rows))
            except DatabaseUnavailable as e:
                if sleeper.stopped:
                    self.lost_rows += count
                    log.error(
                        "lost %d rows of %s: postgres unreachable and the spool unusable at "
                        "shutdown",
                        count,
                        table.name,
                    )
                    raise WriteAbandoned(f"write {table.name}: {e}") from e
                sleeper.wait(PROBE_SECONDS)

    def delete_older_than(self, table: Table, cutoff: datetime, batch: int) -> int:
        """Retention; skipped (0) while Postgres is unreachable."""
        try:
            self._ensure_schema()
            return self._call(lambda: self.postgres.delete_older_than(table, cutoff, batch))
        except DatabaseUnavailable:
            return 0

    def last_trade_id(self, symbol: str) -> int | None:
        """The highest stored trade id (after writing the spool); None while Postgres is
        unreachable (the trades job then keeps every fetched trade; duplicates are ignored
        by the table's ``ON CONFLICT DO NOTHING``)."""
        try:
            self._ensure_schema()
            self.replay()
            return self._call(lambda: self.postgres.last_trade_id(symbol))
        except DatabaseUnavailable:
            return None

    def trade_gaps_total(self, source: str) -> int | None:
        """The stored trade-gap total (after writing the spool); None while Postgres is
        unreachable (the heartbeat then carries NULL, which keeps the stored total)."""
        try:
            self._ensure_schema()
            self.replay()
            return self._call(lambda: self.postgres.trade_gaps_total(source))
        except DatabaseUnavailable:
            return None

    def last_closed_kline(self, symbol: str, interval: str) -> datetime | None:
        """:meth:`PostgresWriter.last_closed_kline`; None while Postgres is unreachable."""
        try:
            self._ensure_schema()
            self.replay()
            return self._call(lambda: self.postgres.last_closed_kline(symbol, interval))
        except DatabaseUnavailable:
            return None

    def stored_trade_id_runs(
        self, symbol: str, first_id: int, last_id: int
    ) -> list[tuple[int, int]] | None:
        """Runs of stored trade ids (:meth:`PostgresWriter.stored_trade_id_runs`); None
        while Postgres is unreachable."""
        try:
            self._ensure_schema()
            self.replay()
            return self._call(lambda: self.postgres.stored_trade_id_runs(symbol, first_id, last_id))
        except DatabaseUnavailable:
            return None

    def trade_gaps_filled(self, source: str) -> int | None:
        """The stored total of filled trade gaps; None while Postgres is unreachable."""
        try:
            self._ensure_schema()
            self.replay()
            return self._call(lambda: self.postgres.trade_gaps_filled(source))
        except DatabaseUnavailable:
            return None

    def close(self) -> None:
        self.postgres.close()
        self.spool.close()


def _by_table(spool: Spool, paths: list[Path]) -> list[list[Path]]:
    """Spool files grouped per table, oldest first within each (tables are independent)."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(str(spool.header(path).get("table")), []).append(path)
    return list(groups.values())
