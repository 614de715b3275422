"""The native stack's JVM logs are size-capped files at the paths the runner reads.

Kafka and Connect log through reload4j (log4j 1.x) and Cassandra through logback, each
into its own rolling file; stdout/stderr go to a small <name>.out beside it.
"""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stack.process import StackError, log_tail, wait_until
from stack.services import Cassandra, Connect, Kafka, base, cassandra, connect, kafka
from stack.services.base import STACK_DIR, render
from stack.services.kafka import TOOLS_LOG4J
from stack.settings import StackSettings

LOG4J = STACK_DIR / "kafka" / "log4j.properties"
LOGBACK = STACK_DIR / "cassandra" / "logback.xml"
# What one component may keep on disk at most, all files together.
MAX_TOTAL_BYTES = 512 * 1024**2
UNITS = {"": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def _bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]B)?", size.strip(), flags=re.I)
    assert match, f"not a size: {size!r}"
    return int(match[1]) * UNITS[(match[2] or "").upper()]


def _properties(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_kafka_and_connect_log_to_size_rolled_files() -> None:
    props = _properties(LOG4J)
    appenders = [a.strip() for a in props["log4j.rootLogger"].split(",")[1:]]
    assert appenders
    defined = {k.split(".")[2] for k in props if k.startswith("log4j.appender.")}
    assert set(appenders) == defined, "every appender must be one the root logger uses"
    for name in appenders:
        prefix = f"log4j.appender.{name}"
        assert props[prefix] == "org.apache.log4j.RollingFileAppender", name
        # The runner passes each JVM its own log_file (kafka.log, connect.log).
        assert props[f"{prefix}.File"] == "${stack.log.file}"
        size = _bytes(props[f"{prefix}.MaxFileSize"])
        backups = int(props[f"{prefix}.MaxBackupIndex"])
        assert backups >= 1 and size * (backups + 1) <= MAX_TOTAL_BYTES


def test_kafka_tools_log_warnings_to_stderr_only() -> None:
    props = _properties(TOOLS_LOG4J)
    level, *appenders = [a.strip() for a in props["log4j.rootLogger"].split(",")]
    assert level == "WARN" and appenders
    for name in appenders:
        assert props[f"log4j.appender.{name}"] == "org.apache.log4j.ConsoleAppender"
        assert props[f"log4j.appender.{name}.Target"] == "System.err"


def test_formatting_the_kafka_storage_prints_no_log4j_warning(
    kafka_classpath: str, tmp_path: Path
) -> None:
    """The first start formats the KRaft storage with Kafka's StorageTool (binds no port).

    Without a log4j configuration it printed "log4j:WARN No appenders could be found for
    logger (kafka.utils.Log4jControllerRegistration$)" and two more lines on the console.
    """
    config = render(
        STACK_DIR / "kafka" / "server.properties",
        tmp_path / "kafka.properties",
        kafka_port=39092,
        controller_port=39093,
        data_dir=tmp_path / "data",
    )
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    argv = Kafka.format_argv(kafka_classpath, config, cluster_id)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "log4j" not in done.stderr
    assert (tmp_path / "data" / "meta.properties").exists()


def test_cassandra_logs_to_a_size_rolled_file() -> None:
    root = ET.parse(LOGBACK).getroot()
    refs = [ref.get("ref") for ref in root.findall("./root/appender-ref")]
    appenders = {a.get("name"): a for a in root.findall("appender")}
    assert refs and set(refs) == set(appenders)
    for appender in appenders.values():
        assert appender.get("class") == "ch.qos.logback.core.rolling.RollingFileAppender"
        assert appender.findtext("file") == "${cassandra.logdir}/cassandra.log"
        policy = appender.find("rollingPolicy")
        trigger = appender.find("triggeringPolicy")
        assert policy is not None and trigger is not None
        assert policy.get("class") == "ch.qos.logback.core.rolling.FixedWindowRollingPolicy"
        assert trigger.get("class") == "ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy"
        assert policy.findtext("fileNamePattern", "").endswith("%i")
        files = int(policy.findtext("maxIndex", "")) - int(policy.findtext("minIndex", "1")) + 2
        assert _bytes(trigger.findtext("maxFileSize", "")) * files <= MAX_TOTAL_BYTES


class _EveryPlugin(type(Path())):  # type: ignore[misc]
    """A plugin directory in which every plugin the runner looks for has a jar."""

    def glob(self, pattern: str):  # type: ignore[no-untyped-def, override]
        yield self / "plugin.jar"


Launches = dict[str, tuple[list[str], Path]]


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[StackSettings, Launches]:
    """What each JVM component would run, and where its stdout would go, without running it."""
    calls: Launches = {}

    def fake_start(argv, out, pid_file, env=None, user=None, cwd=None):  # type: ignore[no-untyped-def]
        calls[pid_file.stem] = (list(argv), out)
        return 1

    monkeypatch.setattr(base, "start_detached", fake_start)
    for module in (kafka, connect, cassandra):
        monkeypatch.setattr(module, "read_classpath", lambda settings, name: "cp")
    monkeypatch.setattr(Kafka, "_format_once", lambda self, classpath, config: None)
    monkeypatch.setattr(StackSettings, "plugin_dir", property(lambda s: _EveryPlugin(tmp_path)))
    settings = StackSettings(home=tmp_path / "home")
    for component in (Kafka(settings), Connect(settings), Cassandra(settings)):
        component.launch()
    return settings, calls


def test_kafka_and_connect_write_the_log_file_the_runner_reads(
    launched: tuple[StackSettings, Launches],
) -> None:
    settings, calls = launched
    for component in (Kafka(settings), Connect(settings)):
        argv, out = calls[component.name]
        assert f"-Dlog4j.configuration=file:{LOG4J}" in argv
        assert f"-Dstack.log.file={component.log_file}" in argv
        assert out == component.log_file.with_suffix(".out")
    assert Kafka(settings).log_file != Connect(settings).log_file


def test_cassandra_logs_beside_its_stdout(launched: tuple[StackSettings, Launches]) -> None:
    settings, calls = launched
    argv, out = calls["cassandra"]
    assert f"-Dlogback.configurationFile={LOGBACK}" in argv
    assert f"-Dcassandra.logdir={settings.log_dir}" in argv
    assert out == Cassandra(settings).log_file.with_suffix(".out")


def test_a_failed_start_shows_the_log_and_the_jvm_output(tmp_path: Path) -> None:
    log, out = tmp_path / "kafka.log", tmp_path / "kafka.out"
    log.write_text("[old] INFO last line of the previous run\n")
    out.write_text("Invalid initial heap size: -Xmsbogus\n")
    dead = 2**22 + 12345
    with pytest.raises(StackError) as failure:
        wait_until(lambda: False, what="kafka", timeout=5, log_file=log, pid=dead)
    message = str(failure.value)
    assert "last line of the previous run" in message
    assert f"--- {out} ---\nInvalid initial heap size" in message
    out.write_text("")
    with pytest.raises(StackError) as failure:
        wait_until(lambda: False, what="kafka", timeout=5, log_file=log, pid=dead)
    assert str(out) not in str(failure.value)


def test_log_tail_reads_only_the_end_of_a_big_log(tmp_path: Path) -> None:
    log = tmp_path / "connect.log"
    log.write_text("".join(f"line {i} {'x' * 200}\n" for i in range(20_000)))
    tail = log_tail(log, lines=3).splitlines()
    assert [line.split()[1] for line in tail] == ["19997", "19998", "19999"]
