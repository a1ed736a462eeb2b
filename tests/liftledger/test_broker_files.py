from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pytest

from core.credentials import MqttCredentials, collector_username, service_credentials
from core.settings import load_settings
from liftledger.stack import mosquitto
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


def test_every_collector_partition_account_reads_device_topics_and_the_probe_nothing() -> None:
    acl = render_acl([("s1", "e1")])
    for account in ("svc.collector", "svc.collector.0-of-2", "svc.collector.7-of-8", "svc.monitor"):
        section = acl.split(f"user {account}\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert section == [
            "topic read lift/v1/+/+/telemetry",
            "topic read lift/v1/+/+/event",
            "topic read lift/v1/+/+/status",
        ], account
    probe = acl.split("user svc.probe\n", 1)[1].split("\n\n", 1)[0].strip()
    assert probe == "" or probe.startswith("user ")


def test_collector_accounts_are_one_per_partition() -> None:
    assert collector_username(0, 1) == "svc.collector"
    names = {collector_username(k, 4) for k in range(4)}
    assert len(names) == 4
    assert service_credentials("secret", "svc.collector.3-of-12").username == (
        "svc.collector.3-of-12"
    )
    with pytest.raises(ValueError, match="unknown service account"):
        service_credentials("secret", "svc.collector.5-of-4")
    with pytest.raises(ValueError, match="no partition"):
        collector_username(2, 2)


def test_the_broker_config_binds_client_ids_and_drops_root() -> None:
    template = mosquitto._CONFIG_TEMPLATE
    assert "use_username_as_clientid true" in template
    assert "user {user}" in template
    assert "allow_anonymous false" in template


def test_a_broker_that_dropped_queued_messages_is_reported(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    broker = mosquitto.LocalMosquitto(settings)
    assert broker.dropped_clients() == []
    broker.log_file.parent.mkdir(parents=True)
    broker.log_file.write_text(
        "2026-11-29T10:00:00: Denied PUBLISH from e1 (d0, q1, r0, m1, 'x', ... (1 bytes))\n"
        "2026-11-29T10:00:01: Outgoing messages are being dropped for client svc.collector.\n"
    )
    assert broker.dropped_clients() == [
        "2026-11-29T10:00:01: Outgoing messages are being dropped for client svc.collector."
    ]


def test_concurrent_account_writes_never_mix_two_registries(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    broker = mosquitto.LocalMosquitto(settings)
    registries = [[(f"s{k}", f"e{k}-{n}") for n in range(50)] for k in range(6)]
    errors: list[BaseException] = []

    def write(registry: list[tuple[str, str]]) -> None:
        try:
            for _ in range(15):
                broker.write_auth(registry)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(r,)) for r in registries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    acl = broker.acl.read_text()
    users = {line.split(":", 1)[0] for line in broker.passwd.read_text().splitlines()}
    # Both files are one registry's, whole: the password file's devices are the ACL's.
    devices = {u for u in users if not u.startswith("svc.")}
    assert devices in [{e for _, e in r} for r in registries]
    assert all(f"user {device}\n" in acl for device in devices)
    assert not list(broker.folder.glob(".passwd.*"))
    assert not list(broker.folder.glob(".acl.*"))
