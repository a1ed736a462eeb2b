"""The simulator's MQTT side: one device identity per elevator, a whole fleet on one thread.

Each elevator publishes through its own `MqttDevice` (`simulators/mqtt_device.py`, the only
simulator module that imports paho), so the broker sees exactly what real devices would send
(SPEC §3, §8). The clients run no threads of their own: `FleetPublisher.pump()` drives all of
them from one `selectors` (epoll) loop through paho's external-event-loop API — the devices'
`loop_read()`, `loop_write()` and `loop_misc()`, and the socket callbacks they pass on — which
is what lets one core keep thousands of devices publishing.

Connections are opened a batch at a time inside `pump()` (never all in one blocking call) and
re-opened after any loss with exponential back-off, spread per device
(`simulators/connect_schedule.py`) so that a broker restart does not bring every device back
in the same millisecond. A publish made while its device is offline waits in that device's
queue and goes out, in order, after the reconnect; what was sent but not acknowledged when the
connection broke is sent again, so the platform sees duplicates, never gaps.

Not thread-safe: create, pump, publish and close from one thread.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlsplit

from core.protocol import is_valid_id
from simulators.connect_schedule import ConnectSchedule, retry_delay_s
from simulators.mqtt_device import DeviceCallbacks, DeviceIdentity, MqttDevice, PublisherError

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

# Each connection attempt is a blocking TCP connect; a per-pump time budget keeps one
# unreachable broker from freezing the loop.
CONNECT_BUDGET_S: Final = 0.02
# Keep-alive bookkeeping (PINGREQ, a CONNACK or PINGRESP that never comes) for every client.
MISC_PERIOD_S: Final = 1.0
CLOSE_TIMEOUT_S: Final = 2.0

PublishKind = Literal["telemetry", "event"]


@dataclass(slots=True)
class PublisherStats:
    """Counters since the publisher was created; QoS 0 messages are not counted (no PUBACK)."""

    published: int  # publish() / publish_raw() calls accepted
    acknowledged: int  # PUBACKs received with a success reason code
    refused: int  # PUBACKs with a failure reason code (e.g. 0x87 Not authorized)
    connected: int  # clients currently connected
    reconnects: int  # successful connections after a device had lost its previous one


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
        self._selector = selectors.DefaultSelector()
        callbacks = DeviceCallbacks(
            socket_opened=self._on_socket_open,
            socket_closed=self._on_socket_close,
            write_wanted=self._on_socket_register_write,
            write_done=self._on_socket_unregister_write,
            connected=self._on_connect,
            refused=self._on_refused,
            disconnected=self._on_disconnect,
            answered=self._on_answered,
        )
        self._devices: dict[str, MqttDevice] = {}
        for index, identity in enumerate(devices):
            if not (is_valid_id(identity.site) and is_valid_id(identity.elevator)):
                raise ValueError(f"invalid site or elevator id in {identity!r}")
            if identity.elevator in self._devices:
                raise ValueError(f"elevator {identity.elevator!r} is listed twice")
            self._devices[identity.elevator] = MqttDevice(
                identity,
                index=index,
                host=self._host,
                port=self._port,
                keepalive_s=keepalive_s,
                callbacks=callbacks,
            )
        self._schedule: ConnectSchedule[MqttDevice] = ConnectSchedule()
        self._want_write: set[MqttDevice] = set()
        # Devices whose socket waits for EPOLLOUT because its buffer was full.
        self._write_watched: set[MqttDevice] = set()
        self._newly_connected: list[MqttDevice] = []
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
            device.connect_async()
            self._schedule.schedule(device, now)

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
        if self._schedule and self._schedule.earliest_s() <= now:
            self._connect_due(now)
        self._write_pending()
        for key, mask in self._selector.select(self._select_timeout_s(timeout_s)):
            device: MqttDevice = key.data
            if mask & selectors.EVENT_READ:
                device.loop_read()
            if mask & selectors.EVENT_WRITE and device.socket() is not None:
                device.loop_write()
        if self._newly_connected and not self._closing:
            self._send_backlogs()
        self._write_pending()
        now = time.monotonic()
        if now >= self._next_misc_s:
            self._next_misc_s = now + MISC_PERIOD_S
            for device in self._devices.values():
                if device.socket() is not None:
                    device.loop_misc()

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
            self._schedule.schedule(device, time.monotonic() + down_s)

    def reconnect(self, elevator: str) -> None:
        """End a simulated outage now: connect `elevator` at the next pump.

        For a device dropped with `down_s=math.inf`; does nothing while it is connected or
        connecting, and brings a device that is waiting out a back-off forward.
        """
        device = self._devices[elevator]
        if not self._started or self._closing:
            return
        if device.connected or device.socket() is not None:
            return
        device.failed_attempts = 0
        self._schedule.schedule(device, time.monotonic())

    def close(self) -> None:
        """Disconnect every device cleanly (DISCONNECT, so no Last Will) and release sockets.

        Messages not yet acknowledged are abandoned: call `flush()` first to keep them.
        """
        if self._closing:
            return
        self._closing = True
        self._schedule.clear()
        for device in self._devices.values():
            if device.socket() is not None:
                device.disconnect()
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while self._open_sockets > 0 and time.monotonic() < deadline:
            self.pump(0.05)
        for device in self._devices.values():
            self._abort_connection(device)
        self._closed = True
        self._selector.close()

    # -- publishing ---------------------------------------------------------------------------

    def _publish(
        self, device: MqttDevice, topic: str, payload: bytes, qos: int, retain: bool
    ) -> None:
        if self._closing:
            raise RuntimeError("the publisher is closed")
        limit = self._max_payload_bytes
        if limit is not None and len(payload) + len(topic) > limit:
            # The broker would disconnect the device for it, and paho would resend it forever.
            raise ValueError(
                f"a {len(payload)}-byte payload exceeds the broker's maximum packet size"
            )
        device.publish(topic, payload, qos, retain)
        if qos > 0:
            self._published += 1

    def _send_backlogs(self) -> None:
        """Send what devices queued while offline, after paho resent its unacknowledged ones."""
        devices, self._newly_connected = self._newly_connected, []
        for device in devices:
            device.send_backlog()

    def _outstanding(self) -> int:
        return self._published - self._acknowledged - self._refused

    # -- connecting ---------------------------------------------------------------------------

    def _connect_due(self, now: float) -> None:
        budget_end = now + CONNECT_BUDGET_S
        while (device := self._schedule.pop_due(now)) is not None:
            if self._closing:
                continue
            try:
                device.reconnect()
            except OSError as exc:
                self._network_error = _describe_os_error(exc)
                device.failed_attempts += 1
                self._schedule_retry(device)
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

    def _abort_connection(self, device: MqttDevice) -> None:
        """Close the device's socket without DISCONNECT, as a crash would; paho sees no event."""
        if device.abort():
            self._connected -= 1

    def _schedule_retry(self, device: MqttDevice) -> None:
        delay_s = retry_delay_s(device.failed_attempts, device.index)
        self._schedule.schedule(device, time.monotonic() + delay_s)

    # -- event loop ---------------------------------------------------------------------------

    def _select_timeout_s(self, timeout_s: float) -> float:
        if self._schedule:
            timeout_s = min(timeout_s, self._schedule.earliest_s() - time.monotonic())
        return max(0.0, timeout_s)

    def _write_pending(self) -> None:
        """Write what paho queued; sockets whose buffer is full wait for EPOLLOUT instead."""
        if not self._want_write:
            return
        for device in list(self._want_write):
            if device in self._write_watched:
                continue
            device.loop_write()
            if device in self._want_write and device not in self._write_watched:
                sock = device.socket()
                if sock is None:
                    self._want_write.discard(device)
                    continue
                events = selectors.EVENT_READ | selectors.EVENT_WRITE
                self._selector.modify(sock, events, device)
                self._write_watched.add(device)

    # -- device callbacks ---------------------------------------------------------------------

    def _on_socket_open(self, device: MqttDevice, sock: FileDescriptorLike) -> None:
        self._selector.register(sock, selectors.EVENT_READ, device)
        self._open_sockets += 1

    def _on_socket_close(self, device: MqttDevice, sock: FileDescriptorLike) -> None:
        self._want_write.discard(device)
        self._write_watched.discard(device)
        if self._closed:
            return
        try:
            self._selector.unregister(sock)
        except KeyError:
            return
        self._open_sockets -= 1

    def _on_socket_register_write(self, device: MqttDevice) -> None:
        # Writes are batched into the next pump instead of one send() inside publish().
        self._want_write.add(device)

    def _on_socket_unregister_write(self, device: MqttDevice, sock: FileDescriptorLike) -> None:
        self._want_write.discard(device)
        if device in self._write_watched:
            self._write_watched.discard(device)
            if not self._closed:
                self._selector.modify(sock, selectors.EVENT_READ, device)

    def _on_refused(self, device: MqttDevice, reason: str) -> None:
        self._refusals[device.identity.elevator] = reason

    def _on_connect(self, device: MqttDevice, max_payload_bytes: int | None) -> None:
        self._refusals.pop(device.identity.elevator, None)
        self._network_error = None
        self._ever_connected = True
        if max_payload_bytes is not None:
            self._max_payload_bytes = max_payload_bytes
        self._connected += 1
        if device.connections > 1:
            self._reconnects += 1
        self._newly_connected.append(device)

    def _on_disconnect(self, device: MqttDevice, was_connected: bool) -> None:
        if was_connected:
            self._connected -= 1
        if self._closing:
            return
        if not was_connected:
            device.failed_attempts += 1
        self._schedule_retry(device)

    def _on_answered(self, device: MqttDevice, refused: bool) -> None:
        if refused:
            self._refused += 1
        else:
            self._acknowledged += 1
