"""The producer's job table (capstock.ingest.jobs.JOBS): names, methods, intervals and tables."""

from capstock.config import JobSettings
from capstock.ingest.jobs import EXCHANGE_JOBS, JOBS, WRITTEN_EVERY, Producer
from capstock.model.tables import TABLES

INTERVAL_FIELDS = {name for name in JobSettings.model_fields if name.endswith("_seconds")}


def test_names_are_unique_and_the_universe_comes_first():
    names = [job.name for job in JOBS]
    assert len(set(names)) == len(names)
    assert names[0] == "ticker_24hr", "the per-symbol jobs need the universe"


def test_every_job_is_a_producer_method():
    for job in JOBS:
        assert callable(getattr(Producer, job.method, None)), job


def test_every_interval_setting_belongs_to_exactly_one_job():
    intervals = [job.interval for job in JOBS]
    assert sorted(intervals) == sorted(INTERVAL_FIELDS)


def test_every_table_is_written_by_exactly_one_job():
    written = [job.writes.name for job in JOBS if job.writes is not None]
    assert sorted(written) == sorted(TABLES)
    assert set(WRITTEN_EVERY) == set(TABLES)
    assert WRITTEN_EVERY["heartbeat"] == "heartbeat_seconds"


def test_jobs_without_the_exchange_keep_running_during_a_ban():
    assert set(EXCHANGE_JOBS) == {job.name for job in JOBS} - {"heartbeat", "retention"}
