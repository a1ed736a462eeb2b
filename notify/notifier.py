"""The notifier: delivers every alert event and runs the timers that need no telemetry.

One loop, woken by `NOTIFY liftledger_ledger` (or every `poll_s`):

1. publish new alert notices on the MQTT alert topics, then advance the `mqtt` cursor;
2. enqueue webhook deliveries for new notices and advance the `webhooks` cursor (one
   transaction, so nothing is skipped or enqueued twice);
3. every `escalation_interval_s`, escalate critical alerts past their deadlines;
4. every `maintenance_interval_s`, sweep for overdue maintenance.

Webhook HTTP calls run on a second thread with its own connection, so a slow endpoint never
delays the MQTT channel; each POST runs outside any transaction (`notify.webhooks`), and the
thread checks for stop between deliveries, so `run` returns within about one request timeout
of `stop`, with its thread ended. Cursors are ledger seqs, committed only after the channel has the
notices, so a crash re-sends at most the last batch (at-least-once; receivers deduplicate by
`alert_event_id`). The loop survives the database and the broker being away.

Stored entries are read as possibly hostile: an entry that is not a readable alert event is
logged with its seq and skipped by every channel, and the cursors move past it
(`notify.feed.NoticeBatch.last_seq`), so one poisoned entry never stops delivery of the
entries after it. An escalation that cannot be written for one alert leaves the others.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import psycopg

from alerts.maintenance import sweep_maintenance_overdue
from alerts.store import escalate_due, record_in_ledger
from ledger.follow import latest_seq, listen, wait_for_entries
from notify.feed import AlertNotice, read_notices
from notify.webhooks import active_subscriptions, deliver_due, enqueue

log = logging.getLogger(__name__)

# A POST in flight ends within its request timeout; this bounds the wait for the sender.
STOP_TIMEOUT_S: Final = 30.0


class NoticePublisher(Protocol):
    """What the notifier needs from the MQTT side (`notify.mqtt_alerts.AlertPublisher`)."""

    def publish(self, notices: list[AlertNotice]) -> bool:
        """Publish in order; True once the broker acknowledged all."""


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    """Timers and batch sizes."""

    poll_s: float = 1.0
    escalation_interval_s: float = 1.0
    maintenance_interval_s: float = 60.0
    webhook_interval_s: float = 0.5
    batch: int = 500
    retry_s: float = 2.0
    # Cursor names; a new cursor starts at the beginning of the ledger unless told otherwise.
    mqtt_cursor: str = "mqtt"
    webhook_cursor: str = "webhooks"
    new_cursor_at_latest: bool = False


def read_cursor(conn: psycopg.Connection[Any], channel: str, *, at_latest: bool) -> int:
    """A channel's position, created on first use."""
    start = latest_seq(conn) if at_latest else -1
    conn.execute(
        "INSERT INTO notification_cursors (channel, seq) VALUES (%s, %s) "
        "ON CONFLICT (channel) DO NOTHING",
        (channel, start),
    )
    row = conn.execute(
        "SELECT seq FROM notification_cursors WHERE channel = %s FOR UPDATE", (channel,)
    ).fetchone()
    return int(row[0]) if row else start


def write_cursor(conn: psycopg.Connection[Any], channel: str, seq: int) -> None:
    """Move a channel's position forward."""
    conn.execute(
        "UPDATE notification_cursors SET seq = %s, updated_at = now() WHERE channel = %s",
        (seq, channel),
    )


class Notifier:
    """The notifier loop over one database and one publisher."""

    def __init__(
        self,
        *,
        conninfo: str,
        publisher: NoticePublisher | None,
        config: NotifierConfig,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._conninfo = conninfo
        self._publisher = publisher
        self._config = config
        self._clock = clock

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; database outages are waited out."""
        webhooks = threading.Thread(
            target=self._run_webhooks, args=(stop,), name="webhooks", daemon=True
        )
        webhooks.start()
        try:
            self._run_until(stop)
        finally:
            stop.set()  # an error escaping the loop ends the webhook sender too
            webhooks.join(STOP_TIMEOUT_S)
            if webhooks.is_alive():
                log.error("the webhook sender did not stop within %.0f s", STOP_TIMEOUT_S)

    def _run_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._run_connected(stop)
            except psycopg.OperationalError as exc:
                log.warning("notifier lost the database (%s); retrying", exc)
                stop.wait(self._config.retry_s)
            except Exception:  # a bug must not stop alerts for everyone: log, wait, go on
                log.exception("notifier round failed; retrying")
                stop.wait(self._config.retry_s)

    def _run_connected(self, stop: threading.Event) -> None:
        config = self._config
        with (
            psycopg.connect(self._conninfo, autocommit=True) as waker,
            psycopg.connect(self._conninfo) as conn,
        ):
            listen(waker)
            next_escalation = next_sweep = 0.0
            while not stop.is_set():
                self.deliver_new(conn)
                now_s = time.monotonic()
                if now_s >= next_escalation:
                    self.escalate(conn)
                    next_escalation = now_s + config.escalation_interval_s
                if now_s >= next_sweep:
                    self.sweep_maintenance(conn)
                    next_sweep = now_s + config.maintenance_interval_s
                wait_for_entries(waker, min(config.poll_s, config.escalation_interval_s))

    def deliver_new(self, conn: psycopg.Connection[Any]) -> None:
        """Send new notices to MQTT and enqueue them for webhooks."""
        config = self._config
        # A cursor moves to the last entry read, past the ones the feed left out as
        # unreadable, and only once the channel has every readable one.
        if self._publisher is not None:
            with conn.transaction():
                cursor = read_cursor(
                    conn, config.mqtt_cursor, at_latest=config.new_cursor_at_latest
                )
                batch = read_notices(conn, after_seq=cursor, limit=config.batch, reader="mqtt")
                if batch.last_seq > cursor and self._publisher.publish(batch):
                    write_cursor(conn, config.mqtt_cursor, batch.last_seq)
        with conn.transaction():
            cursor = read_cursor(conn, config.webhook_cursor, at_latest=config.new_cursor_at_latest)
            batch = read_notices(conn, after_seq=cursor, limit=config.batch, reader="webhooks")
            if batch.last_seq > cursor:
                enqueue(conn, batch, active_subscriptions(conn))
                write_cursor(conn, config.webhook_cursor, batch.last_seq)

    def escalate(self, conn: psycopg.Connection[Any]) -> int:
        """Escalate what is due now; returns the escalation events written."""
        with conn.transaction():
            events = escalate_due(conn, self._clock())
            record_in_ledger(conn, events)
        return len(events)

    def sweep_maintenance(self, conn: psycopg.Connection[Any]) -> int:
        """Raise or clear maintenance_overdue; returns the events written."""
        with conn.transaction():
            return len(sweep_maintenance_overdue(conn, self._clock()))

    def _run_webhooks(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    while not stop.is_set():
                        if deliver_due(conn, stop=stop) == 0:
                            stop.wait(self._config.webhook_interval_s)
            except psycopg.OperationalError as exc:
                log.warning("webhook sender lost the database (%s); retrying", exc)
                stop.wait(self._config.retry_s)
            except Exception:  # keep sending: a bug on one delivery must not end them all
                log.exception("webhook sender failed; retrying")
                stop.wait(self._config.retry_s)
