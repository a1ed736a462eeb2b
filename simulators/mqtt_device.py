"""One simulated elevator's MQTT 5 client: its identity, its session and its offline queue.

This is the only simulator module that imports paho. Every elevator gets its own client
(client id = elevator id, its own username and password), so the broker's password file and
ACL see exactly what real devices would send (SPEC §3, §8). A client runs no thread of its
own: whoever drives it (`simulators.publisher.FleetPublisher`) watches its socket and calls
`loop_read()`, `loop_write()` and `loop_misc()` — paho's external-event-loop API — and hears
back through the `DeviceCallbacks` it handed in.

On connect a device publishes its retained `{"state":"online"}`; its Last Will is the retained
`{"state":"offline"}`. A publish made while the device is offline waits in its queue and goes
out, in order, after the reconnect; a QoS 1 message sent but not acknowledged when the
connection broke is sent again by paho with the DUP flag (MQTT 5 §4.4), so the platform sees
duplicates, never gaps — payloads are opaque here and `(elevator, boot, seq)` lets the
collector drop the duplicates.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.errors import LiftLedgerError
from core.protocol import topic_for

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

# Paho's default of 20 messages in flight caps a device at 20 messages per round trip; the
# local broker allows 1,000 (`max_inflight_messages`), so 100 leaves the broker the headroom.
MAX_INFLIGHT_MESSAGES: Final = 100
# Each connection attempt is a blocking TCP connect inside paho's `reconnect()`; a short
# timeout keeps one unreachable broker from freezing the loop that drives the devices.
CONNECT_TIMEOUT_S: Final = 3.0
# Fixed header, remaining length, topic length, packet id and an empty property block.
_PUBLISH_OVERHEAD_BYTES: Final = 1 + 4 + 2 + 2 + 1
_OFFLINE_STATUS: Final = b'{"state":"offline"}'


class PublisherError(LiftLedgerError):
    """The fleet cannot reach the broker, or the broker refuses a device's credentials."""


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Where one elevator publishes and the MQTT account it publishes with."""

    site: str
    elevator: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeviceCallbacks:
    """What a device tells the loop that drives it, from inside its `loop_*()` and connects.

    `socket_opened`, `socket_closed`: watch or forget the socket. `write_wanted`: paho has
    queued bytes for the socket; `write_done`: it has none left. `connected`: the broker
    accepted the connection, with the largest payload it takes (None if it set no limit).
    `refused`: the broker refused the connection, for the reason given. `disconnected`: the
    connection ended or never came up (True if it had been up). `answered`: the broker
    answered one of the caller's QoS ≥ 1 publishes (True if it refused it).
    """

    socket_opened: Callable[[MqttDevice, SocketLike], None]
    socket_closed: Callable[[MqttDevice, SocketLike], None]
    write_wanted: Callable[[MqttDevice], None]
    write_done: Callable[[MqttDevice, SocketLike], None]
    connected: Callable[[MqttDevice, int | None], None]
    refused: Callable[[MqttDevice, str], None]
    disconnected: Callable[[MqttDevice, bool], None]
    answered: Callable[[MqttDevice, bool], None]


def _online_status() -> bytes:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"state": "online", "ts": now}, separators=(",", ":")).encode()


class MqttDevice:
    """One elevator's client and the mutable state of its connection.

    Not thread-safe: drive it from the thread that created it.
    """

    def __init__(
        self,
        identity: DeviceIdentity,
        *,
        index: int,
        host: str,
        port: int,
        keepalive_s: int,
        callbacks: DeviceCallbacks,
    ) -> None:
        """Prepare the client; nothing connects before `connect_async()` and `reconnect()`.

        `index` is the device's place in its fleet, which spreads its reconnects in time.
        """
        self.identity = identity
        self.index = index
        self.telemetry_topic = topic_for(identity.site, identity.elevator, "telemetry")
        self.event_topic = topic_for(identity.site, identity.elevator, "event")
        self.status_topic = topic_for(identity.site, identity.elevator, "status")
        self.connected = False
        self.connections = 0  # successful connections so far
        self.failed_attempts = 0  # connection attempts failed since the last success
        self._host = host
        self._port = port
        self._keepalive_s = keepalive_s
        self._callbacks = callbacks
        # Publishes made while offline, in order: (topic, payload, qos, retain).
        self._backlog: deque[tuple[str, bytes, int, bool]] = deque()
        # Message ids whose PUBACK is not the caller's business: the retained online status.
        self._status_mids: set[int] = set()
        # QoS 0 message ids not yet written; paho reports them when written, or never if lost.
        self._qos0_mids: set[int] = set()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=identity.elevator,
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(identity.username, identity.password)
        client.will_set(self.status_topic, _OFFLINE_STATUS, qos=1, retain=True)
        client.max_inflight_messages_set(MAX_INFLIGHT_MESSAGES)
        client.max_queued_messages_set(0)  # unlimited: never drop a QoS 1 message
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        self._client = client

    # -- the connection -----------------------------------------------------------------------

    def socket(self) -> SocketLike | None:
        """The client's socket while one is open."""
        return self._client.socket()

    def connect_async(self) -> None:
        """Make the next `reconnect()` connect to the broker; closes an open socket at once."""
        self._client.connect_async(self._host, self._port, self._keepalive_s)

    def reconnect(self) -> None:
        """Open a connection: a blocking TCP connect, then CONNECT; raises `OSError` on failure."""
        self._client.reconnect()

    def disconnect(self) -> None:
        """Send DISCONNECT, so the broker discards the Last Will; the socket closes after."""
        self._client.disconnect()

    def abort(self) -> bool:
        """Close the socket without DISCONNECT, as a crash would; True if it was connected.

        Paho sees no event: the connection callbacks are not called.
        """
        if self._client.socket() is not None:
            # connect_async() closes the current socket at once without sending DISCONNECT
            # (documented: "any established connection will be terminated immediately"),
            # and leaves the client in the state reconnect() expects next.
            self.connect_async()
        was_connected = self.connected
        self.connected = False
        self._qos0_mids.clear()
        return was_connected

    def loop_read(self) -> None:
        """Read what the socket holds and handle the packets (callbacks run from here)."""
        self._client.loop_read()

    def loop_write(self) -> None:
        """Write what paho has queued, as far as the socket takes it."""
        self._client.loop_write()

    def loop_misc(self) -> None:
        """Keep-alive bookkeeping: PINGREQ, and a CONNACK or PINGRESP that never comes."""
        self._client.loop_misc()

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Send now if connected and nothing is queued before it; otherwise queue it."""
        if self.connected and not self._backlog:
            self._send(topic, payload, qos, retain)
        else:
            self._backlog.append((topic, payload, qos, retain))

    def send_backlog(self) -> None:
        """Send what was queued while offline, in order, while the connection holds."""
        while self.connected and self._backlog:
            self._send(*self._backlog.popleft())

    def _send(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublisherError(
                f"elevator {self.identity.elevator!r} could not queue a message on {topic}: "
                f"{mqtt.error_string(info.rc)}"
            )
        if qos == 0:
            self._qos0_mids.add(info.mid)

    # -- paho callbacks -----------------------------------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, userdata: object, sock: SocketLike) -> None:
        self._callbacks.socket_opened(self, sock)

    def _on_socket_close(self, client: mqtt.Client, userdata: object, sock: SocketLike) -> None:
        self._callbacks.socket_closed(self, sock)

    def _on_socket_register_write(
        self, client: mqtt.Client, userdata: object, sock: SocketLike
    ) -> None:
        self._callbacks.write_wanted(self)

    def _on_socket_unregister_write(
        self, client: mqtt.Client, userdata: object, sock: SocketLike
    ) -> None:
        self._callbacks.write_done(self, sock)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._callbacks.refused(self, str(reason))
            return
        max_payload_bytes = None
        if properties is not None and hasattr(properties, "MaximumPacketSize"):
            max_payload_bytes = int(properties.MaximumPacketSize) - _PUBLISH_OVERHEAD_BYTES
        self.connected = True
        self.failed_attempts = 0
        self.connections += 1
        if not self._status_mids:
            info = client.publish(self.status_topic, _online_status(), qos=1, retain=True)
            self._status_mids.add(info.mid)
        # else the previous connection's online status was never acknowledged: paho sends it
        # again right after this callback, and a second one would only repeat it.
        self._callbacks.connected(self, max_payload_bytes)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self.connected
        self.connected = False
        self._qos0_mids.clear()
        self._callbacks.disconnected(self, was_connected)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        if self._status_mids and mid in self._status_mids:
            self._status_mids.discard(mid)
        elif self._qos0_mids and mid in self._qos0_mids:
            self._qos0_mids.discard(mid)
        else:
            self._callbacks.answered(self, reason.is_failure)
