"""The simulator's fleet publisher against the real Mosquitto the stack runs (SPEC §3, §8)."""

from __future__ import annotations

import getpass
import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.credentials import (
    COLLECTOR_USERNAME,
    MONITOR_USERNAME,
    device_credentials,
    service_credentials,
)
from core.protocol import topic_for
from core.settings import Settings
from liftledger.stack.install import require_command
from liftledger.stack.process import port_answers
from simulators.mqtt_device import DeviceIdentity, PublisherError
from simulators.publisher import FleetPublisher
from tests.integration.broker_accounts import broker_devices
from tests.integration.cli_helpers import free_port
from tests.integration.mqtt_helpers import MqttTestClient, connect

SITE = "tpub"
FLEET = [f"tpub-e{index:02d}" for index in range(20)]
CRASHER, OUTAGE, FORGER, VICTIM, CLOSER, PATIENT = (
    "tpub-crash",
    "tpub-outage",
    "tpub-forger",
    "tpub-victim",
    "tpub-closer",
    "tpub-patient",
)
ELEVATORS = [*FLEET, CRASHER, OUTAGE, FORGER, VICTIM, CLOSER, PATIENT]
WAIT_S = 5.0


@pytest.fixture(scope="module")
def broker(stack_settings: Settings) -> Iterator[Settings]:
    """The local broker with this module's test elevators in its password file and ACL."""
    if not stack_settings.local_mqtt:
        pytest.fail("these tests manage broker accounts and need the local broker")
    with broker_devices(stack_settings, [(SITE, elevator) for elevator in ELEVATORS]):
        yield stack_settings


def _identity(settings: Settings, elevator: str) -> DeviceIdentity:
    creds = device_credentials(settings.secret("mqtt_secret"), elevator)
    return DeviceIdentity(SITE, elevator, creds.username, creds.password)


def _publisher(settings: Settings, elevators: list[str]) -> FleetPublisher:
    return FleetPublisher(
        mqtt_url=settings.resolved_mqtt_url(),
        devices=[_identity(settings, elevator) for elevator in elevators],
    )


def _collector(settings: Settings, *topics: str, account: str = MONITOR_USERNAME) -> MqttTestClient:
    # One connection per account (the broker binds client id to username): an observer that
    # joins while another is connected uses a second reading account.
    creds = service_credentials(settings.secret("mqtt_secret"), account)
    client = connect(settings.resolved_mqtt_url(), creds.username, creds.password)
    assert client.connect_reason is not None
    assert not client.connect_reason.is_failure
    for topic in topics:
        client.subscribe(topic)
    time.sleep(0.3)  # let the SUBACKs and any retained messages arrive
    return client


def _pump_until(fleet: FleetPublisher, condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        fleet.pump(0.02)
    return True


@contextmanager
def _private_broker(binary: str, port: int, folder: Path) -> Iterator[str]:
    """A throw-away Mosquitto (anonymous, no persistence) that a test may stop and restart."""
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest none\nuser {getpass.getuser()}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen([binary, "-c", str(config)])
    try:
        deadline = time.monotonic() + WAIT_S
        while not port_answers("127.0.0.1", port, timeout_s=0.2):
            assert process.poll() is None, "the private broker did not start"
            assert time.monotonic() < deadline, "the private broker does not answer"
            time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(WAIT_S)


def _seqs(received: list[tuple[str, bytes]], topic: str) -> list[int]:
    return [json.loads(payload)["seq"] for got, payload in received if got == topic]


def _states(received: list[tuple[str, bytes]], topic: str) -> list[str]:
    return [json.loads(payload)["state"] for got, payload in received if got == topic]


def test_every_message_of_a_fleet_arrives_in_order_and_is_acknowledged(broker: Settings) -> None:
    collector = _collector(broker, f"lift/v1/{SITE}/+/telemetry")
    try:
        with _publisher(broker, FLEET) as fleet:
            fleet.start()
            assert fleet.wait_connected(WAIT_S) == len(FLEET)
            for seq in range(50):
                for elevator in FLEET:
                    fleet.publish(elevator, "telemetry", json.dumps({"seq": seq}).encode())
                fleet.pump()
            assert fleet.flush(WAIT_S)
            stats = fleet.stats()
            assert (stats.published, stats.acknowledged, stats.refused) == (1000, 1000, 0)
            assert (stats.connected, stats.reconnects) == (len(FLEET), 0)
            deadline = time.monotonic() + WAIT_S
            while len(collector.received) < 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)  # nothing beyond the 1,000 either
    finally:
        collector.close()
    assert len(collector.received) == 1000
    for elevator in FLEET:
        topic = topic_for(SITE, elevator, "telemetry")
        assert _seqs(collector.received, topic) == list(range(50)), elevator


def test_a_connected_device_has_a_retained_online_status(broker: Settings) -> None:
    status = topic_for(SITE, FLEET[0], "status")
    with _publisher(broker, FLEET[:1]) as fleet:
        fleet.start()
        assert fleet.wait_connected(WAIT_S) == 1
        assert fleet.flush(WAIT_S)
        # A subscriber that arrives later still gets it: the broker retained it.
        late = _collector(broker, status)
        try:
            assert late.got_message.wait(WAIT_S)
            assert _states(late.received, status) == ["online"]
        finally:
            late.close()


def test_a_crashed_device_leaves_its_will_and_comes_back_with_what_it_queued(
    broker: Settings,
) -> None:
    status = topic_for(SITE, CRASHER, "status")
    telemetry = topic_for(SITE, CRASHER, "telemetry")
    live = _collector(broker, status, telemetry)
    try:
        with _publisher(broker, [CRASHER]) as fleet:
            fleet.start()
            assert fleet.wait_connected(WAIT_S) == 1
            assert _pump_until(fleet, lambda: "online" in _states(live.received, status), WAIT_S)

            for seq in range(3):  # handed to paho, not yet written: unacknowledged at the crash
                fleet.publish(CRASHER, "telemetry", json.dumps({"seq": seq}).encode())
            fleet.drop(CRASHER, down_s=2.0)
            assert fleet.stats().connected == 0
            for seq in range(3, 8):  # while the device is down
                fleet.publish(CRASHER, "telemetry", json.dumps({"seq": seq}).encode())
            fleet.pump()
            # Subscribes after the crash: sees the retained status.
            late = _collector(broker, status, account=COLLECTOR_USERNAME)
            try:
                assert late.got_message.wait(WAIT_S)
                assert _states(late.received, status) == ["offline"]
            finally:
                late.close()
            assert _pump_until(fleet, lambda: len(live.received) == 2, WAIT_S)
            assert live.received[-1] == (status, b'{"state":"offline"}')
            assert fleet.stats().connected == 0  # still down: nothing was sent

            assert fleet.wait_connected(WAIT_S) == 1
            assert fleet.flush(WAIT_S)
            stats = fleet.stats()
            assert (stats.reconnects, stats.published, stats.acknowledged) == (1, 8, 8)
            assert _pump_until(fleet, lambda: len(live.received) >= 11, WAIT_S)
    finally:
        live.close()
    assert _states(live.received, status) == ["online", "offline", "online"]
    assert _seqs(live.received, telemetry) == list(range(8))


def test_a_device_dropped_indefinitely_stays_down_until_reconnected(broker: Settings) -> None:
    status = topic_for(SITE, OUTAGE, "status")
    live = _collector(broker, status)
    try:
        with _publisher(broker, [OUTAGE]) as fleet:
            fleet.start()
            assert fleet.wait_connected(WAIT_S) == 1
            fleet.drop(OUTAGE, down_s=math.inf)
            fleet.publish(OUTAGE, "event", b'{"seq":0}')
            assert not _pump_until(fleet, lambda: fleet.stats().connected > 0, 1.5)
            assert fleet.stats().acknowledged == 0
            fleet.reconnect(OUTAGE)
            assert fleet.wait_connected(WAIT_S) == 1
            assert fleet.flush(WAIT_S)
            assert (fleet.stats().acknowledged, fleet.stats().reconnects) == (1, 1)
            assert _pump_until(fleet, lambda: len(live.received) >= 3, WAIT_S)
    finally:
        live.close()
    assert _states(live.received, status) == ["online", "offline", "online"]


def test_publishes_made_before_the_connection_are_sent_once_it_is_up(broker: Settings) -> None:
    telemetry = topic_for(SITE, PATIENT, "telemetry")
    collector = _collector(broker, telemetry)
    try:
        with _publisher(broker, [PATIENT]) as fleet:
            for seq in range(3):
                fleet.publish(PATIENT, "telemetry", json.dumps({"seq": seq}).encode())
            fleet.start()
            assert fleet.wait_connected(WAIT_S) == 1
            assert fleet.flush(WAIT_S)
            assert fleet.stats().acknowledged == 3
            assert _pump_until(fleet, lambda: len(collector.received) >= 3, WAIT_S)
    finally:
        collector.close()
    assert _seqs(collector.received, telemetry) == [0, 1, 2]


def test_devices_ride_out_a_broker_restart_and_lose_nothing(
    stack_settings: Settings, tmp_path: Path
) -> None:
    binary = require_command(stack_settings, "mosquitto", "mosquitto", why="a private broker")
    port = free_port()
    elevators = FLEET[:3]
    devices = [DeviceIdentity(SITE, elevator, elevator, "anonymous-ok") for elevator in elevators]
    fleet = FleetPublisher(mqtt_url=f"mqtt://127.0.0.1:{port}", devices=devices)
    try:
        with _private_broker(binary, port, tmp_path):
            fleet.start()
            assert fleet.wait_connected(WAIT_S) == 3
            for seq in range(5):
                for elevator in elevators:
                    fleet.publish(elevator, "telemetry", json.dumps({"seq": seq}).encode())
            assert fleet.flush(WAIT_S)
        assert _pump_until(fleet, lambda: fleet.stats().connected == 0, WAIT_S)
        for seq in range(5, 15):  # while the broker is down
            for elevator in elevators:
                fleet.publish(elevator, "telemetry", json.dumps({"seq": seq}).encode())
        with _private_broker(binary, port, tmp_path) as url:
            collector = connect(url, None, None)
            try:
                collector.subscribe(f"lift/v1/{SITE}/+/telemetry")
                time.sleep(0.3)
                assert fleet.wait_connected(3 * WAIT_S) == 3
                assert fleet.flush(WAIT_S)
                assert _pump_until(fleet, lambda: len(collector.received) >= 30, WAIT_S)
            finally:
                collector.close()
            fleet.close()
    finally:
        fleet.close()
    stats = fleet.stats()
    assert (stats.published, stats.acknowledged, stats.reconnects) == (45, 45, 3)
    for elevator in elevators:
        topic = topic_for(SITE, elevator, "telemetry")
        assert _seqs(collector.received, topic) == list(range(5, 15)), elevator


def test_a_device_cannot_publish_on_another_elevators_topic(broker: Settings) -> None:
    foreign = topic_for(SITE, VICTIM, "telemetry")
    collector = _collector(broker, foreign)
    try:
        with _publisher(broker, [FORGER]) as fleet:
            fleet.start()
            assert fleet.wait_connected(WAIT_S) == 1
            fleet.publish_raw(FORGER, foreign, b'{"forged":true}')
            assert fleet.flush(WAIT_S)
            stats = fleet.stats()
            assert (stats.published, stats.acknowledged, stats.refused) == (1, 0, 1)
            assert not collector.got_message.wait(1.0)
    finally:
        collector.close()
    assert collector.received == []


def test_close_disconnects_cleanly_so_no_will_is_published(broker: Settings) -> None:
    status = topic_for(SITE, CLOSER, "status")
    collector = _collector(broker, status)
    try:
        fleet = _publisher(broker, [CLOSER])
        fleet.start()
        assert fleet.wait_connected(WAIT_S) == 1
        assert _pump_until(fleet, lambda: len(collector.received) == 1, WAIT_S)
        fleet.close()
        assert fleet.stats().connected == 0
        time.sleep(1.0)
    finally:
        collector.close()
    assert _states(collector.received, status) == ["online"]


def test_wrong_password_is_a_one_line_publisher_error(broker: Settings) -> None:
    url = broker.resolved_mqtt_url()
    device = DeviceIdentity(SITE, FLEET[0], FLEET[0], "not-the-password")
    with FleetPublisher(mqtt_url=url, devices=[device]) as fleet:
        fleet.start()
        with pytest.raises(PublisherError) as raised:
            fleet.wait_connected(WAIT_S)
    message = str(raised.value)
    assert "\n" not in message
    assert url in message
    assert FLEET[0] in message
    assert "Bad user name or password" in message or "Not authorized" in message


def test_unreachable_broker_is_a_one_line_publisher_error(broker: Settings) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    with FleetPublisher(mqtt_url=url, devices=[_identity(broker, FLEET[0])]) as fleet:
        fleet.start()
        started = time.monotonic()
        with pytest.raises(PublisherError) as raised:
            fleet.wait_connected(WAIT_S)
        assert time.monotonic() - started < 1.0  # a refused port is not waited out
    message = str(raised.value)
    assert "\n" not in message
    assert url in message
    assert "Connection refused" in message
