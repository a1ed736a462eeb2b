"""Authentication and authorisation on the real Mosquitto the stack runs (SPEC §8)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from core.credentials import COLLECTOR_USERNAME, device_credentials, service_credentials
from core.protocol import topic_for
from core.settings import Settings
from tests.integration.broker_accounts import broker_devices
from tests.integration.mqtt_helpers import MqttTestClient, connect

SITE, ELEVATOR, OTHER = "tsite", "test-elevator-1", "test-elevator-2"
NOT_AUTHORIZED = 135


@pytest.fixture(scope="module")
def broker(stack_settings: Settings) -> Iterator[Settings]:
    """The local broker with two test elevators registered in its password file and ACL."""
    if not stack_settings.local_mqtt:
        pytest.fail("these tests manage broker accounts and need the local broker")
    with broker_devices(stack_settings, [(SITE, ELEVATOR), (SITE, OTHER)]):
        yield stack_settings


def _collector(settings: Settings) -> MqttTestClient:
    creds = service_credentials(settings.secret("mqtt_secret"), COLLECTOR_USERNAME)
    client = connect(settings.resolved_mqtt_url(), creds.username, creds.password)
    assert client.connect_reason is not None
    assert not client.connect_reason.is_failure
    return client


def _device(settings: Settings, elevator: str) -> MqttTestClient:
    creds = device_credentials(settings.secret("mqtt_secret"), elevator)
    client = connect(settings.resolved_mqtt_url(), creds.username, creds.password)
    assert client.connect_reason is not None
    assert not client.connect_reason.is_failure, str(client.connect_reason)
    return client


def test_device_publishes_and_collector_receives(broker: Settings) -> None:
    collector = _collector(broker)
    device = _device(broker, ELEVATOR)
    try:
        topic = topic_for(SITE, ELEVATOR, "telemetry")
        collector.subscribe(topic)
        time.sleep(0.3)
        assert device.publish(topic, b'{"v":1}').value == 0
        assert collector.got_message.wait(5)
        assert collector.received == [(topic, b'{"v":1}')]
    finally:
        device.close()
        collector.close()


def test_anonymous_client_is_refused(broker: Settings) -> None:
    client = connect(broker.resolved_mqtt_url(), None, None)
    try:
        assert client.connect_reason is not None
        assert client.connect_reason.is_failure
        assert str(client.connect_reason) in {"Not authorized", "Bad user name or password"}
    finally:
        client.close()


def test_wrong_password_is_refused(broker: Settings) -> None:
    client = connect(broker.resolved_mqtt_url(), ELEVATOR, "not-the-password")
    try:
        assert client.connect_reason is not None
        assert client.connect_reason.is_failure
    finally:
        client.close()


def test_device_cannot_publish_to_another_elevators_topic(broker: Settings) -> None:
    collector = _collector(broker)
    device = _device(broker, ELEVATOR)
    try:
        foreign = topic_for(SITE, OTHER, "telemetry")
        collector.subscribe(foreign)
        time.sleep(0.3)
        assert device.publish(foreign, b"forged").value == NOT_AUTHORIZED
        assert not collector.got_message.wait(1.0)
        assert collector.received == []
    finally:
        device.close()
        collector.close()


def test_device_reads_nothing(broker: Settings) -> None:
    reader = _device(broker, OTHER)
    device = _device(broker, ELEVATOR)
    try:
        reader.subscribe("lift/v1/#")
        time.sleep(0.3)
        assert device.publish(topic_for(SITE, ELEVATOR, "event"), b"{}").value == 0
        assert not reader.got_message.wait(1.0)
    finally:
        device.close()
        reader.close()


def test_collector_cannot_publish_alerts(broker: Settings) -> None:
    collector = _collector(broker)
    try:
        reason = collector.publish(topic_for(SITE, ELEVATOR, "alert"), b"{}")
        assert reason.value == NOT_AUTHORIZED
    finally:
        collector.close()


def test_broker_persists_sessions_to_disk(broker: Settings) -> None:
    config = (broker.data_dir / "mosquitto" / "mosquitto.conf").read_text()
    assert "persistence true" in config.splitlines()
    assert "allow_anonymous false" in config.splitlines()
