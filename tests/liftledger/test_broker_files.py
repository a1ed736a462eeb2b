from __future__ import annotations

import base64
import hashlib

from core.credentials import MqttCredentials
from liftledger.stack.mosquitto import password_line, render_acl


def test_password_line_is_a_mosquitto_pbkdf2_sha512_hash() -> None:
    line = password_line(MqttCredentials("e1", "s3cret"))
    username, hashed = line.split(":", 1)
    _, algorithm, iterations, salt_b64, digest_b64 = hashed.split("$")
    salt = base64.b64decode(salt_b64)
    assert username == "e1"
    assert algorithm == "7"
    assert len(salt) == 12
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, int(iterations))
    assert base64.b64decode(digest_b64) == expected


def test_password_line_is_stable_for_the_same_password() -> None:
    credentials = MqttCredentials("e1", "s3cret")
    assert password_line(credentials) == password_line(credentials)


def test_acl_lets_a_device_write_only_its_own_topics() -> None:
    acl = render_acl([("s1", "e1")])
    section = acl.split("user e1\n", 1)[1].strip().splitlines()
    assert section == [
        "topic write lift/v1/s1/e1/telemetry",
        "topic write lift/v1/s1/e1/event",
        "topic write lift/v1/s1/e1/status",
    ]
    assert "topic read lift/v1/+/+/telemetry" in acl.split("user svc.collector\n", 1)[1]


def test_acl_lets_the_platform_write_and_the_alert_reader_read_only_alert_topics() -> None:
    acl = render_acl([("s1", "e1")])
    platform = acl.split("user svc.platform\n", 1)[1].split("\n\n", 1)[0].splitlines()
    reader = acl.split("user svc.alert-reader\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert platform == ["topic write lift/v1/+/+/alert"]
    assert reader == ["topic read lift/v1/+/+/alert"]
