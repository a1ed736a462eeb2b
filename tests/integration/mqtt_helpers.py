"""A small synchronous paho 2.x client for tests against the real broker."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

TIMEOUT_S = 5.0


@dataclass
class MqttTestClient:
    """A connected MQTT 5 client that records what it receives and how publishes end."""

    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    connect_reason: ReasonCode | None = None
    received: list[tuple[str, bytes]] = field(default_factory=list)
    got_message: threading.Event = field(default_factory=threading.Event)
    acks: dict[int, ReasonCode] = field(default_factory=dict)
    acked: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            if not self.acked.wait_for(lambda: info.mid in self.acks, timeout=TIMEOUT_S):
                raise TimeoutError(f"no PUBACK for {topic}")
            return self.acks[info.mid]

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1."""
        self.client.subscribe(topic, qos=1)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def open_session(
    url: str, username: str, password: str, client_id: str, filters: list[str]
) -> None:
    """Create a persistent session subscribed to `filters`, so the broker queues for it."""
    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect(
        parts.hostname or "127.0.0.1", parts.port or 1883, clean_start=True, properties=properties
    )
    client.loop_start()
    try:
        client.subscribe([(topic_filter, 1) for topic_filter in filters])
        if not subscribed.wait(TIMEOUT_S):
            raise TimeoutError("no SUBACK")
    finally:
        client.disconnect()
        client.loop_stop()


def connect(
    url: str, username: str | None, password: str | None, client_id: str | None = None
) -> MqttTestClient:
    """Connect and wait for CONNACK; `connect_reason` tells whether the broker accepted."""
    parts = urlsplit(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"test-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5,
    )
    wrapper = MqttTestClient(client=client)
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: ReasonCode, p: Any) -> None:
        wrapper.connect_reason = reason
        wrapper.connected.set()

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        wrapper.received.append((message.topic, bytes(message.payload)))
        wrapper.got_message.set()

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: ReasonCode, p: Any) -> None:
        with wrapper.acked:
            wrapper.acks[mid] = reason
            wrapper.acked.notify_all()

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_publish = on_publish
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    if not wrapper.connected.wait(TIMEOUT_S):
        client.loop_stop()
        raise TimeoutError("no CONNACK")
    return wrapper
