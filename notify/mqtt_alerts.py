"""Publishing alert notices on `lift/v1/{site}/{elevator}/alert` (SPEC §3), QoS 1.

The notifier's only paho module. It publishes as the `svc.platform` account, which the
broker's ACL lets write alert topics and nothing else, and reports success only once the
broker has acknowledged every message (PUBACK), so the notifier's cursor never runs ahead
of what the broker holds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.protocol import TOPIC_PREFIX
from core.stored_json import report_unreadable
from notify.feed import AlertNotice

PUBACK_TIMEOUT_S: Final = 10.0


def alert_topic(notice: AlertNotice) -> str:
    """The alert topic of the notice's elevator."""
    return f"{TOPIC_PREFIX}/{notice.site}/{notice.elevator}/alert"


class AlertPublisher:
    """A QoS 1 publisher with paho's network loop on its own thread."""

    def __init__(self, *, mqtt_url: str, username: str, password: str, client_id: str) -> None:
        parts = urlsplit(mqtt_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 1883
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = lambda client, userdata, flags, reason, props: (
            self._connected.set() if not reason.is_failure else None
        )
        self._client.on_disconnect = lambda *args: self._connected.clear()
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)

    def start(self) -> None:
        """Connect in the background; reconnects by itself after a loss."""
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(
        self, notices: Sequence[AlertNotice], *, timeout_s: float = PUBACK_TIMEOUT_S
    ) -> bool:
        """Publish `notices` in order; True once the broker acknowledged all of them."""
        if not notices:
            return True
        if not self._connected.wait(timeout_s):
            return False
        infos = []
        for notice in notices:
            try:  # paho refuses a topic with wildcards or a payload over 256 MB
                infos.append(self._client.publish(alert_topic(notice), notice.payload(), qos=1))
            except Exception as exc:  # one notice that cannot be sent must not hold the rest
                report_unreadable("mqtt", notice.seq, exc)
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError):  # connection lost while waiting
                return False
            if not info.is_published():
                return False
        return True
