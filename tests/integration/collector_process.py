"""A `liftledger collector` subprocess for integration tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.credentials import collector_username, service_credentials
from core.settings import Settings
from ingest.collector import topic_filters
from tests.integration.cli_helpers import REPO, clean_environment
from tests.integration.mqtt_helpers import connect, open_session


@dataclass
class CollectorProcess:
    """A `liftledger collector` subprocess with its partition's persistent MQTT session.

    The broker binds client ids to accounts, so the session is the partition account's;
    `open_session` starts it afresh (clean start), which drops anything an earlier test left.
    """

    settings: Settings
    database_url: str
    name: str  # names the log file
    sites: Sequence[str] = ()
    partition: tuple[int, int] = (0, 1)
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_id(self) -> str:
        """The partition's account, which the broker also uses as its client id."""
        return collector_username(*self.partition)

    @property
    def log(self) -> Path:
        """The collector's log, kept for a failing test's report."""
        return Path(tempfile.gettempdir()) / f"{self.name}.log"

    def open_session(self) -> None:
        """Subscribe this client id before the process starts, so nothing published from now
        on can miss it (the collector resumes the session: clean_start=False)."""
        part, total = self.partition
        creds = service_credentials(self.settings.secret("mqtt_secret"), self.client_id)
        open_session(
            self.settings.resolved_mqtt_url(),
            creds.username,
            creds.password,
            self.client_id,
            topic_filters(self.sites, part, total),
        )

    def start(self) -> None:
        env = clean_environment(
            LIFTLEDGER_DATA_DIR=str(self.settings.data_dir),
            LIFTLEDGER_DATABASE_URL=self.database_url,
        )
        with self.log.open("ab") as log:
            self.process = self._spawn(env, log)

    def _spawn(self, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "liftledger",
                "collector",
                "--partition",
                f"{self.partition[0]}/{self.partition[1]}",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)

    def discard_session(self) -> None:
        """Connect once with a clean start so the broker forgets this collector's session."""
        creds = service_credentials(self.settings.secret("mqtt_secret"), self.client_id)
        client = connect(
            self.settings.resolved_mqtt_url(), creds.username, creds.password, self.client_id
        )
        client.close()
