"""The local PostgreSQL cluster with TimescaleDB preloaded, in the stack's data folder.

PostgreSQL refuses to run as root, so when the stack runs as root the cluster belongs to
the `postgres` system user and every server command runs through `runuser`. If that user
cannot reach the data folder (a checkout under /root, say), the cluster lives under
/var/lib/liftledger and the data folder holds a symlink to it.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from core.db import libpq_url, translate_connect_errors
from core.db_roles import ensure_roles
from core.errors import StackError
from core.settings import LOCAL_HOST, Settings
from liftledger.stack.install import PostgresInstall
from liftledger.stack.process import require_free_port, run, wait_until

SERVER_USER = "postgres"
SUPERUSER = "liftledger"
START_TIMEOUT_S = 60

_CONFIG_TEMPLATE = """\
# Written by `liftledger stack up`; edits are overwritten.
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{socket_dir}'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
shared_buffers = 1GB
effective_cache_size = 8GB
work_mem = 16MB
maintenance_work_mem = 512MB
max_wal_size = 4GB
checkpoint_timeout = 15min
timezone = 'UTC'
log_timezone = 'UTC'
"""


def _as_server_user() -> list[str]:
    """Prefix that runs a command as the cluster's owner."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise StackError(
            f"running as root needs the `{SERVER_USER}` system user to own the database: "
            "install PostgreSQL with `apt-get install postgresql`"
        ) from exc
    return ["runuser", "-u", SERVER_USER, "--"]


def _server_user_can_reach(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    proc = subprocess.run(
        [*_as_server_user(), "test", "-x", str(path)], capture_output=True, check=False
    )
    return proc.returncode == 0


class LocalPostgres:
    """The stack's own PostgreSQL cluster."""

    def __init__(self, settings: Settings, install: PostgresInstall | None) -> None:
        self._settings = settings
        self._install = install
        self.link = settings.data_dir / "postgres"

    @property
    def log_file(self) -> Path:
        """The server log; next to a relocated cluster, where the server user can write."""
        if self.link.is_symlink():
            return self.cluster_dir().parent / "postgres.log"
        return self._settings.data_dir / "log" / "postgres.log"

    @property
    def url(self) -> str:
        """URL of the application database."""
        return self._settings.resolved_database_url()

    def _bin(self, name: str) -> str:
        if self._install is None:
            raise StackError("PostgreSQL is not installed: run `liftledger stack up`")
        return str(self._install.bindir / name)

    def cluster_dir(self) -> Path:
        """The folder holding the cluster (follows the symlink when relocated)."""
        return self.link.resolve() if self.link.is_symlink() else self.link

    def initialized(self) -> bool:
        """True once initdb has run."""
        return (self.cluster_dir() / "PG_VERSION").is_file()

    def running(self) -> bool:
        """True when the cluster's postmaster is up."""
        if self._install is None or not self.initialized():
            return False
        proc = subprocess.run(
            [*_as_server_user(), self._bin("pg_ctl"), "status", "-D", str(self.cluster_dir())],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def _prepare_dir(self) -> Path:
        self._settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self.link.exists() or self.link.is_symlink():
            return self.cluster_dir()
        if _server_user_can_reach(self._settings.data_dir):
            target = self.link
        else:
            digest = hashlib.sha256(str(self._settings.data_dir).encode()).hexdigest()[:12]
            target = Path("/var/lib/liftledger") / digest / "postgres"
            self.link.symlink_to(target, target_is_directory=True)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o700)
        if os.geteuid() == 0:
            shutil.chown(target, SERVER_USER, SERVER_USER)
        return target

    def init(self) -> None:
        """Create the cluster with the generated superuser password (scram-sha-256)."""
        cluster = self._prepare_dir()
        if self.initialized():
            return
        pwfile = cluster.parent / f".{cluster.name}.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self._settings.secret("db_password") + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, SERVER_USER, SERVER_USER)
        try:
            run(
                [
                    *_as_server_user(),
                    self._bin("initdb"),
                    "-D",
                    str(cluster),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (cluster / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\ninclude_if_exists = 'liftledger.conf'\n")

    def _write_config(self) -> None:
        cluster = self.cluster_dir()
        socket_dir = cluster / "run"
        socket_dir.mkdir(exist_ok=True)
        config = cluster / "liftledger.conf"
        config.write_text(
            _CONFIG_TEMPLATE.format(
                host=LOCAL_HOST, port=self._settings.pg_port, socket_dir=socket_dir
            ),
            encoding="utf-8",
        )
        if os.geteuid() == 0:
            for path in (socket_dir, config):
                shutil.chown(path, SERVER_USER, SERVER_USER)

    def start(self) -> None:
        """Start the server (no-op when running) and create the application database."""
        self.init()
        if not self.running():
            require_free_port(LOCAL_HOST, self._settings.pg_port, "LIFTLEDGER_PG_PORT")
            self._write_config()
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self.log_file.touch()
            if os.geteuid() == 0:
                shutil.chown(self.log_file, SERVER_USER, SERVER_USER)
            run(
                [
                    *_as_server_user(),
                    self._bin("pg_ctl"),
                    "start",
                    "-D",
                    str(self.cluster_dir()),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                ],
                what=f"starting PostgreSQL (see {self.log_file})",
            )
        wait_until(
            self._accepts_logins,
            timeout_s=START_TIMEOUT_S,
            what="PostgreSQL",
            log_file=self.log_file,
        )
        self.create_database(self._settings.pg_database)
        self.ensure_roles()

    def _accepts_logins(self) -> bool:
        try:
            with self._connect_maintenance(timeout_s=2):
                return True
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                raise StackError(
                    "the local database refused the generated password in "
                    f"{self._settings.secrets_dir}/db_password: restore that file, or remove "
                    f"{self.link} to start from an empty cluster"
                ) from exc
            return False

    def _connect_maintenance(self, *, timeout_s: int = 5) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=LOCAL_HOST,
            port=self._settings.pg_port,
            user=SUPERUSER,
            password=self._settings.secret("db_password"),
            dbname="postgres",
            connect_timeout=timeout_s,
            autocommit=True,
        )

    def create_database(self, name: str) -> None:
        """Create database `name` if it does not exist yet."""
        with (
            translate_connect_errors(libpq_url(self.url)),
            self._connect_maintenance() as conn,
        ):
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def ensure_roles(self) -> None:
        """Create the schema's owner role and the services' login roles (core/db_roles.py),
        with passwords derived from the database secret; the grants come with the migrations."""
        with self._connect_maintenance() as conn:
            ensure_roles(conn, self._settings.secret("db_password"))

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting its sessions."""
        with self._connect_maintenance() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> bool:
        """Stop the server if it runs; True when it was running."""
        if not self.running():
            return False
        run(
            [
                *_as_server_user(),
                self._bin("pg_ctl"),
                "stop",
                "-D",
                str(self.cluster_dir()),
                "-m",
                "fast",
                "-w",
            ],
            what="stopping PostgreSQL",
        )
        return True
