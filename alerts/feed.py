"""The alert event feed: every alert event in ledger order, as notices for the channels.

A notice is the alert event's ledger entry without its salt, plus its `seq`. Reading notices
from the ledger (not from the mutable `alerts` row) means every channel sends what was
recorded at the time of the event, and `seq` is a gap-free cursor in commit order
(`ledger.entries`): the MQTT topic, the webhooks and the API's Server-Sent Events stream
(`Last-Event-ID`) all resume from it. `wait_for_entries` sleeps on the database's
`NOTIFY liftledger_ledger` so a new event is picked up within milliseconds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from core.faults import SEVERITY_RANK, Severity

log = logging.getLogger(__name__)

LEDGER_CHANNEL: Final = "liftledger_ledger"
_NOTICE_KEYS: Final = ("site", "elevator", "event", "type", "severity")
_READ_NOTICES: Final = (
    "SELECT seq, canonical FROM ledger_entries WHERE kind = 'alert_event' AND seq > %s "
    "ORDER BY seq LIMIT %s"
)


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """One alert event as the channels send it."""

    seq: int
    body: Mapping[str, Any]

    @property
    def site(self) -> str:
        """The site of the elevator."""
        return str(self.body["site"])

    @property
    def elevator(self) -> str:
        """The elevator."""
        return str(self.body["elevator"])

    @property
    def event(self) -> str:
        """What happened: opened, cleared, acknowledged, escalated, …"""
        return str(self.body["event"])

    @property
    def severity(self) -> Severity:
        """The alert's severity at the time of the event."""
        return Severity(self.body["severity"])

    def payload(self) -> bytes:
        """The JSON sent on every channel (compact, keys sorted)."""
        return json.dumps(
            {"seq": self.seq, **self.body}, separators=(",", ":"), sort_keys=True
        ).encode()


@dataclass(frozen=True, slots=True)
class NoticeFilter:
    """Which notices a subscriber wants; None means any."""

    sites: Collection[str] | None = None
    types: Collection[str] | None = None
    events: Collection[str] | None = None
    min_severity: Severity = Severity.INFO

    def matches(self, notice: AlertNotice) -> bool:
        """True when `notice` passes every criterion."""
        body = notice.body
        return (
            (self.sites is None or body["site"] in self.sites)
            and (self.types is None or body["type"] in self.types)
            and (self.events is None or body["event"] in self.events)
            and SEVERITY_RANK[notice.severity] >= SEVERITY_RANK[self.min_severity]
        )


def notice_of(seq: int, canonical: bytes) -> AlertNotice:
    """The notice of a stored alert-event entry; `ValueError` when it cannot be one."""
    body = json.loads(canonical)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), str) for key in _NOTICE_KEYS
    ):
        raise ValueError(f"entry {seq} is not an alert event")
    if body["severity"] not in set(Severity):
        raise ValueError(f"entry {seq} has an unknown severity")
    body.pop("salt", None)
    return AlertNotice(seq, body)


def read_notices(
    conn: psycopg.Connection[Any], *, after_seq: int, limit: int = 1000
) -> list[AlertNotice]:
    """Alert notices with `seq` greater than `after_seq`, oldest first. An entry that is
    not a readable alert event (the audit names it) is logged and left out, so that it
    cannot stop a channel."""
    with conn.cursor() as cur:
        rows = cur.execute(_READ_NOTICES, (after_seq, limit)).fetchall()
    notices = []
    for seq, canonical in rows:
        try:
            notices.append(notice_of(int(seq), bytes(canonical)))
        except ValueError as exc:
            log.error("alert feed: %s; left out", exc)
    return notices


def latest_seq(conn: psycopg.Connection[Any]) -> int:
    """The newest ledger seq, or -1 for an empty ledger."""
    row = conn.execute("SELECT coalesce(max(seq), -1) FROM ledger_entries").fetchone()
    return int(row[0]) if row else -1


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribe an autocommit connection to new-entry notifications."""
    conn.execute(f"LISTEN {LEDGER_CHANNEL}")


def wait_for_entries(conn: psycopg.Connection[Any], timeout_s: float) -> bool:
    """Block until a new ledger entry is committed or `timeout_s` passes; True if one was."""
    woke = False
    for _ in conn.notifies(timeout=timeout_s, stop_after=1):
        woke = True
    if woke:  # drain notifications that arrived together
        for _ in conn.notifies(timeout=0):
            pass
    return woke


def filter_notices(notices: Sequence[AlertNotice], wanted: NoticeFilter) -> list[AlertNotice]:
    """The notices that `wanted` selects."""
    return [notice for notice in notices if wanted.matches(notice)]
