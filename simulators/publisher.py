"""The simulator's MQTT side: one device identity per elevator, a whole fleet on one thread.

This is the only simulator module that imports paho. Every elevator gets its own MQTT 5
client (client id = elevator id, its own username and password), so the broker's password
file and ACL see exactly what real devices would send (SPEC §3, §8). The clients run no
threads of their own: `FleetPublisher.pump()` drives all of them from one `selectors` (epoll)
loop through paho's external-event-loop API — `socket()`, `loop_read()`, `loop_write()`,
`loop_misc()` and the `on_socket_open/close/register_write/unregister_write` callbacks — which
is what lets one core keep thousands of devices publishing.

Connections are opened a batch at a time inside `pump()` (never all in one blocking call) and
re-opened after any loss with exponential back-off, spread per device so that a broker
restart does not bring every device back in the same millisecond. A publish made while its
device is offline waits in that device's queue and goes out, in order, after the reconnect;
a QoS 1 message sent but not acknowledged when the connection broke is sent again by paho
with the DUP flag (MQTT 5 §4.4), so the platform sees duplicates, never gaps — payloads are
opaque here and `(elevator, boot, seq)` lets the collector drop the duplicates.

Not thread-safe: create, pump, publish and close from one thread.
"""

from __future__ import annotations

import heapq
import itertools
import json
import selectors
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.errors import LiftLedgerError
from core.protocol import is_valid_id, topic_for

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

# Paho's default of 20 messages in flight caps a device at 20 messages per round trip; the
# local broker allows 1,000 (`max_inflight_messages`), so 100 leaves the broker the headroom.
MAX_INFLIGHT_MESSAGES: Final = 100
# Each connection attempt is a blocking TCP connect inside paho's `reconnect()`; a short
# timeout and a per-pump time budget keep one unreachable broker from freezing the loop.
CONNECT_TIMEOUT_S: Final = 3.0
CONNECT_BUDGET_S: Final = 0.02
RECONNECT_MIN_DELAY_S: Final = 0.5
RECONNECT_MAX_DELAY_S: Final = 10.0
# Keep-alive bookkeeping (PINGREQ, a CONNACK or PINGRESP that never comes) for every client.
MISC_PERIOD_S: Final = 1.0
CLOSE_TIMEOUT_S: Final = 2.0
# Fixed header, remaining length, topic length, packet id and an empty property block.
_PUBLISH_OVERHEAD_BYTES: Final = 1 + 4 + 2 + 2 + 1
_GOLDEN_RATIO_FRACTION: Final = 0.6180339887498949
_OFFLINE_STATUS: Final = b'{"state":"offline"}'

PublishKind = Literal["telemetry", "event"]


class PublisherError(LiftLedgerError):
    """The fleet cannot reach the broker, or the broker refuses a device's credentials."""


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Where one elevator publishes and the MQTT account it publishes with."""

    site: str
    elevator: str
    username: str
    password: str = field(repr=False)


@dataclass(slots=True)
class PublisherStats:
    """Counters since the publisher was created; QoS 0 messages are not counted (no PUBACK)."""

    published: int  # publish() / publish_raw() calls accepted
    acknowledged: int  # PUBACKs received with a success reason code
    refused: int  # PUBACKs with a failure reason code (e.g. 0x87 Not authorized)
    connected: int  # clients currently connected
    reconnects: int  # successful connections after a device had lost its previous one


@dataclass(slots=True, eq=False)
class _Device:
    """The mutable connection state of one elevator's client."""

    identity: DeviceIdentity
    index: int
    client: mqtt.Client
    telemetry_topic: str
    event_topic: str
    status_topic: str
    connected: bool = False
    ever_connected: bool = False
    failed_attempts: int = 0
    schedule_generation: int = 0
    write_watched: bool = False
    # Publishes made while offline, in order: (topic, payload, qos, retain).
    backlog: deque[tuple[str, bytes, int, bool]] = field(default_factory=deque)
    # Message ids whose PUBACK is not the caller's business: the retained online status.
    status_mids: set[int] = field(default_factory=set)
    # QoS 0 message ids not yet written; paho reports them when written, or never if lost.
    qos0_mids: set[int] = field(default_factory=set)


def _online_status() -> bytes:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"state": "online", "ts": now}, separators=(",", ":")).encode()


def _describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class FleetPublisher:
    """Publishes for a whole simulated fleet, one MQTT identity per elevator, from one thread.

    Typical use: `start()`, `wait_connected()`, then `publish()` as the simulation produces
    samples and `pump()` whenever there is nothing to publish; `flush()` and `close()` at the
    end. `close()` sends a clean DISCONNECT, so the broker discards the Last Will and each
    elevator's retained status stays `online`; the platform notices the silence through the
    `offline` rule (no message for three expected intervals, SPEC §4). `drop()` is the
    crash: the broker then publishes the retained `{"state":"offline"}` will.
    """

    def __init__(
        self,
        *,
        mqtt_url: str,
        devices: Sequence[DeviceIdentity],
        keepalive_s: int = 60,
    ) -> None:
        """Prepare one client per device; nothing connects before `start()`."""
        parts = urlsplit(mqtt_url)
        if parts.scheme not in {"mqtt", "tcp"} or not parts.hostname:
            raise ValueError(f"the MQTT URL must look like mqtt://host:port, not {mqtt_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 1883
        # Named in errors; built from host and port only so no userinfo can leak into a message.
        netloc = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"mqtt://{netloc}:{self._port}"
        self._keepalive_s = keepalive_s
        self._selector = selectors.DefaultSelector()
        self._devices: dict[str, _Device] = {}
        for index, identity in enumerate(devices):
            if not (is_valid_id(identity.site) and is_valid_id(identity.elevator)):
                raise ValueError(f"invalid site or elevator id in {identity!r}")
            if identity.elevator in self._devices:
                raise ValueError(f"elevator {identity.elevator!r} is listed twice")
            self._devices[identity.elevator] = self._new_device(index, identity)
        self._schedule: list[tuple[float, int, _Device, int]] = []
        self._schedule_order = itertools.count()
        self._want_write: set[_Device] = set()
        self._newly_connected: list[_Device] = []
        self._open_sockets = 0
        self._next_misc_s = 0.0
        self._max_payload_bytes: int | None = None
        self._refusals: dict[str, str] = {}
        self._network_error: str | None = None
        self._ever_connected = False
        self._started = False
        self._closing = False
        self._closed = False
        self._published = 0
        self._acknowledged = 0
        self._refused = 0
        self._connected = 0
        self._reconnects = 0

    def _new_device(self, index: int, identity: DeviceIdentity) -> _Device:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=identity.elevator,
            protocol=mqtt.MQTTv5,
        )
        device = _Device(
            identity=identity,
            index=index,
            client=client,
            telemetry_topic=topic_for(identity.site, identity.elevator, "telemetry"),
            event_topic=topic_for(identity.site, identity.elevator, "event"),
            status_topic=topic_for(identity.site, identity.elevator, "status"),
        )
        client.user_data_set(device)
        client.username_pw_set(identity.username, identity.password)
        client.will_set(device.status_topic, _OFFLINE_STATUS, qos=1, retain=True)
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
        return device

    def __enter__(self) -> FleetPublisher:
        """Use as a context manager that closes the publisher on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the publisher."""
        self.close()

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting every device; the connections open during later `pump()` calls."""
        if self._closing:
            raise RuntimeError("the publisher is closed")
        if self._started:
            return
        self._started = True
        now = time.monotonic()
        for device in self._devices.values():
            device.client.connect_async(self._host, self._port, self._keepalive_s)
            self._schedule_connect(device, now)

    def wait_connected(self, timeout_s: float) -> int:
        """Pump until every device is connected or `timeout_s` passes; the number connected.

        Raises `PublisherError` (one line, naming the broker URL and the cause) as soon as the
        broker refuses a device's credentials; as soon as a connection attempt fails on the
        network (refused, unreachable, timed out) before any device was ever connected; and
        when no device is connected at the deadline. Later pumps keep retrying regardless, so
        a caller may fix the cause and wait again, and a broker restart in mid-run is waited
        out up to `timeout_s`.
        """
        if not self._started:
            raise RuntimeError("call start() before wait_connected()")
        deadline = time.monotonic() + timeout_s
        while True:
            self._raise_for_connect_failure()
            if self._connected == len(self._devices):
                return self._connected
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                break
            self.pump(min(remaining_s, 0.05))
        if self._connected == 0:
            cause = f"; last error: {self._network_error}" if self._network_error else ""
            raise PublisherError(
                f"no device connected to the MQTT broker at {self._url} within {timeout_s:g} s"
                f"{cause}"
            )
        return self._connected

    def publish(self, elevator: str, kind: PublishKind, payload: bytes) -> None:
        """Publish one telemetry sample or event of `elevator` (QoS 1, not retained).

        Accepted even while the device is offline: the message then waits for the reconnect.
        """
        device = self._devices[elevator]
        if kind == "telemetry":
            topic = device.telemetry_topic
        elif kind == "event":
            topic = device.event_topic
        else:
            raise ValueError(f"devices publish telemetry or event, not {kind!r}")
        self._publish(device, topic, payload, 1, False)

    def publish_raw(
        self,
        elevator: str,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
    ) -> None:
        """Publish anything on any topic with `elevator`'s identity (for deliberately bad input).

        The broker's ACL decides: a refused QoS 1 message is counted in `stats().refused`.
        """
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS must be 0, 1 or 2, not {qos}")
        self._publish(self._devices[elevator], topic, payload, qos, retain)

    def clear_status(self, elevator: str) -> None:
        """Delete `elevator`'s retained status (an empty retained message, MQTT 5 §3.3.1.3).

        For benchmarks and tests that invent devices: the broker would otherwise keep their
        `online` status for ever and hand it to every new subscriber.
        """
        device = self._devices[elevator]
        self._publish(device, device.status_topic, b"", 1, True)

    def pump(self, timeout_s: float = 0.0) -> None:
        """Service every client once: connects due, writes, reads, keep-alive, reconnects.

        Waits at most `timeout_s` for the network when there is nothing to do right away.
        """
        if self._closed:
            return
        now = time.monotonic()
        if self._schedule and self._schedule[0][0] <= now:
            self._connect_due(now)
        self._write_pending()
        for key, mask in self._selector.select(self._select_timeout_s(timeout_s)):
            device: _Device = key.data
            if mask & selectors.EVENT_READ:
                device.client.loop_read()
            if mask & selectors.EVENT_WRITE and device.client.socket() is not None:
                device.client.loop_write()
        if self._newly_connected and not self._closing:
            self._send_backlogs()
        self._write_pending()
        now = time.monotonic()
        if now >= self._next_misc_s:
            self._next_misc_s = now + MISC_PERIOD_S
            for device in self._devices.values():
                if device.client.socket() is not None:
                    device.client.loop_misc()

    def flush(self, timeout_s: float) -> bool:
        """Pump until the broker has answered every QoS ≥ 1 publish; True if it did in time.

        Answered means acknowledged or refused; `stats()` tells the two apart.
        """
        deadline = time.monotonic() + timeout_s
        while self._outstanding() > 0:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return False
            self.pump(min(remaining_s, 0.05))
        return True

    def stats(self) -> PublisherStats:
        """A snapshot of the counters."""
        return PublisherStats(
            published=self._published,
            acknowledged=self._acknowledged,
            refused=self._refused,
            connected=self._connected,
            reconnects=self._reconnects,
        )

    def drop(self, elevator: str, *, down_s: float = 0.0) -> None:
        """Simulate a crash of `elevator`: close its socket without DISCONNECT.

        The broker then publishes the device's Last Will, the retained `{"state":"offline"}`
        (MQTT 5 §3.1.2.5). The device stays offline for `down_s` seconds — publishes meanwhile
        are queued — and then reconnects like after any lost connection; with
        `down_s=math.inf` it stays offline until `reconnect()`.
        """
        device = self._devices[elevator]
        self._abort_connection(device)
        device.failed_attempts = 0
        if self._started and not self._closing:
            self._schedule_connect(device, time.monotonic() + down_s)

    def reconnect(self, elevator: str) -> None:
        """End a simulated outage now: connect `elevator` at the next pump.

        For a device dropped with `down_s=math.inf`; does nothing while it is connected or
        connecting, and brings a device that is waiting out a back-off forward.
        """
        device = self._devices[elevator]
        if not self._started or self._closing:
            return
        if device.connected or device.client.socket() is not None:
            return
        device.failed_attempts = 0
        self._schedule_connect(device, time.monotonic())

    def close(self) -> None:
        """Disconnect every device cleanly (DISCONNECT, so no Last Will) and release sockets.

        Messages not yet acknowledged are abandoned: call `flush()` first to keep them.
        """
        if self._closing:
            return
        self._closing = True
        self._schedule.clear()
        for device in self._devices.values():
            if device.client.socket() is not None:
                device.client.disconnect()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while self._open_sockets > 0 and time.monotonic() < deadline:
            self.pump(0.05)
        for device in self._devices.values():
            self._abort_connection(device)
        self._closed = True
        self._selector.close()

    # -- publishing ---------------------------------------------------------------------------

    def _publish(self, device: _Device, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self._closing:
            raise RuntimeError("the publisher is closed")
        limit = self._max_payload_bytes
        if limit is not None and len(payload) + len(topic) > limit:
            # The broker would disconnect the device for it, and paho would resend it forever.
            raise ValueError(
                f"a {len(payload)}-byte payload exceeds the broker's maximum packet size"
            )
        if device.connected and not device.backlog:
            self._send(device, topic, payload, qos, retain)
        else:
            device.backlog.append((topic, payload, qos, retain))
        if qos > 0:
            self._published += 1

    def _send(self, device: _Device, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        info = device.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublisherError(
                f"elevator {device.identity.elevator!r} could not queue a message on {topic}: "
                f"{mqtt.error_string(info.rc)}"
            )
        if qos == 0:
            device.qos0_mids.add(info.mid)

    def _send_backlogs(self) -> None:
        """Send what devices queued while offline, after paho resent its unacknowledged ones."""
        devices, self._newly_connected = self._newly_connected, []
        for device in devices:
            while device.connected and device.backlog:
                self._send(device, *device.backlog.popleft())

    def _outstanding(self) -> int:
        return self._published - self._acknowledged - self._refused

    # -- connecting ---------------------------------------------------------------------------

    def _schedule_connect(self, device: _Device, due_s: float) -> None:
        # A newer schedule entry makes older ones for the same device stale.
        device.schedule_generation += 1
        entry = (due_s, next(self._schedule_order), device, device.schedule_generation)
        heapq.heappush(self._schedule, entry)

    def _retry_delay_s(self, device: _Device) -> float:
        doublings = min(device.failed_attempts, 16)  # bounded: 2.0 ** 1024 overflows
        base_s = min(RECONNECT_MAX_DELAY_S, RECONNECT_MIN_DELAY_S * 2.0**doublings)
        # Golden-ratio spread: devices retry at distinct fractions of the delay, not together.
        spread = (device.index * _GOLDEN_RATIO_FRACTION) % 1.0
        return base_s * (0.5 + 0.5 * spread)

    def _connect_due(self, now: float) -> None:
        budget_end = now + CONNECT_BUDGET_S
        while self._schedule and self._schedule[0][0] <= now:
            _, _, device, generation = heapq.heappop(self._schedule)
            if generation != device.schedule_generation or self._closing:
                continue
            try:
                device.client.reconnect()
            except OSError as exc:
                self._network_error = _describe_os_error(exc)
                device.failed_attempts += 1
                self._schedule_connect(device, time.monotonic() + self._retry_delay_s(device))
            if time.monotonic() >= budget_end:
                break

    def _raise_for_connect_failure(self) -> None:
        if self._refusals:
            elevator, reason = next(iter(self._refusals.items()))
            others = len(self._refusals) - 1
            more = f" and {others} other device(s)" if others else ""
            raise PublisherError(
                f"the MQTT broker at {self._url} refused elevator {elevator!r}{more} ({reason}): "
                "check the device credentials and the broker's password file and ACL"
            )
        if not self._ever_connected and self._network_error is not None:
            raise PublisherError(
                f"the MQTT broker at {self._url} does not answer ({self._network_error}): "
                "start it with `liftledger stack up` or fix LIFTLEDGER_MQTT_URL"
            )

    def _abort_connection(self, device: _Device) -> None:
        """Close the device's socket without DISCONNECT, as a crash would; paho sees no event."""
        if device.client.socket() is not None:
            # connect_async() closes the current socket at once without sending DISCONNECT
            # (documented: "any established connection will be terminated immediately"),
            # and leaves the client in the state reconnect() expects next.
            device.client.connect_async(self._host, self._port, self._keepalive_s)
        if device.connected:
            device.connected = False
            self._connected -= 1
        device.qos0_mids.clear()

    # -- event loop ---------------------------------------------------------------------------

    def _select_timeout_s(self, timeout_s: float) -> float:
        if self._schedule:
            timeout_s = min(timeout_s, self._schedule[0][0] - time.monotonic())
        return max(0.0, timeout_s)

    def _write_pending(self) -> None:
        """Write what paho queued; sockets whose buffer is full wait for EPOLLOUT instead."""
        if not self._want_write:
            return
        for device in list(self._want_write):
            if device.write_watched:
                continue
            device.client.loop_write()
            if device in self._want_write and not device.write_watched:
                sock = device.client.socket()
                if sock is None:
                    self._want_write.discard(device)
                    continue
                events = selectors.EVENT_READ | selectors.EVENT_WRITE
                self._selector.modify(sock, events, device)
                device.write_watched = True

    # -- paho callbacks -----------------------------------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, device: _Device, sock: SocketLike) -> None:
        self._selector.register(sock, selectors.EVENT_READ, device)
        self._open_sockets += 1

    def _on_socket_close(self, client: mqtt.Client, device: _Device, sock: SocketLike) -> None:
        self._want_write.discard(device)
        device.write_watched = False
        if self._closed:
            return
        try:
            self._selector.unregister(sock)
        except KeyError:
            return
        self._open_sockets -= 1

    def _on_socket_register_write(
        self, client: mqtt.Client, device: _Device, sock: SocketLike
    ) -> None:
        # Writes are batched into the next pump instead of one send() inside publish().
        self._want_write.add(device)

    def _on_socket_unregister_write(
        self, client: mqtt.Client, device: _Device, sock: SocketLike
    ) -> None:
        self._want_write.discard(device)
        if device.write_watched:
            device.write_watched = False
            if not self._closed:
                self._selector.modify(sock, selectors.EVENT_READ, device)

    def _on_connect(
        self,
        client: mqtt.Client,
        device: _Device,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refusals[device.identity.elevator] = str(reason)
            return
        self._refusals.pop(device.identity.elevator, None)
        self._network_error = None
        self._ever_connected = True
        if properties is not None and hasattr(properties, "MaximumPacketSize"):
            limit = int(properties.MaximumPacketSize) - _PUBLISH_OVERHEAD_BYTES
            self._max_payload_bytes = limit
        device.connected = True
        device.failed_attempts = 0
        self._connected += 1
        if device.ever_connected:
            self._reconnects += 1
        device.ever_connected = True
        if not device.status_mids:
            info = client.publish(device.status_topic, _online_status(), qos=1, retain=True)
            device.status_mids.add(info.mid)
        # else the previous connection's online status was never acknowledged: paho sends it
        # again right after this callback, and a second one would only repeat it.
        self._newly_connected.append(device)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        device: _Device,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = device.connected
        if was_connected:
            device.connected = False
            self._connected -= 1
        device.qos0_mids.clear()
        if self._closing:
            return
        if not was_connected:
            device.failed_attempts += 1
        self._schedule_connect(device, time.monotonic() + self._retry_delay_s(device))

    def _on_publish(
        self,
        client: mqtt.Client,
        device: _Device,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        if device.status_mids and mid in device.status_mids:
            device.status_mids.discard(mid)
        elif device.qos0_mids and mid in device.qos0_mids:
            device.qos0_mids.discard(mid)
        elif reason.is_failure:
            self._refused += 1
        else:
            self._acknowledged += 1
