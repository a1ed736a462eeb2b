"""MQTT identities: one per elevator, plus the platform's service accounts (SPEC §2, §8).

A device password is derived from the MQTT secret and the elevator id with HMAC-SHA256, so
the platform can print an elevator's credentials again at any time without storing them in
clear, and the broker's password file can be regenerated from the registry. Rotating the
MQTT secret rotates every password at once.

Device usernames are the elevator ids; service usernames contain a dot, which no elevator id
may contain, so the two can never collide.

The broker binds every client id to its username (Mosquitto's `use_username_as_clientid`),
so an identity is also a session: one connection per account at a time, and nobody can take
over another account's session or Last Will. Hence one collector account per partition, and
separate accounts for the stack's probe and for read-only monitoring (docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

# The collector of a single partition; partition K of N (N > 1) is `svc.collector.K-of-N`.
COLLECTOR_USERNAME: Final = "svc.collector"
PLATFORM_USERNAME: Final = "svc.platform"
# Reads the alert topics only: for crew gateways, dashboards and the tests.
ALERT_READER_USERNAME: Final = "svc.alert-reader"
# Reads the device topics only, never as a collector: for diagnostics and the tests.
MONITOR_USERNAME: Final = "svc.monitor"
# May connect and nothing else: `liftledger stack status` checks the broker with it.
PROBE_USERNAME: Final = "svc.probe"
# Partition counts the local stack provisions collector accounts for.
LOCAL_MAX_PARTITIONS: Final = 8
_PARTITION_ACCOUNT: Final = re.compile(r"svc\.collector\.(\d{1,4})-of-(\d{1,4})")


def collector_username(partition: int, partitions: int) -> str:
    """The broker account (and so the client id) of collector `partition` of `partitions`."""
    if not 0 <= partition < partitions:
        raise ValueError(f"no partition {partition} of {partitions}")
    if partitions == 1:
        return COLLECTOR_USERNAME
    return f"{COLLECTOR_USERNAME}.{partition}-of-{partitions}"


def local_collector_usernames() -> tuple[str, ...]:
    """Collector accounts for every layout of up to `LOCAL_MAX_PARTITIONS` partitions."""
    return tuple(
        collector_username(k, n) for n in range(1, LOCAL_MAX_PARTITIONS + 1) for k in range(n)
    )


SERVICE_USERNAMES: Final = (
    *local_collector_usernames(),
    PLATFORM_USERNAME,
    ALERT_READER_USERNAME,
    MONITOR_USERNAME,
    PROBE_USERNAME,
)


@dataclass(frozen=True, slots=True)
class MqttCredentials:
    """A username and password for the broker."""

    username: str
    password: str


def _derive(secret: str, label: str) -> str:
    digest = hmac.new(secret.encode(), label.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def device_credentials(secret: str, elevator_id: str) -> MqttCredentials:
    """The MQTT identity of one elevator."""
    return MqttCredentials(elevator_id, _derive(secret, f"device:{elevator_id}"))


def service_credentials(secret: str, username: str) -> MqttCredentials:
    """The MQTT identity of a platform service (`svc.collector`, `svc.platform`)."""
    partition = _PARTITION_ACCOUNT.fullmatch(username)
    known = partition is not None and 0 <= int(partition[1]) < int(partition[2])
    if not known and username not in SERVICE_USERNAMES:
        raise ValueError(f"unknown service account {username!r}")
    return MqttCredentials(username, _derive(secret, f"service:{username}"))
