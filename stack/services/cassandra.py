"""Cassandra: one node with password authentication, JMX on loopback behind a login."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack import roles
from stack.process import StackError, stop_pid, wait_until
from stack.services.base import STACK_DIR, Component, own, read_classpath, render

VERSION_CQL = "SELECT release_version FROM system.local"
# How long the administrator's login may take on the first start (the node creates the
# built-in superuser at once: jvm17.options sets superuser_setup_delay_ms=0).
ADMIN_WAIT_S = 30.0


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
            (
                password_file,
                f"{s.cassandra_jmx_user} {s.cassandra_jmx_password.get_secret_value()}\n",
            ),
            (access_file, f"{s.cassandra_jmx_user} readwrite\n"),
            # nodetool (run by us, not the server) reads its login from here.
            (
                self.nodetool_login,
                f"{s.cassandra_jmx_user} {s.cassandra_jmx_password.get_secret_value()}\n",
            ),
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
        """(cluster, session) as ``user`` on the local node."""
        from capstock.history.connection import connect

        s = self.settings
        return connect(
            "127.0.0.1", user, password, port=self.port, datacenter=s.cassandra_datacenter
        )

    def admin_session(self):  # type: ignore[no-untyped-def]
        s = self.settings
        return self.session(s.cassandra_admin_user, s.cassandra_admin_password.get_secret_value())

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
            self._query_as(
                s.cassandra_admin_user, s.cassandra_admin_password.get_secret_value(), VERSION_CQL
            )
        except Exception as err:
            return "AuthenticationFailed" in repr(err) or "Bad credentials" in str(err)
        return True

    def after_healthy(self) -> None:
        """Replace the built-in superuser, then (re)create the login roles with their passwords
        (:mod:`stack.roles`, as compose's cassandra-init).

        Privileges on the keyspace are granted by `cap-stock cassandra-setup`, which
        creates the keyspace.
        """
        s = self.settings
        try:
            roles.check_cassandra_roles(s)
            cluster, session = roles.cassandra_admin_session(
                self.session,
                s,
                hint="Put the admin's password in .env, or start over with `make clean` "
                "(deletes the data)",
                say=lambda note: print(f"  cassandra: {note}"),
                wait_seconds=ADMIN_WAIT_S,
            )
        except roles.RolesError as err:
            raise StackError(f"cassandra: {err}") from None
        try:
            roles.apply_cassandra_roles(session, s)
        finally:
            cluster.shutdown()
        password = s.cassandra_password.get_secret_value()
        wait_until(
            lambda: bool(self._query_as(s.cassandra_user, password, VERSION_CQL)),
            what=f"cassandra login as {s.cassandra_user}",
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
