"""The local Mosquitto broker: configuration, password file, ACL, start and stop (SPEC §8).

Persistence is on so queued QoS 1 messages and persistent sessions survive a restart;
anonymous clients are refused; each elevator may only publish to its own three topics and
read nothing; the collector account only reads device topics; the platform account only
publishes alerts and the alert-reader account only reads them. The password file and ACL are
regenerated from the registry, and the broker reloads them on SIGHUP without dropping
connections.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

from core.credentials import (
    ALERT_READER_USERNAME,
    COLLECTOR_USERNAME,
    PLATFORM_USERNAME,
    SERVICE_USERNAMES,
    MqttCredentials,
    device_credentials,
    service_credentials,
)
from core.errors import StackError
from core.protocol import TOPIC_PREFIX, topic_for
from core.settings import LOCAL_HOST, Settings
from liftledger.stack.install import require_command
from liftledger.stack.process import owned_pid, port_answers, spawn, stop_pid, wait_until

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes for its `$7$` (PBKDF2-SHA512) hashes
START_TIMEOUT_S = 15
# Large enough that a collector offline for hours at fleet rates keeps every message;
# the default (1,000) would drop silently (iot-alerting reference, §3.7).
MAX_QUEUED_MESSAGES = 5_000_000
# The collector dead-letters payloads above 64 KiB itself, so the broker must let them through.
MAX_PACKET_BYTES = 1024 * 1024

_CONFIG_TEMPLATE = """\
# Written by `liftledger stack up`; edits are overwritten.
per_listener_settings false
listener {port} {host}
allow_anonymous false
password_file {passwd}
acl_file {acl}
persistence true
persistence_location {persistence}/
autosave_interval 5
max_queued_messages {max_queued}
max_queued_bytes 0
max_inflight_messages 1000
max_packet_size {max_packet}
connection_messages false
log_dest file {log}
log_type error
log_type warning
log_type notice
user {user}
"""


def password_line(credentials: MqttCredentials) -> str:
    """One `mosquitto_passwd`-compatible line (`$7$` = PBKDF2-SHA512)."""
    # A salt derived from the password keeps the file byte-stable across regenerations,
    # so an unchanged registry does not trigger a reload; passwords are random anyway.
    salt = hashlib.sha256(credentials.password.encode()).digest()[:12]
    digest = hashlib.pbkdf2_hmac("sha512", credentials.password.encode(), salt, PBKDF2_ITERATIONS)
    return (
        f"{credentials.username}:$7${PBKDF2_ITERATIONS}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def render_acl(elevators: Iterable[tuple[str, str]]) -> str:
    """ACL text for the service accounts and each (site, elevator) device."""
    lines = [
        "# Written by LiftLedger from the elevator registry; edits are overwritten.",
        f"user {COLLECTOR_USERNAME}",
        *(f"topic read {TOPIC_PREFIX}/+/+/{kind}" for kind in ("telemetry", "event", "status")),
        "",
        f"user {PLATFORM_USERNAME}",
        f"topic write {TOPIC_PREFIX}/+/+/alert",
        "",
        f"user {ALERT_READER_USERNAME}",
        f"topic read {TOPIC_PREFIX}/+/+/alert",
        "",
    ]
    for site, elevator in elevators:
        lines.append(f"user {elevator}")
        lines.extend(
            f"topic write {topic_for(site, elevator, kind)}"
            for kind in ("telemetry", "event", "status")
        )
        lines.append("")
    return "\n".join(lines)


class LocalMosquitto:
    """The stack's own Mosquitto."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.folder = settings.data_dir / "mosquitto"
        self.config = self.folder / "mosquitto.conf"
        self.passwd = self.folder / "passwd"
        self.acl = self.folder / "acl"
        self.pid_file = settings.data_dir / "run" / "mosquitto.pid"
        self.log_file = settings.data_dir / "log" / "mosquitto.log"

    def pid(self) -> int | None:
        """Pid of the broker this stack started, if it still runs."""
        return owned_pid(self.pid_file, str(self.config))

    def write_auth(self, elevators: Iterable[tuple[str, str]]) -> bool:
        """Write the password file and ACL; True when either changed."""
        secret = self._settings.secret("mqtt_secret")
        pairs = sorted(set(elevators))
        accounts = [service_credentials(secret, name) for name in SERVICE_USERNAMES]
        accounts += [device_credentials(secret, elevator) for _, elevator in pairs]
        changed = _write_if_changed(
            self.passwd, "\n".join(password_line(account) for account in accounts) + "\n"
        )
        return _write_if_changed(self.acl, render_acl(pairs)) or changed

    def reload(self) -> None:
        """Make a running broker re-read its password file and ACL."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def start(self) -> None:
        """Start the broker unless it already runs."""
        if self.pid() is not None:
            return
        binary = require_command(
            self._settings, "mosquitto", "mosquitto", why="the local MQTT broker"
        )
        if port_answers(LOCAL_HOST, self._settings.mqtt_port):
            raise StackError(
                f"port {self._settings.mqtt_port} is taken by another program: "
                "set LIFTLEDGER_MQTT_PORT to a free port"
            )
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        if not self.passwd.exists():
            self.write_auth([])
        self.config.write_text(
            _CONFIG_TEMPLATE.format(
                port=self._settings.mqtt_port,
                host=LOCAL_HOST,
                passwd=self.passwd,
                acl=self.acl,
                persistence=self.folder / "data",
                max_queued=MAX_QUEUED_MESSAGES,
                max_packet=MAX_PACKET_BYTES,
                log=self.log_file,
                user=getpass.getuser(),
            ),
            encoding="utf-8",
        )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        spawn([binary, "-c", str(self.config)], pid_file=self.pid_file, log_file=self.log_file)
        wait_until(
            lambda: port_answers(LOCAL_HOST, self._settings.mqtt_port),
            timeout_s=START_TIMEOUT_S,
            what="Mosquitto",
            log_file=self.log_file,
        )

    def stop(self) -> bool:
        """Stop the broker if this stack started it; True when it was running."""
        pid = self.pid()
        if pid is None:
            return False
        stop_pid(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.replace(path)
    return True
