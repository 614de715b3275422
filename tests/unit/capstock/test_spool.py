"""The spool: exact round trips, durable files, and the writer that falls back to it.

``FakePostgres`` stands in for :class:`PostgresWriter` (up or down at the test's word);
the real database is exercised in tests/integration/test_spool_replay.py.
"""

import contextlib
import json
import logging
import os
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from capstock.config import ConfigError
from capstock.model.tables import HEARTBEAT, KLINE_DATA, LATEST_PRICES, RECENT_TRADES, TABLES
from capstock.staging.spool import (
    CODECS,
    PROBE_SECONDS,
    Spool,
    SpoolError,
    SpoolingWriter,
    target_of,
)
from capstock.staging.writer import DatabaseUnavailable, WriteAbandoned, WriteResult, dedupe

from tests.support.clock import FakeClock, RecordingSleeper

T0 = datetime(2026, 11, 21, 5, 35, 0, 123000, tzinfo=UTC)
CONNINFO = "host=127.0.0.1 port=5432 dbname=cap_stock_db user=cap_stock"


def trade(trade_id: int, **changes) -> dict:
    row = {
        "symbol": "SHIBUSDT",
        "trade_id": trade_id,
        "price": Decimal("0.00001234"),
        "qty": Decimal("123456789.00"),
        "quote_qty": Decimal("1523.45677626"),
        "trade_time": T0 + timedelta(milliseconds=trade_id),
        "is_buyer_maker": False,
        "is_best_match": True,
        "day": T0.date(),
        "ingested_at": T0,
    }
    return {**row, **changes}


def kline(volume: str) -> dict:
    return {
        "symbol": "BTCUSDT",
        "interval": "1m",
        "open_time": T0.replace(second=0, microsecond=0),
        "close_time": T0.replace(second=59, microsecond=999000),
        "open": Decimal("97000.01000000"),
        "high": Decimal("97100"),
        "low": Decimal("-0.0"),
        "close": Decimal("1E-8"),
        "volume": Decimal(volume),
        "quote_volume": Decimal("12345678901234567890.123456789012"),
        "trade_count": 2**62,
        "taker_buy_base_volume": Decimal("0"),
        "taker_buy_quote_volume": Decimal("0E-8"),
        "is_closed": False,
        "rank": None,
        "ingested_at": T0.replace(microsecond=123456),
    }


def beat(n: int) -> dict:
    return {
        "source": "producer",
        "beat_time": T0 + timedelta(seconds=n),
        "weight_used_1m": n,
        "trade_gaps_total": 0,
        "ingested_at": T0 + timedelta(seconds=n),
        "exchange_error": None,
        "exchange_error_since": None,
        "trade_gaps_filled": None,
        "trade_gaps_open": None,
        "ingest_mode": None,
    }


def exact(value):
    """A value with its type and, for decimals, its digits and exponent."""
    if isinstance(value, Decimal):
        return ("Decimal", value.as_tuple())
    return (type(value).__name__, value)


class FakePostgres:
    """Up or down on demand; records committed batches like the real writer's upserts."""

    def __init__(self) -> None:
        self.conninfo = CONNINFO
        self.sleeper = RecordingSleeper()
        self.patience: float | None = None
        self.up = True
        self.calls = 0
        self.reject: Exception | None = None
        self.committed: list[tuple[str, list[dict]]] = []

    @contextlib.contextmanager
    def patience_of(self, seconds):
        saved, self.patience = self.patience, seconds
        try:
            yield
        finally:
            self.patience = saved

    def _reach(self) -> None:
        self.calls += 1
        if not self.up:
            raise DatabaseUnavailable("connection refused")

    def init_schema(self) -> None:
        self._reach()

    def write(self, table, rows) -> WriteResult:
        self._reach()
        if self.reject is not None:
            raise self.reject
        rows = list(rows)
        self.committed.append((table.name, rows))
        n = len(dedupe(table, rows))
        return WriteResult(table.name, n, n)

    def delete_older_than(self, table, cutoff, batch) -> int:
        self._reach()
        return 0

    def last_trade_id(self, symbol):
        self._reach()
        ids = [r["trade_id"] for t, rows in self.committed if t == "recent_trades" for r in rows]
        return max(ids, default=None)

    def trade_gaps_total(self, source):
        self._reach()
        beats = [r for t, rows in self.committed if t == "heartbeat" for r in rows]
        totals = [r["trade_gaps_total"] for r in beats if r["source"] == source]
        return next((n for n in reversed(totals) if n is not None), 0)

    def close(self) -> None:
        pass


@pytest.fixture
def spool(tmp_path):
    s = Spool(tmp_path / "spool")
    s.open()
    yield s
    s.close()


@pytest.fixture
def clock():
    return FakeClock(0.0)


@pytest.fixture
def pg():
    return FakePostgres()


@pytest.fixture
def writer(pg, spool, clock):
    w = SpoolingWriter(pg, spool, spool_after=10, clock=clock)
    w.open()
    return w


# -- files -------------------------------------------------------------------------------------


def test_every_postgres_type_of_the_registry_has_a_codec():
    used = {c.pg_type for t in TABLES.values() for c in t.columns}
    assert used <= set(CODECS)


def test_round_trip_keeps_exact_values(spool):
    rows = [trade(1), trade(2, is_buyer_maker=True, price=Decimal("97123.45000000"))]
    for table, batch in ((RECENT_TRADES, rows), (KLINE_DATA, [kline("0.10000000")])):
        path = spool.put(table, dedupe(table, batch), target="t")
        back = spool.read(path)
        assert back.table is table and back.target == "t"
        assert [{k: exact(v) for k, v in r.items()} for r in back.rows] == [
            {k: exact(r.get(k)) for k in table.column_names} for r in batch
        ]
    text = spool.files()[0].read_text()
    assert '"0.00001234"' in text and '"123456789.00"' in text
    assert '"2026-11-21T05:35:00.124+00:00"' in text  # milliseconds kept, as text
    assert '"2026-11-21"' in text and "false" in text
    kline_text = spool.files()[1].read_text()
    assert '"0.00000001"' in kline_text and '"0E-8"' not in kline_text
    assert '"2026-11-21T05:35:00.123456+00:00"' in kline_text  # microseconds when present
    assert str(2**62) in kline_text and "null" in kline_text


def test_files_are_private_complete_and_in_order(spool):
    paths = [spool.put(HEARTBEAT, dedupe(HEARTBEAT, [beat(i)]), target="t") for i in range(12)]
    assert spool.files() == paths
    assert [p.name for p in paths[:2]] == [
        "000000000001-heartbeat.jsonl",
        "000000000002-heartbeat.jsonl",
    ]
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o600}
    assert not list(spool.directory.glob(".tmp-*"))
    header = json.loads(paths[0].read_text().splitlines()[0])
    assert header["table"] == "heartbeat" and header["rows"] == 1 and header["spool"] == 1


def test_a_directory_open_to_others_is_tightened(tmp_path):
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o777)
    os.chmod(directory, 0o777)
    Spool(directory).open()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_directory_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:  # a skip would count as checked: say why it cannot run here
        pytest.fail("handing a directory to another user needs root: run as root (CI does)")
    directory = tmp_path / "spool"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    with pytest.raises(SpoolError, match="belongs to uid 65534"):
        Spool(directory).open()


def test_an_unusable_directory_is_a_configuration_error(tmp_path, pg):
    (tmp_path / "file").write_text("")
    w = SpoolingWriter(pg, Spool(tmp_path / "file" / "spool"), spool_after=1)
    with pytest.raises(ConfigError, match="PRODUCER_SPOOL_DIR"):
        w.open()


def test_a_stale_temporary_file_of_a_dead_process_is_removed(tmp_path):
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    stale = directory / ".tmp-999999999-abc.jsonl"
    stale.write_text('{"spool": 1')
    Spool(directory).open()
    assert not stale.exists()


# -- the writer ------------------------------------------------------------------------------------


def test_postgres_down_spools_the_batch_and_says_so(writer, pg, spool, caplog):
    caplog.set_level(logging.INFO, logger="capstock")
    pg.up = False
    result = writer.write(RECENT_TRADES, [trade(1), trade(2), trade(2)])
    assert (result.rows, result.changed, result.spooled) == (2, 0, 2)
    [path] = spool.files()
    assert f"spooled 2 rows of recent_trades to {path} (postgres unreachable)" in caplog.text
    assert caplog.text.count("postgres unreachable (") == 1
    assert writer.pending() == (1, 2)
    assert spool.header(path)["target"] == target_of(CONNINFO) == "127.0.0.1:5432/cap_stock_db"


def test_while_down_postgres_is_asked_at_most_every_probe_interval(writer, pg, clock):
    pg.up = False
    writer.write(HEARTBEAT, [beat(1)])
    calls = pg.calls
    for i in range(5):
        writer.write(HEARTBEAT, [beat(2 + i)])
    assert pg.calls == calls  # each batch went straight to the spool
    clock.advance(PROBE_SECONDS)
    writer.write(HEARTBEAT, [beat(9)])
    assert pg.calls == calls + 1
    assert pg.patience == None  # noqa: E711 - restored after each call
    assert writer.pending() == (7, 7)


def test_when_postgres_returns_the_spool_goes_first_oldest_first(writer, pg, spool, clock, caplog):
    caplog.set_level(logging.INFO, logger="capstock")
    pg.up = False
    writer.write(KLINE_DATA, [kline("1")])
    writer.write(HEARTBEAT, [beat(1)])
    writer.write(KLINE_DATA, [kline("2")])
    pg.up = True
    clock.advance(PROBE_SECONDS)
    result = writer.write(KLINE_DATA, [kline("3")])
    assert result.spooled == 0 and result.changed == 1
    volumes = [
        (name, [row.get("volume", row.get("weight_used_1m")) for row in rows])
        for name, rows in pg.committed
    ]
    # One write per table, its files oldest first (the newest image of a key wins),
    # and the live batch only after the spool.
    assert volumes == [
        ("kline_data", [Decimal("1"), Decimal("2")]),
        ("heartbeat", [1]),
        ("kline_data", [Decimal("3")]),
    ]
    assert spool.files() == []
    assert "spooled rows (3 files" in caplog.text
    assert "postgres answers again" in caplog.text


def test_a_file_stays_until_its_write_commits(writer, pg, spool, clock):
    pg.up = False
    writer.write(HEARTBEAT, [beat(0)])
    writer.write(KLINE_DATA, [kline("1")])
    writer.write(HEARTBEAT, [beat(1)])
    pg.up = True
    clock.advance(PROBE_SECONDS)
    original = pg.write
    done = []

    def fail_second(table, rows):
        if len(done) == 1:
            pg.up = False
        done.append(1)
        return original(table, rows)

    pg.write = fail_second
    with pytest.raises(DatabaseUnavailable):
        writer.replay()
    # The heartbeat files went in one write and are gone; the kline file stays.
    assert len(pg.committed) == 1 and len(spool.files()) == 1
    pg.up, pg.write = True, original
    clock.advance(PROBE_SECONDS)
    assert writer.replay() == 1
    assert [table for table, _ in pg.committed] == ["heartbeat", "kline_data"]


def test_replay_at_start_and_only_of_this_database(tmp_path, pg, caplog):
    caplog.set_level(logging.INFO, logger="capstock")
    directory = tmp_path / "spool"
    first = Spool(directory)
    first.open()
    first.put(LATEST_PRICES, [], target="elsewhere:5432/other_db")
    mine = SpoolingWriter(pg, first, spool_after=1)
    pg.up = False
    mine.write(RECENT_TRADES, [trade(7)])
    first.close()

    pg.up = True
    restarted = SpoolingWriter(pg, Spool(directory), spool_after=1)
    restarted.open()
    assert pg.committed == [("recent_trades", [trade(7)])]
    assert "holds 1 rows in 1 files from an earlier run" in caplog.text
    assert "replayed 1 spooled rows" in caplog.text
    assert [p.name for p in Spool(directory).files()] == ["000000000001-latest_prices.jsonl"]
    assert restarted.pending() == (0, 0)
    assert "also holds files for other databases, not written by this producer: " in caplog.text
    assert "elsewhere:5432/other_db" in caplog.text


def test_a_corrupt_file_is_set_aside_and_the_rest_is_replayed(writer, pg, spool, clock, caplog):
    pg.up = False
    writer.write(HEARTBEAT, [beat(1)])
    writer.write(HEARTBEAT, [beat(2)])
    first, second = spool.files()
    lines = first.read_text().splitlines()
    first.write_text(lines[0].replace('"rows":1', '"rows":2') + "\n" + lines[1] + "\n")
    pg.up = True
    clock.advance(PROBE_SECONDS)
    assert writer.replay() == 1
    assert first.with_name(first.name + ".bad").exists() and not second.exists()
    assert "spool file set aside" in caplog.text and "1 rows, the header says 2" in caplog.text
    assert spool.put(HEARTBEAT, [], target="x").name.startswith("000000000002-")
    assert first.with_name(first.name + ".bad").exists()  # a new number never replaces it


def test_a_batch_postgres_rejects_is_kept_aside_not_retried_forever(writer, pg, spool, clock):
    pg.up = False
    writer.write(HEARTBEAT, [beat(1)])
    writer.write(HEARTBEAT, [beat(2)])
    pg.up = True
    clock.advance(PROBE_SECONDS)
    pg.reject = psycopg.errors.NumericValueOutOfRange("numeric field overflow")
    assert writer.replay() == 0
    assert sorted(p.name for p in spool.directory.glob("*.bad")) == [
        "000000000001-heartbeat.jsonl.bad",
        "000000000002-heartbeat.jsonl.bad",
    ]
    assert writer.pending() == (0, 0)


def test_retention_and_trade_ids_do_not_block_while_postgres_is_down(writer, pg):
    pg.up = False
    assert writer.delete_older_than(RECENT_TRADES, T0, 10) == 0
    assert writer.last_trade_id("BTCUSDT") is None


def test_the_trade_gap_total_is_unknown_while_postgres_is_down(writer, pg, clock):
    pg.up = False
    writer.write(HEARTBEAT, [{**beat(1), "trade_gaps_total": 5}])
    assert writer.trade_gaps_total("producer") is None
    pg.up = True
    clock.advance(PROBE_SECONDS)
    assert writer.trade_gaps_total("producer") == 5, "read after the spool is written"


def test_the_last_trade_id_counts_spooled_trades_once_postgres_is_back(writer, pg, clock):
    pg.up = False
    writer.write(RECENT_TRADES, [trade(41), trade(42)])
    pg.up = True
    clock.advance(PROBE_SECONDS)
    assert writer.last_trade_id("SHIBUSDT") == 42


def disk_full(*_args, **_kwargs):
    raise SpoolError("No space left on device")


def test_if_the_spool_fails_at_shutdown_the_rows_are_counted_as_lost(writer, pg, spool, caplog):
    pg.up = False
    spool.put = disk_full
    pg.sleeper.stop()
    with pytest.raises(WriteAbandoned):
        writer.write(RECENT_TRADES, [trade(1), trade(2)])
    assert writer.lost_rows == 2
    assert "lost 2 rows of recent_trades" in caplog.text


def test_if_the_spool_fails_the_batch_is_written_when_postgres_returns(
    writer, pg, spool, clock, caplog
):
    pg.up = False
    spool.put = disk_full
    waits = pg.sleeper.waits

    def come_back(seconds):
        waits.append(seconds)
        clock.advance(seconds)
        pg.up = True
        return False

    pg.sleeper.wait = come_back
    result = writer.write(RECENT_TRADES, [trade(1)])
    assert result.spooled == 0 and pg.committed == [("recent_trades", [trade(1)])]
    assert waits == [PROBE_SECONDS]
    assert "cannot spool 1 rows of recent_trades" in caplog.text


def test_a_file_from_before_a_column_was_added_reads_back_with_nulls(spool):
    path = spool.put(HEARTBEAT, dedupe(HEARTBEAT, [beat(1)]), target="t")
    header, row = (json.loads(line) for line in path.read_text().splitlines())
    old = len(header["columns"]) - 2  # written before exchange_error and its since
    header["columns"] = header["columns"][:old]
    path.write_text(f"{json.dumps(header)}\n{json.dumps(row[:old])}\n")
    (back,) = spool.read(path).rows
    assert back == beat(1), "the columns the file lacks are NULL"
    assert dedupe(HEARTBEAT, [back]) == dedupe(HEARTBEAT, [beat(1)])
