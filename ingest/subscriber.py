"""The collector's MQTT side: the only ingest module that imports paho.

One MQTT 5 client with a persistent session (`clean_start=False` and a session expiry, MQTT 5
§3.1.2.4) and QoS 1 subscriptions. Messages are acknowledged by hand (`manual_ack`): the
collector calls `ack()` only after the batch holding them is committed (SPEC §8). Packet ids
are only meaningful on the connection that delivered them, so every message carries the
connection generation it arrived on and acks for an older connection are never sent; the
broker redelivers those messages and the idempotent writer absorbs the copies.

paho's network thread only appends to a deque; everything else happens in the caller's thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86_400  # a collector may be down for a week without losing its queue
RECEIVE_MAXIMUM = 20_000  # unacknowledged messages the broker may push before it waits
KEEPALIVE_S = 30


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One PUBLISH as it arrived, before validation."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: dt.datetime
    generation: int


class CollectorSubscriber:
    """A persistent-session, manual-ack MQTT subscription."""

    def __init__(
        self,
        *,
        mqtt_url: str,
        username: str,
        password: str,
        client_id: str,
        topic_filters: Sequence[str],
        receive_maximum: int = RECEIVE_MAXIMUM,
        session_expiry_s: int = SESSION_EXPIRY_S,
        on_connection_change: Callable[[bool], None] | None = None,
    ) -> None:
        parts = urlsplit(mqtt_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 1883
        self._filters = list(topic_filters)
        self._on_connection_change = on_connection_change
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: deque[ReceivedMessage] = deque()
        self._generation = 0
        self._connected = False
        self.session_lost_count = 0
        self.last_refusal: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._connect_properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._connect_properties.SessionExpiryInterval = session_expiry_s
        self._connect_properties.ReceiveMaximum = receive_maximum

    # -- paho thread -------------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self.last_refusal = str(reason)
            log.error("broker refused the collector: %s", reason)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        if not flags.session_present:
            self.session_lost_count += 1
            if self._generation > 1:
                log.warning(
                    "broker reports no session present: messages queued while the collector "
                    "was away may be gone (session expired or broker lost its state)"
                )
        client.subscribe([(f, 1) for f in self._filters])
        if self._on_connection_change is not None:
            self._on_connection_change(True)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            self._connected = False
        log.warning("disconnected from the broker (%s); reconnecting", reason)
        if self._on_connection_change is not None:
            self._on_connection_change(False)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        received = ReceivedMessage(
            message.topic,
            bytes(message.payload),
            message.mid,
            message.qos,
            dt.datetime.now(dt.UTC),
            self._generation,
        )
        with self._lock:
            self._queue.append(received)
            if len(self._queue) == 1:
                self._arrived.notify()

    # -- caller's thread ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting after any loss."""
        self._client.connect_async(
            self._host,
            self._port,
            keepalive=KEEPALIVE_S,
            clean_start=False,
            properties=self._connect_properties,
        )
        self._client.loop_start()

    def take(self, max_count: int, timeout_s: float) -> list[ReceivedMessage]:
        """Up to `max_count` messages; waits up to `timeout_s` for the first one."""
        with self._arrived:
            if not self._queue and timeout_s > 0:
                self._arrived.wait(timeout_s)
            count = min(max_count, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def queued(self) -> int:
        """Messages received and not yet taken."""
        return len(self._queue)

    def ack(self, messages: Sequence[ReceivedMessage]) -> int:
        """PUBACK the QoS 1 messages of the current connection; returns how many were sent."""
        sent = 0
        with self._lock:
            if not self._connected:
                return 0
            generation = self._generation
            for message in messages:
                if message.qos == 1 and message.generation == generation:
                    self._client.ack(message.mid, message.qos)
                    sent += 1
        return sent

    def stop(self) -> None:
        """Disconnect cleanly; the session (and any unacknowledged message) stays on the broker."""
        self._client.disconnect()
        self._client.loop_stop()
