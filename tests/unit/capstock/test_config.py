"""Configuration: defaults, validation messages, and the CLI's exit status 2."""

import subprocess
import sys
from decimal import Decimal

import pytest
from capstock.cli import main
from capstock.config import (
    BinanceSettings,
    ConfigError,
    IngestSettings,
    PostgresSettings,
    UniverseSettings,
    load,
    load_settings,
)

ALL_PREFIXES = ("POSTGRES_", "BINANCE_", "UNIVERSE_", "JOB_", "LOG_", "INGEST_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No inherited settings and no stray .env: each test states its environment."""
    import os

    for name in list(os.environ):
        if name.startswith(ALL_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults(monkeypatch):
    monkeypatch.setenv("POSTGRES_PASSWORD", "from-env")
    s = load_settings()
    assert (s.postgres.host, s.postgres.port, s.postgres.db) == ("127.0.0.1", 5432, "cap_stock_db")
    assert s.postgres.user == "cap_stock"
    assert s.postgres.password.get_secret_value() == "from-env"
    assert s.binance.api_url == "https://api.binance.com/api"
    assert s.binance.api_key is None
    assert s.binance.weight_budget == 3000
    assert s.universe.rank_by == "quote_volume"
    assert s.jobs.kline_interval == "1m"


def test_conninfo_contains_every_postgres_setting(monkeypatch):
    monkeypatch.setenv("POSTGRES_HOST", "db.local")
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    monkeypatch.setenv("POSTGRES_PASSWORD", "s3cret")
    info = load(PostgresSettings).conninfo()
    for part in (
        "host=db.local",
        "port=6543",
        "dbname=cap_stock_db",
        "user=cap_stock",
        "password=s3cret",
    ):
        assert part in info


def test_dotenv_is_read_and_environment_wins(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        "POSTGRES_DB=from_dotenv\nPOSTGRES_USER=dotenv_user\nPOSTGRES_PASSWORD=dotenv_secret\n"
    )
    monkeypatch.setenv("POSTGRES_USER", "env_user")
    s = load(PostgresSettings)
    assert (s.db, s.user) == ("from_dotenv", "env_user")
    assert s.password.get_secret_value() == "dotenv_secret"


def test_symbol_list_is_comma_separated(monkeypatch):
    monkeypatch.setenv("UNIVERSE_SYMBOLS", "btcusdt, ETHUSDT,,BTCUSDT")
    assert load(UniverseSettings).symbols == ["BTCUSDT", "ETHUSDT"]
    monkeypatch.setenv("UNIVERSE_MIN_QUOTE_VOLUME", "0.5")
    assert load(UniverseSettings).min_quote_volume == Decimal("0.5")


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        (
            "UNIVERSE_RANK_BY",
            "gainers",
            "UNIVERSE_RANK_BY='gainers' is not allowed: "
            "Input should be 'quote_volume' or 'price_change'",
        ),
        (
            "POSTGRES_PORT",
            "70000",
            "POSTGRES_PORT='70000' is not allowed: Input should be less than or equal to 65535",
        ),
        ("BINANCE_WEIGHT_SHARE", "1.5", "BINANCE_WEIGHT_SHARE='1.5' is not allowed"),
        ("BINANCE_API_URL", "ftp://x", "must be an http(s) URL ending in /api"),
        ("JOB_KLINE_INTERVAL", "2m", "JOB_KLINE_INTERVAL='2m' is not allowed"),
        ("UNIVERSE_SYMBOLS", "BTC-USDT", "'BTC-USDT' is not a symbol"),
    ],
)
def test_bad_values_name_variable_value_and_allowed(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert expected in str(err.value)


def test_every_problem_is_reported_and_secrets_are_hidden(monkeypatch):
    monkeypatch.setenv("POSTGRES_PORT", "x")
    monkeypatch.setenv("JOB_TRADES_LIMIT", "5000")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "POSTGRES_PORT" in str(err.value) and "JOB_TRADES_LIMIT" in str(err.value)
    monkeypatch.delenv("POSTGRES_PORT")
    monkeypatch.delenv("JOB_TRADES_LIMIT")
    with pytest.raises(ConfigError) as err:
        load(BinanceSettings, api_key=123)
    assert "BINANCE_API_KEY=<hidden>" in str(err.value)


def test_cli_exits_2_with_the_message(monkeypatch, capsys):
    monkeypatch.setenv("UNIVERSE_RANK_BY", "gainers")
    assert main(["once"]) == 2
    err = capsys.readouterr().err
    assert "UNIVERSE_RANK_BY='gainers'" in err
    assert "Traceback" not in err


def test_installed_entry_point_exits_2_without_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "UNIVERSE_SIZE": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "capstock.cli", "init-db"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert (
        "UNIVERSE_SIZE='0' is not allowed: Input should be greater than or equal to 1"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_a_password_has_no_default_and_the_message_says_how_to_get_one(monkeypatch):
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    with pytest.raises(ConfigError) as err:
        load_settings(env_file=None)
    assert "POSTGRES_PASSWORD is not set" in str(err.value)
    assert ".env" in str(err.value)


def test_polling_is_the_default_and_stream_mode_is_chosen_by_ingest_mode(monkeypatch):
    monkeypatch.setenv("POSTGRES_PASSWORD", "x")
    assert load_settings().ingest.mode == "rest"
    monkeypatch.setenv("INGEST_MODE", "stream")
    monkeypatch.setenv("INGEST_STREAM_URL", "ws://127.0.0.1:8901/")
    ingest = load_settings().ingest
    assert (ingest.mode, ingest.stream_url) == ("stream", "ws://127.0.0.1:8901")
    assert (ingest.flush_ms, ingest.flush_rows, ingest.stall_seconds) == (100, 2000, 10.0)


def test_bad_ingest_settings_name_the_variable_and_what_is_allowed(monkeypatch):
    monkeypatch.setenv("INGEST_MODE", "websocket")
    monkeypatch.setenv("INGEST_STREAM_URL", "https://stream.binance.com")
    monkeypatch.setenv("INGEST_DEPTH_SPEED_MS", "250")
    monkeypatch.setenv("INGEST_STREAMS_PER_CONNECTION", "2000")
    with pytest.raises(ConfigError) as err:
        load(IngestSettings)
    text = str(err.value)
    assert "INGEST_MODE='websocket' is not allowed: Input should be 'rest' or 'stream'" in text
    assert "INGEST_STREAM_URL='https://stream.binance.com' is not allowed: must be a ws://" in text
    assert "INGEST_DEPTH_SPEED_MS='250' is not allowed: must be 1000 or 100" in text
    assert "INGEST_STREAMS_PER_CONNECTION='2000' is not allowed" in text
