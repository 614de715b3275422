"""The four services of the native stack: start, health, version, stop.

Each start is idempotent (a healthy component is left alone) and every wait is
bounded; on failure the error carries the tail of that component's log.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from stack.process import (
    StackError,
    pid_alive,
    port_open,
    read_pid,
    start_detached,
    stop_pid,
    wait_until,
)
from stack.settings import REPO_ROOT, StackSettings, versions

STACK_DIR = REPO_ROOT / "stack"
# log4j for the one-shot Kafka tools (warnings on stderr); the servers use log4j.properties.
TOOLS_LOG4J = STACK_DIR / "kafka" / "tools-log4j.properties"
DEBEZIUM_POSTGRES_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
# Our Connect adapter around the DataStax sink engine (plugins/cassandra-sink).
CASSANDRA_SINK_CLASS = "io.capstock.sink.CassandraSinkConnector"
CASSANDRA_SINK_PLUGIN_DIR = "cap-stock-cassandra-sink"
# Cassandra creates it on an empty node; the stack replaces it with CASSANDRA_ADMIN_USER.
BUILTIN_SUPERUSER = ("cassandra", "cassandra")
VERSION_CQL = "SELECT release_version FROM system.local"


def render(template: Path, target: Path, **values: object) -> Path:
    """Fill ${name} placeholders; Connect's own ${env:...} references pass through."""
    target.parent.mkdir(parents=True, exist_ok=True)
    text = Template(template.read_text()).safe_substitute({k: str(v) for k, v in values.items()})
    target.write_text(text)
    return target


def read_classpath(settings: StackSettings, name: str) -> str:
    path = settings.classpath_dir / f"{name}.txt"
    if not path.exists():
        raise StackError(f"{name}: classpath {path} missing; run `make fetch` first")
    classpath = path.read_text().strip()
    # Services run as an unprivileged user who cannot read root's ~/.m2: fetch.sh
    # copies the jars under .stack/lib.
    if not classpath.startswith(str(settings.lib_dir)):
        raise StackError(f"{name}: classpath {path} predates .stack/lib; run `make fetch`")
    return classpath


def connection_env(settings: StackSettings) -> dict[str, str]:
    """Where the stores are (no credentials): every process gets these."""
    s = settings
    return {
        "POSTGRES_HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        "POSTGRES_PORT": str(s.postgres_port),
        "POSTGRES_DB": s.postgres_db,
        "CASSANDRA_HOST": os.environ.get("CASSANDRA_HOST", "127.0.0.1"),
        "CASSANDRA_PORT": str(s.cassandra_port),
        "CASSANDRA_DATACENTER": s.cassandra_datacenter,
    }


def ensure_service_user(settings: StackSettings) -> None:
    """Create the unprivileged system user services run as (only when we are root)."""
    user = settings.runs_as()
    if user is None:
        return
    try:
        settings.service_uid_gid()
    except KeyError:
        print(f"  stack: creating system user {user!r}: services do not run as root")
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
        )


def own(settings: StackSettings, *paths: Path, recursive: bool = False) -> None:
    """Hand paths to the service user (a no-op unless we are root)."""
    ids = settings.service_uid_gid()
    if ids is None:
        return
    for path in paths:
        if recursive and path.is_dir() and path.stat().st_uid != ids[0]:
            subprocess.run(["chown", "-R", f"{ids[0]}:{ids[1]}", str(path)], check=True)
        os.chown(path, *ids)


def as_service_user(settings: StackSettings, argv: list[str]) -> list[str]:
    user = settings.runs_as()
    return ["runuser", "-u", user, "--", *argv] if user else argv


def prepare_home(settings: StackSettings) -> None:
    """.stack/: closed to other OS users; data, logs and config owned by the service user."""
    ensure_service_user(settings)
    for path in (settings.data_dir, settings.log_dir, settings.run_dir, settings.conf_dir):
        path.mkdir(parents=True, exist_ok=True)
    settings.spool_dir.mkdir(mode=0o700, exist_ok=True)
    own(settings, settings.spool_dir, recursive=True)
    for path in (
        settings.home,
        settings.data_dir,
        settings.log_dir,
        settings.run_dir,
        settings.conf_dir,
    ):
        path.chmod(0o750)
    ids = settings.service_uid_gid()
    if ids is not None:
        # root keeps .stack and the pid files; the service user's group may enter.
        os.chown(settings.home, 0, ids[1])
        os.chown(settings.run_dir, 0, ids[1])
        own(settings, settings.conf_dir)
        # Older stacks ran everything as root: hand over what they left.
        own(settings, settings.data_dir, settings.log_dir, recursive=True)
        for sub in settings.data_dir.iterdir():
            if sub.name != "postgres":
                own(settings, sub, recursive=True)
        for log in settings.log_dir.iterdir():
            own(settings, log)


def http_json(url: str, timeout: float = 3.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class Component:
    """Shared behaviour: pid file, log file, detached start, stop by pid."""

    settings: StackSettings
    name: str = ""
    start_timeout: float = 120.0
    stop_timeout: float = 60.0

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    def port(self) -> int:
        raise NotImplementedError

    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid_alive(pid) else None

    def healthy(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def launch(self) -> int:
        raise NotImplementedError

    def start(self) -> str:
        """Start (unless already healthy) and wait until healthy. Returns what happened."""
        if self.pid() and self._quietly_healthy():
            return "already running"
        if self.pid() is None and port_open(self.port):
            raise StackError(
                f"{self.name}: port {self.port} is taken by another process; stop it or set "
                f"the port in .env (see README, Configuration)"
            )
        pid = self.launch_and_wait()
        self.after_healthy()
        return f"started (pid {pid})"

    def launch_and_wait(self) -> int:
        """Launch (unless the process is already there) and wait, bounded, until healthy."""
        pid = self.pid()
        if pid is None:
            prepare_home(self.settings)
            pid = self.launch()
        wait_until(
            self.healthy,
            what=self.name,
            timeout=self.start_timeout,
            log_file=self.log_file,
            pid=pid,
        )
        return pid

    def after_healthy(self) -> None:
        """One-time set-up that needs the service up (users, roles)."""

    def _quietly_healthy(self) -> bool:
        try:
            return self.healthy()
        except Exception:
            return False

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        clean = stop_pid(pid, what=self.name, timeout=self.stop_timeout)
        self.pid_file.unlink(missing_ok=True)
        return "stopped" if clean else "killed"

    @property
    def out_file(self) -> Path:
        """The JVM's stdout/stderr: what it prints before its logging starts (or instead)."""
        return self.log_file.with_suffix(".out")

    def log4j_options(self) -> list[str]:
        """Kafka and Connect: log4j writes and rolls log_file itself (stack/kafka)."""
        return [
            f"-Dlog4j.configuration=file:{STACK_DIR / 'kafka' / 'log4j.properties'}",
            f"-Dstack.log.file={self.log_file}",
        ]

    def java(self, classpath: str, heap: str, main: str, *args: str, opts: list[str]) -> list[str]:
        return ["java", f"-Xms{heap}", f"-Xmx{heap}", *opts, "-cp", classpath, main, *args]

    def detach(self, argv: list[str], log_file: Path, env: dict[str, str] | None = None) -> int:
        """Start argv in the background as the service user (never root).

        Its working directory is .stack/data, not the checkout: the process gets its
        settings from `env`, never by reading .env (mode 600, the secrets).
        """
        return start_detached(
            argv,
            log_file,
            self.pid_file,
            env=env,
            user=self.settings.runs_as(),
            cwd=self.settings.data_dir,
        )


@dataclass
class Postgres(Component):
    name: str = "postgres"

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    @property
    def data(self) -> Path:
        return self.settings.data_dir / "postgres"

    @property
    def socket_dir(self) -> Path:
        return self.settings.run_dir / "postgres"

    def pid(self) -> int | None:
        pid = read_pid(self.data / "postmaster.pid")
        return pid if pid_alive(pid) else None

    def _initdb(self) -> None:
        print("  postgres: initialising a private cluster in", self.data)
        self.data.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        own(self.settings, self.data)
        # pg_hba.conf is replaced by stack/postgres/pg_hba.conf on every start.
        subprocess.run(
            as_service_user(
                self.settings,
                [
                    str(self.settings.postgres_bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                ],
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\ninclude = 'cap_stock.conf'\n")

    def _render_config(self) -> None:
        """postgresql.conf additions and the access rules: no trust, no other OS user."""
        runner = pwd.getpwuid(os.geteuid()).pw_name
        values = {
            "port": self.port,
            "socket_dir": self.socket_dir,
            "os_user": self.settings.runs_as() or runner,
            "runner": runner,
        }
        for name in ("cap_stock.conf", "pg_hba.conf", "pg_ident.conf"):
            template = "postgresql.conf" if name == "cap_stock.conf" else name
            own(
                self.settings, render(STACK_DIR / "postgres" / template, self.data / name, **values)
            )

    def launch(self) -> int:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.chmod(0o700)  # only the server's own user reaches the socket
        self.log_file.touch()
        own(self.settings, self.socket_dir, self.log_file)
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self._render_config()
        result = subprocess.run(
            as_service_user(
                self.settings,
                [
                    str(self.settings.postgres_bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            capture_output=True,
            text=True,
        )
        pid = self.pid()
        if result.returncode != 0 or pid is None:
            from stack.process import log_tail

            raise StackError(
                f"postgres: pg_ctl start failed: {result.stderr.strip()}\n"
                f"--- {self.log_file} ---\n{log_tail(self.log_file)}"
            )
        return pid

    def superuser_connection(self, dbname: str = "postgres"):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def roles(self) -> dict[str, tuple[str, str]]:
        """Login role -> (password, attributes). None is a superuser; only Debezium's replicates."""
        s = self.settings
        return {
            s.postgres_user: (s.postgres_password, "NOREPLICATION"),
            s.postgres_cdc_user: (s.postgres_cdc_password, "REPLICATION"),
            s.postgres_reader_user: (s.postgres_reader_password, "NOREPLICATION"),
        }

    def after_healthy(self) -> None:
        """(Re)create the three login roles with the current passwords, and the database.

        Table privileges are granted by `cap-stock init-db`, which runs as the owner.
        """
        from psycopg import sql

        s = self.settings
        with self.superuser_connection() as conn:
            for role, (password, replication) in self.roles().items():
                found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
                verb = "ALTER" if found.fetchone() else "CREATE"
                conn.execute(
                    sql.SQL(
                        "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE {} PASSWORD {}"
                    ).format(
                        sql.SQL(verb),
                        sql.Identifier(role),
                        sql.SQL(replication),
                        sql.Literal(password),
                    )
                )
            db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [s.postgres_db])
            if not db.fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(s.postgres_db), sql.Identifier(s.postgres_user)
                    )
                )

    def healthy(self) -> bool:
        with self.superuser_connection() as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def version(self) -> str:
        with self.superuser_connection() as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]

    def stop(self) -> str:
        if self.pid() is None:
            return "not running"
        # Fast shutdown: roll back open transactions, checkpoint, exit cleanly.
        result = subprocess.run(
            as_service_user(
                self.settings,
                [
                    str(self.settings.postgres_bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(self.stop_timeout)),
                    "stop",
                ],
            ),
            capture_output=True,
            text=True,
        )
        return "stopped" if result.returncode == 0 else f"stop failed: {result.stderr.strip()}"


@dataclass
class Kafka(Component):
    name: str = "kafka"

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def data(self) -> Path:
        return self.settings.data_dir / "kafka"

    def _config(self) -> Path:
        return render(
            STACK_DIR / "kafka" / "server.properties",
            self.settings.conf_dir / "kafka.properties",
            kafka_port=self.port,
            controller_port=self.settings.kafka_controller_port,
            data_dir=self.data,
        )

    @staticmethod
    def format_argv(classpath: str, config: Path, cluster_id: str) -> list[str]:
        """Kafka's StorageTool: format the KRaft storage named in config (once)."""
        return [
            "java",
            f"-Dlog4j.configuration=file:{TOOLS_LOG4J}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
            "--ignore-formatted",
        ]

    def _format_once(self, classpath: str, config: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        print(f"  kafka: formatting KRaft storage (cluster id {cluster_id})")
        subprocess.run(
            as_service_user(self.settings, self.format_argv(classpath, config, cluster_id)),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def launch(self) -> int:
        classpath = read_classpath(self.settings, "kafka")
        config = self._config()
        self._format_once(classpath, config)
        argv = self.java(
            classpath,
            self.settings.kafka_heap,
            "kafka.Kafka",
            str(config),
            opts=[
                *self.log4j_options(),
                "-XX:+UseG1GC",
                f"-Dkafka.logs.dir={self.settings.log_dir}",
            ],
        )
        return self.detach(argv, self.out_file)

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        # log_level 0: no librdkafka chatter while the broker is still coming up.
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap, "log_level": 0})
        metadata = admin.list_topics(timeout=3)
        return bool(metadata.brokers)

    def version(self) -> str:
        return versions()["KAFKA_VERSION"]


@dataclass
class Connect(Component):
    name: str = "connect"
    start_timeout: float = 180.0

    @property
    def port(self) -> int:
        return self.settings.connect_port

    def worker_env(self) -> dict[str, str]:
        """What ${env:...} in connector configs can read: Debezium's and the sink's logins only."""
        s = self.settings
        return {
            **connection_env(s),
            "POSTGRES_CDC_USER": s.postgres_cdc_user,
            "POSTGRES_CDC_PASSWORD": s.postgres_cdc_password,
            "CASSANDRA_USER": s.cassandra_user,
            "CASSANDRA_PASSWORD": s.cassandra_password,
        }

    def launch(self) -> int:
        classpath = read_classpath(self.settings, "kafka")
        for plugin in ("debezium-connector-postgres", CASSANDRA_SINK_PLUGIN_DIR):
            if not any(self.settings.plugin_dir.glob(f"{plugin}/*.jar")):
                raise StackError(f"connect: plugins/{plugin} has no jars; run `make fetch` first")
        config = render(
            STACK_DIR / "kafka" / "connect-distributed.properties",
            self.settings.conf_dir / "connect.properties",
            kafka_port=self.settings.kafka_port,
            connect_port=self.port,
            plugin_path=self.settings.plugin_dir,
        )
        argv = self.java(
            classpath,
            self.settings.connect_heap,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(config),
            opts=[*self.log4j_options(), "-XX:+UseG1GC"],
        )
        return self.detach(argv, self.out_file, env=self.worker_env())

    def plugins(self) -> list[str]:
        listed = http_json(f"{self.settings.connect_url}/connector-plugins")
        return [p["class"] for p in listed]  # type: ignore[union-attr, index]

    def healthy(self) -> bool:
        plugins = self.plugins()
        return DEBEZIUM_POSTGRES_CLASS in plugins and CASSANDRA_SINK_CLASS in plugins

    def version(self) -> str:
        return str(http_json(f"{self.settings.connect_url}/")["version"])  # type: ignore[index]

    def connectors(self) -> dict[str, dict]:
        """Every connector: {"status": ..., "info": {"config": ..., "type": ...}}."""
        url = f"{self.settings.connect_url}/connectors?expand=status&expand=info"
        return http_json(url)  # type: ignore[return-value]


@dataclass
class Cassandra(Component):
    name: str = "cassandra"
    start_timeout: float = 240.0
    stop_timeout: float = 90.0

    @property
    def port(self) -> int:
        return self.settings.cassandra_port

    @property
    def data(self) -> Path:
        return self.settings.data_dir / "cassandra"

    def jvm_options(self) -> list[str]:
        lines = (STACK_DIR / "cassandra" / "jvm17.options").read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def launch(self) -> int:
        classpath = read_classpath(self.settings, "cassandra")
        config = render(
            STACK_DIR / "cassandra" / "cassandra.yaml",
            self.settings.conf_dir / "cassandra.yaml",
            storage_port=self.settings.cassandra_storage_port,
            native_port=self.port,
            data_dir=self.data,
        )
        argv = [
            "java",
            *self.jvm_options(),
            f"-Dcassandra.config=file://{config}",
            f"-Dcassandra.storagedir={self.data}",
            f"-Dcassandra.logdir={self.settings.log_dir}",
            f"-Dlogback.configurationFile={STACK_DIR / 'cassandra' / 'logback.xml'}",
            *self.jmx_options(),
            "-Dcassandra-foreground=yes",
            "-cp",
            classpath,
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        return self.detach(argv, self.out_file)

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / "cassandra.log"

    def jmx_options(self) -> list[str]:
        """JMX on loopback only (a local port), and only with the JMX login."""
        s = self.settings
        conf = s.conf_dir
        password_file = conf / "jmxremote.password"
        access_file = conf / "jmxremote.access"
        for path, text in (
            (password_file, f"{s.cassandra_jmx_user} {s.cassandra_jmx_password}\n"),
            (access_file, f"{s.cassandra_jmx_user} readwrite\n"),
            # nodetool (run by us, not the server) reads its login from here.
            (self.nodetool_login, f"{s.cassandra_jmx_user} {s.cassandra_jmx_password}\n"),
        ):
            path.write_text(text)
            path.chmod(0o600)  # the JVM refuses a password file others can read
        own(s, password_file, access_file)
        return [
            f"-Dcassandra.jmx.local.port={s.cassandra_jmx_port}",
            "-Dcom.sun.management.jmxremote.authenticate=true",
            f"-Dcom.sun.management.jmxremote.password.file={password_file}",
            f"-Dcom.sun.management.jmxremote.access.file={access_file}",
        ]

    @property
    def nodetool_login(self) -> Path:
        return self.settings.conf_dir / "nodetool.password"

    def session(self, user: str, password: str):  # type: ignore[no-untyped-def]
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import Cluster
        from cassandra.policies import ConstantReconnectionPolicy

        cluster = Cluster(
            ["127.0.0.1"],
            port=self.port,
            protocol_version=5,
            auth_provider=PlainTextAuthProvider(user, password),
            connect_timeout=5,
            # The driver's default waits grow to 10 minutes: a long-lived session would
            # stay without a host long after a restarted node is back.
            reconnection_policy=ConstantReconnectionPolicy(1.0),
        )
        try:
            return cluster, cluster.connect()
        except Exception:
            cluster.shutdown()
            raise

    def admin_session(self):  # type: ignore[no-untyped-def]
        s = self.settings
        return self.session(s.cassandra_admin_user, s.cassandra_admin_password)

    def _query_as(self, user: str, password: str, cql: str, *params: object) -> list:
        cluster, session = self.session(user, password)
        try:
            return list(session.execute(cql, params or None, timeout=10))
        finally:
            cluster.shutdown()

    def healthy(self) -> bool:
        """CQL answers: a refused login is an answer too (first start: no admin role yet)."""
        s = self.settings
        try:
            self._query_as(s.cassandra_admin_user, s.cassandra_admin_password, VERSION_CQL)
        except Exception as err:
            return "AuthenticationFailed" in repr(err) or "Bad credentials" in str(err)
        return True

    def after_healthy(self) -> None:
        """Replace the built-in superuser, then (re)create the login roles with their passwords.

        Privileges on the keyspace are granted by `cap-stock cassandra-setup`, which
        creates the keyspace.
        """
        from capstock.cassandra_schema import role_statements

        s = self.settings
        self._ensure_admin()
        cluster, session = self.admin_session()
        try:
            session.execute(f"DROP ROLE IF EXISTS {BUILTIN_SUPERUSER[0]}", timeout=10)
            for role, password in (
                (s.cassandra_user, s.cassandra_password),
                (s.cassandra_reader_user, s.cassandra_reader_password),
            ):
                create, alter = role_statements(role)
                session.execute(create, [password], timeout=10)
                session.execute(alter, [password], timeout=10)
        finally:
            cluster.shutdown()
        wait_until(
            lambda: bool(self._query_as(s.cassandra_user, s.cassandra_password, VERSION_CQL)),
            what=f"cassandra login as {s.cassandra_user}",
            timeout=30,
            log_file=self.log_file,
        )

    def _ensure_admin(self) -> None:
        """Log in as the admin; on first start create it through the built-in superuser."""
        s = self.settings
        try:
            self._query_as(s.cassandra_admin_user, s.cassandra_admin_password, VERSION_CQL)
            return
        except Exception:
            pass
        from capstock.cassandra_schema import role_statements

        create, _ = role_statements(s.cassandra_admin_user, superuser=True)
        try:
            self._query_as(*BUILTIN_SUPERUSER, create, s.cassandra_admin_password)
        except Exception as err:
            raise StackError(
                f"cassandra: cannot log in as {s.cassandra_admin_user} (CASSANDRA_ADMIN_PASSWORD "
                f"in .env) and the built-in superuser is gone ({err}). Put the admin's password "
                "in .env, or start over with `make clean` (deletes the data)"
            ) from None
        print(f"  cassandra: created superuser {s.cassandra_admin_user}; dropping the built-in one")
        wait_until(
            lambda: bool(
                self._query_as(s.cassandra_admin_user, s.cassandra_admin_password, VERSION_CQL)
            ),
            what=f"cassandra login as {s.cassandra_admin_user}",
            timeout=30,
            log_file=self.log_file,
        )

    def version(self) -> str:
        cluster, session = self.admin_session()
        try:
            return str(session.execute(VERSION_CQL, timeout=10).one().release_version)
        finally:
            cluster.shutdown()

    def nodetool(self, *command: str, login: bool = True) -> subprocess.CompletedProcess[str]:
        """nodetool over JMX; ``login``: as the JMX user (its password read from a file)."""
        s = self.settings
        credentials = ["-u", s.cassandra_jmx_user, "-pwf", str(self.nodetool_login)]
        return subprocess.run(
            [
                "java",
                "-Xmx128m",
                *[o for o in self.jvm_options() if o.startswith("--add")],
                "-cp",
                read_classpath(s, "cassandra"),
                "org.apache.cassandra.tools.NodeTool",
                *("-h", "127.0.0.1", "-p", str(s.cassandra_jmx_port)),
                *(credentials if login else []),
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        # Drain first: flush memtables and stop accepting writes, so the next
        # start replays no commit log.
        drain = self.nodetool("drain")
        drained = "drained" if drain.returncode == 0 else f"drain failed ({nodetool_error(drain)})"
        clean = stop_pid(pid, what=self.name, timeout=self.stop_timeout, sig=signal.SIGTERM)
        self.pid_file.unlink(missing_ok=True)
        return f"{drained}, {'stopped' if clean else 'killed'}"


def nodetool_error(done: subprocess.CompletedProcess[str]) -> str:
    """nodetool's own "error: ..." line (it logs DEBUG noise around it)."""
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip().startswith("error:"):
            return line.strip()
    return f"exit {done.returncode}"


def all_components(settings: StackSettings) -> list[Component]:
    """In start order; stop in reverse."""
    # Cassandra before Connect: the sink connector's task connects as soon as Connect starts.
    return [Postgres(settings), Kafka(settings), Cassandra(settings), Connect(settings)]


def wipe(settings: StackSettings) -> list[Path]:
    """Delete every directory of the stack, then its home when nothing else is left there.

    Returns what is left: files the stack did not write, which stay (and so does home).
    Raises OSError when a directory of the stack cannot be deleted.
    """
    for path in settings.stack_dirs():
        if path.exists():
            shutil.rmtree(path)
    if not settings.home.exists():
        return []
    left = sorted(settings.home.iterdir())
    if not left:
        settings.home.rmdir()
    return left
