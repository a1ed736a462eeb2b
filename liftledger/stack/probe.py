"""Does each service answer? Real protocol handshakes, not just open ports.

The MQTT probe speaks just enough MQTT 3.1.1 (CONNECT, CONNACK, DISCONNECT; OASIS MQTT 3.1.1
§3.1 to 3.2) to tell "unreachable" from "refuses these credentials" without a client library.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

from core.credentials import PROBE_USERNAME, service_credentials
from core.db import check_database
from core.errors import LiftLedgerError, ServiceUnreachable
from core.settings import Settings
from liftledger.stack.anvil import rpc_call

_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad username or password",
    5: "not authorized",
}


def _utf8_field(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def mqtt_connect_code(
    url: str, username: str | None, password: str | None, *, timeout_s: float = 3.0
) -> int:
    """CONNACK return code for a clean-session CONNECT (0 = accepted).

    Raises `ServiceUnreachable` when nothing speaks MQTT at `url`.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 1883
    flags = 0x02  # clean session
    payload = _utf8_field("liftledger-probe")
    if username is not None:
        flags |= 0x80
        payload += _utf8_field(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8_field(password)
    variable = _utf8_field("MQTT") + bytes([4, flags]) + struct.pack("!H", 10)
    body = variable + payload
    packet = bytes([0x10]) + _remaining_length(len(body)) + body
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(packet)
            reply = sock.recv(4)
            if len(reply) < 4 or reply[0] != 0x20:
                raise ServiceUnreachable(f"{url} does not speak MQTT (no CONNACK)")
            if reply[3] == 0:
                sock.sendall(b"\xe0\x00")
            return reply[3]
    except OSError as exc:
        raise ServiceUnreachable(
            f"the MQTT broker at {url} does not answer ({exc.strerror or exc}): start it with "
            "`liftledger stack up` or fix LIFTLEDGER_MQTT_URL"
        ) from exc


def check_mqtt(url: str, username: str, password: str) -> str:
    """Connect with the given account; one-line error when the broker is down or refuses."""
    code = mqtt_connect_code(url, username, password)
    if code != 0:
        reason = _CONNACK_REASONS.get(code, f"code {code}")
        raise ServiceUnreachable(
            f"the MQTT broker at {url} refused {username} ({reason}): regenerate the broker "
            "accounts with `liftledger stack up` or fix the MQTT secret"
        )
    return f"accepts the {username} account"


def check_chain(url: str, expected_chain_id: int | None = None) -> str:
    """Ask the chain for its id and head block."""
    chain_id = int(rpc_call(url, "eth_chainId"), 16)
    block = int(rpc_call(url, "eth_blockNumber"), 16)
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise ServiceUnreachable(
            f"the chain at {url} has chain id {chain_id}, expected {expected_chain_id}: "
            "fix LIFTLEDGER_CHAIN_URL or LIFTLEDGER_CHAIN_ID"
        )
    return f"chain id {chain_id}, block {block}"


def service_report(settings: Settings) -> list[tuple[str, str, bool, str]]:
    """(service, URL, answers, detail) for the database, the broker and the chain."""
    # Its own account: the broker binds client ids to usernames, so probing with a service's
    # account would take over that service's session.
    probe_account = service_credentials(settings.secret("mqtt_secret"), PROBE_USERNAME)
    probes: list[tuple[str, str, Callable[[], str]]] = [
        (
            "timescaledb",
            settings.resolved_database_url(),
            lambda: check_database(settings.resolved_database_url()),
        ),
        (
            "mosquitto",
            settings.resolved_mqtt_url(),
            lambda: check_mqtt(
                settings.resolved_mqtt_url(), probe_account.username, probe_account.password
            ),
        ),
        (
            "anvil",
            settings.resolved_chain_url(),
            lambda: check_chain(settings.resolved_chain_url(), settings.chain_id),
        ),
    ]
    report = []
    for name, url, probe in probes:
        try:
            report.append((name, url, True, probe()))
        except LiftLedgerError as exc:
            report.append((name, url, False, str(exc)))
    return report
