"""PostgreSQL: a private cluster under .stack/data/postgres, the WAL source of the pipeline.

The superuser logs in only through the stack's private socket, as the OS user running
the stack; the pipeline's three login roles are (re)created on every start
(:mod:`stack.roles`, the same code as compose's postgres-init).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack import roles
from stack.process import StackError, pid_alive, read_pid
from stack.services.base import STACK_DIR, Component, as_service_user, own, render


@dataclass
class Postgres(Component):
    name: str = "postgres"
    forks_sessions: bool = True

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
                    roles.POSTGRES_SUPERUSER,
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
            user=roles.POSTGRES_SUPERUSER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def after_healthy(self) -> None:
        """(Re)create the three login roles with the current passwords, and the database
        (:func:`stack.roles.apply_postgres_roles`, as compose's postgres-init).

        Table privileges are granted by `cap-stock init-db`, which runs as the owner.
        """
        with self.superuser_connection() as conn:
            try:
                roles.apply_postgres_roles(conn, self.settings)
            except roles.RolesError as err:
                raise StackError(f"postgres: {err} (.env)") from None

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
