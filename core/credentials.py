"""MQTT identities: one per elevator, plus the platform's service accounts (SPEC §2, §8).

A device password is derived from the MQTT secret and the elevator id with HMAC-SHA256, so
the platform can print an elevator's credentials again at any time without storing them in
clear, and the broker's password file can be regenerated from the registry. Rotating the
MQTT secret rotates every password at once.

Device usernames are the elevator ids; service usernames contain a dot, which no elevator id
may contain, so the two can never collide.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

COLLECTOR_USERNAME: Final = "svc.collector"
PLATFORM_USERNAME: Final = "svc.platform"
# Reads the alert topics only: for crew gateways, dashboards and the tests.
ALERT_READER_USERNAME: Final = "svc.alert-reader"
SERVICE_USERNAMES: Final = (COLLECTOR_USERNAME, PLATFORM_USERNAME, ALERT_READER_USERNAME)


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
    if username not in SERVICE_USERNAMES:
        raise ValueError(f"unknown service account {username!r}")
    return MqttCredentials(username, _derive(secret, f"service:{username}"))
