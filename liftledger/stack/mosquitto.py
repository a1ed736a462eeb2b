"""The local Mosquitto broker: configuration, password file, ACL, start and stop (SPEC §8).

Persistence is on so queued QoS 1 messages and persistent sessions survive a restart;
anonymous clients are refused; each elevator may only publish to its own three topics and
read nothing; the collector accounts only read device topics; the platform account only
publishes alerts and the alert-reader account only reads them. Every client id is bound to
its username (`use_username_as_clientid`), so no client can take over another's session or
fire its Last Will. The password file and ACL are regenerated from the registry, and the
broker reloads them on SIGHUP without dropping connections.

The broker drops root: started as root it runs as the `mosquitto` system user (or `nobody`),
which owns its files. Its log goes through a filter that keeps everything but the per-packet
debug lines, so ACL denials ("Denied PUBLISH from …"), refused logins, subscriptions and
dropped-message notices are logged without a line per message.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import pwd
import signal
import tempfile
from collections.abc import Iterable
from pathlib import Path

from core.credentials import (
    ALERT_READER_USERNAME,
    MONITOR_USERNAME,
    PLATFORM_USERNAME,
    PROBE_USERNAME,
    SERVICE_USERNAMES,
    MqttCredentials,
    device_credentials,
    local_collector_usernames,
    service_credentials,
)
from core.errors import StackError
from core.protocol import TOPIC_PREFIX, topic_for
from core.settings import LOCAL_HOST, Settings
from liftledger.stack.install import require_command
from liftledger.stack.process import (
    OwnedDaemon,
    port_answers,
    require_free_port,
    spawn_filtered,
    wait_until,
)

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes for its `$7$` (PBKDF2-SHA512) hashes
START_TIMEOUT_S = 15
# Large enough that a collector offline for hours at fleet rates keeps every message;
# the default (1,000) would drop silently (iot-alerting reference, §3.7). The byte bound caps
# the broker's memory per client; reaching either bound is logged by the broker ("Outgoing
# messages are being dropped for client …") and reported by `liftledger stack status`.
MAX_QUEUED_MESSAGES = 5_000_000
MAX_QUEUED_BYTES = 2 * 1024**3
DROPPING_NOTICE = "Outgoing messages are being dropped"
# The per-packet debug lines; every other line (denials, refused logins, subscriptions,
# dropped messages, errors) reaches the log.
LOG_FILTER = ": (Received|Sending) [A-Z]+ |: No will message specified"
# The collector dead-letters payloads above 64 KiB itself, so the broker must let them through.
MAX_PACKET_BYTES = 1024 * 1024

_CONFIG_TEMPLATE = """\
# Written by `liftledger stack up`; edits are overwritten.
per_listener_settings false
listener {port} {host}
allow_anonymous false
password_file {passwd}
acl_file {acl}
use_username_as_clientid true
persistence true
persistence_location {persistence}/
autosave_interval 5
max_queued_messages {max_queued}
max_queued_bytes {max_queued_bytes}
max_inflight_messages 1000
max_packet_size {max_packet}
connection_messages true
log_dest stderr
log_timestamp_format %Y-%m-%dT%H:%M:%S
log_type error
log_type warning
log_type notice
log_type subscribe
{debug}user {user}
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


DEVICE_KINDS = ("telemetry", "event", "status")


def broker_user() -> tuple[str, int, int] | None:
    """(name, uid, gid) the broker runs as when started by root; None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("mosquitto", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, entry.pw_uid, entry.pw_gid
    raise StackError("no `mosquitto` or `nobody` user to run the broker as (it never runs as root)")


def reachable_by(path: Path, uid: int, gid: int) -> bool:
    """True when user `uid` (group `gid`) may traverse every folder down to `path`."""
    for folder in (path, *path.parents):
        mode = folder.stat()
        if mode.st_uid == uid:
            allowed = mode.st_mode & 0o100
        elif mode.st_gid == gid:
            allowed = mode.st_mode & 0o010
        else:
            allowed = mode.st_mode & 0o001
        if not allowed:
            return False
    return True


def render_acl(elevators: Iterable[tuple[str, str]]) -> str:
    """ACL text for the service accounts and each (site, elevator) device."""
    lines = [
        "# Written by LiftLedger from the elevator registry; edits are overwritten.",
        "# Collector accounts: one per partition (the broker binds client id to username).",
    ]
    for collector in (*local_collector_usernames(), MONITOR_USERNAME):
        lines.append(f"user {collector}")
        lines.extend(f"topic read {TOPIC_PREFIX}/+/+/{kind}" for kind in DEVICE_KINDS)
        lines.append("")
    lines += [
        f"user {PLATFORM_USERNAME}",
        f"topic write {TOPIC_PREFIX}/+/+/alert",
        "",
        f"user {ALERT_READER_USERNAME}",
        f"topic read {TOPIC_PREFIX}/+/+/alert",
        "",
        f"# {PROBE_USERNAME} may connect and nothing else.",
        f"user {PROBE_USERNAME}",
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


class LocalMosquitto(OwnedDaemon):
    """The stack's own Mosquitto."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.folder = settings.data_dir / "mosquitto"
        self.config = self.folder / "mosquitto.conf"
        self.passwd = self.folder / "passwd"
        self.acl = self.folder / "acl"
        super().__init__(settings.data_dir, "mosquitto", marker=self.config)

    def prepare_folder(self) -> Path:
        """The broker's folder, where the user it runs as can reach it.

        Started by root, the broker drops to its own user before it reads the password file,
        the ACL and its persistence; when that user cannot reach the data folder (under
        `/root` or a private temporary folder), the broker's folder is moved to
        `/var/lib/liftledger/<digest>/mosquitto` and linked from the data folder, as the
        database's cluster is.
        """
        if self.folder.is_symlink() or self.folder.is_dir():
            return self.folder.resolve()
        self._settings.data_dir.mkdir(parents=True, exist_ok=True)
        owner = broker_user()
        if owner is None or reachable_by(self._settings.data_dir, owner[1], owner[2]):
            self.folder.mkdir(parents=True, exist_ok=True)
            return self.folder
        digest = hashlib.sha256(str(self._settings.data_dir).encode()).hexdigest()[:12]
        target = Path("/var/lib/liftledger") / digest / "mosquitto"
        target.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another writer linked it first
            self.folder.symlink_to(target, target_is_directory=True)
        return self.folder.resolve()

    def write_auth(self, elevators: Iterable[tuple[str, str]]) -> bool:
        """Write the password file and ACL; True when either changed."""
        self.prepare_folder()
        secret = self._settings.secret("mqtt_secret")
        pairs = sorted(set(elevators))
        accounts = [service_credentials(secret, name) for name in SERVICE_USERNAMES]
        accounts += [device_credentials(secret, elevator) for _, elevator in pairs]
        owner = broker_user()
        # One writer at a time, across processes (the CLI and the API may both write).
        with (self.folder / ".auth.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            changed = _write_if_changed(
                self.passwd,
                "\n".join(password_line(account) for account in accounts) + "\n",
                owner,
            )
            return _write_if_changed(self.acl, render_acl(pairs), owner) or changed

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
        require_free_port(LOCAL_HOST, self._settings.mqtt_port, "LIFTLEDGER_MQTT_PORT")
        folder = self.prepare_folder()
        (folder / "data").mkdir(parents=True, exist_ok=True)
        owner = broker_user()
        if not self.passwd.exists():
            self.write_auth([])
        if owner is not None:
            # The broker reads its files again on SIGHUP, after it dropped root.
            _, uid, gid = owner
            for path in (folder, folder / "data", *(folder / "data").iterdir()):
                os.chown(path, uid, gid)
            for path in (self.passwd, self.acl):
                if path.exists():
                    os.chown(path, uid, gid)
        self.config.write_text(
            _CONFIG_TEMPLATE.format(
                port=self._settings.mqtt_port,
                host=LOCAL_HOST,
                passwd=folder / "passwd",
                acl=folder / "acl",
                persistence=folder / "data",
                max_queued=MAX_QUEUED_MESSAGES,
                max_queued_bytes=MAX_QUEUED_BYTES,
                max_packet=MAX_PACKET_BYTES,
                user=owner[0] if owner is not None else "mosquitto",
                # Mosquitto reports an ACL denial only at debug level; the filter keeps those
                # lines and drops the per-packet ones (about 4 per QoS 1 message).
                debug="log_type debug\n" if self._settings.mqtt_log_denials else "",
            ),
            encoding="utf-8",
        )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        grep = require_command(self._settings, "grep", "grep", why="the broker's log filter")
        spawn_filtered(
            [binary, "-c", str(self.config)],
            [grep, "--line-buffered", "-v", "-E", LOG_FILTER],
            pid_file=self.pid_file,
            log_file=self.log_file,
        )
        wait_until(
            lambda: port_answers(LOCAL_HOST, self._settings.mqtt_port),
            timeout_s=START_TIMEOUT_S,
            what="Mosquitto",
            log_file=self.log_file,
        )

    def dropped_clients(self) -> list[str]:
        """Lines of the broker's log saying it dropped queued messages for a client."""
        try:
            with self.log_file.open(encoding="utf-8", errors="replace") as log:
                return [line.strip() for line in log if DROPPING_NOTICE in line]
        except FileNotFoundError:
            return []


def _write_if_changed(path: Path, text: str, owner: tuple[str, int, int] | None = None) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if owner is not None:
            os.chown(tmp, owner[1], owner[2])
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
