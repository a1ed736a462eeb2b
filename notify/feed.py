"""The alert event feed: every alert event in ledger order, as notices for the channels.

A notice is the alert event's ledger entry without its salt, plus its `seq`. Reading notices
from the ledger (not from the mutable `alerts` row) means every channel sends what was
recorded at the time of the event, and `seq` is a gap-free cursor in commit order
(`ledger.entries`): the MQTT topic, the webhooks and the API's Server-Sent Events stream
(`Last-Event-ID`) all resume from it. `wait_for_entries` sleeps on the database's
`NOTIFY liftledger_ledger` so a new event is picked up within milliseconds.

Every stored entry is read as possibly hostile (`core.stored_json`): an entry that is not a
well-formed alert event is logged with its seq, counted and left out, and the batch still
says how far the ledger was read (`NoticeBatch.last_seq`), so a channel moves past it and
never stops on it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from alerts.entries import alert_event_notice
from core.faults import SEVERITY_RANK, Severity
from core.stored_json import decode_object, report_unreadable

log = logging.getLogger(__name__)

FEED_READER: Final = "alert_feed"
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


class NoticeBatch(list[AlertNotice]):
    """Notices read in one go, and how far the ledger was read to find them.

    `last_seq` is the seq of the last entry read, readable or not (`after_seq` when none
    was), so a reader's cursor moves past an unreadable entry; `complete` is true when the
    read reached the end of the ledger (fewer rows than asked for).
    """

    def __init__(self, notices: Iterable[AlertNotice], *, last_seq: int, complete: bool) -> None:
        super().__init__(notices)
        self.last_seq = last_seq
        self.complete = complete


def notice_of(seq: int, canonical: bytes) -> AlertNotice:
    """The notice of a stored alert-event entry (`alerts.entries.alert_event_notice`);
    `ValueError` when it cannot be one."""
    body = decode_object(canonical)
    try:
        return AlertNotice(seq, alert_event_notice(body))
    except ValueError as exc:
        raise ValueError(f"entry {seq} {exc}") from exc


def read_notices(
    conn: psycopg.Connection[Any],
    *,
    after_seq: int,
    limit: int = 1000,
    reader: str = FEED_READER,
) -> NoticeBatch:
    """Alert notices with `seq` greater than `after_seq`, oldest first. An entry that is
    not a readable alert event (the audit names it) is logged, counted under `reader` and
    left out, so that it cannot stop a channel."""
    with conn.cursor() as cur:
        rows = cur.execute(_READ_NOTICES, (after_seq, limit)).fetchall()
    notices = []
    for seq, canonical in rows:
        try:
            notices.append(notice_of(int(seq), bytes(canonical)))
        except Exception as exc:  # one stored entry, whatever is wrong with it
            report_unreadable(reader, int(seq), exc)
    last_seq = int(rows[-1][0]) if rows else after_seq
    return NoticeBatch(notices, last_seq=last_seq, complete=len(rows) < limit)


def filter_notices(notices: Sequence[AlertNotice], wanted: NoticeFilter) -> list[AlertNotice]:
    """The notices that `wanted` selects."""
    return [notice for notice in notices if wanted.matches(notice)]
