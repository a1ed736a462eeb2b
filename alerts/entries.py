"""Alert events as ledger entries (SPEC §5: every alert event is anchored): the content an
event's entry holds, the content its rows say it should hold, the alert state its entries
fold into, what a channel may send of one and the summary people see.

An entry carries the alert as the event's step left it (`alerts.store`: UPDATE … RETURNING),
so the audit can re-derive every alert's row from its entries alone (`AlertStates`) and
name each column that differs. `ALERT_EVENTS` is this source as the ledger takes it
(`ledger.sources.LedgerSource`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import psycopg
from psycopg.rows import dict_row

from core.alerting import AlertCondition, AlertEventKind, AlertStatus
from core.faults import Severity
from core.protocol import ID_PATTERN
from core.stored_json import bounded, decode_object
from ledger.entries import ENTRY_TIME_SQL_FORMAT, PendingEntry, entry_time
from ledger.report import Problem
from ledger.sources import AnchorContract, EntrySummary, SignatureCheck, StoredEntry

if TYPE_CHECKING:
    from alerts.store import AlertEventRecord

KIND: Final = "alert_event"
SOURCE_TABLE: Final = "alert_events"
MAX_ID: Final = 2**63 - 1  # bigint
# Content no row keeps: the alert's severity at the time of the event (its row holds only
# the latest); the alert state checks it instead.
_NOT_REBUILT: Final = frozenset({"severity"})
# What each key must look like before a channel uses it: ids become MQTT topic levels, the
# event becomes an HTTP header, so nothing outside these patterns gets through.
_NOTICE_KEYS: Final = {
    "site": re.compile(rf"{ID_PATTERN}"),
    "elevator": re.compile(rf"{ID_PATTERN}"),
    "event": re.compile(r"[a-z_]{1,64}"),
    "type": re.compile(r"[a-z_]{1,64}"),
    "severity": re.compile(r"[a-z]{1,16}"),
}


def _content(
    *,
    event_id: int,
    alert_id: int,
    event: str,
    time: str | None,
    elevator: str | None,
    site: str | None,
    alert_type: str | None,
    severity: str | None,
    actor_user_id: int | None,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "alert_event_id": event_id,
        "alert_id": alert_id,
        "event": event,
        "time": time,
        "elevator": elevator,
        "site": site,
        "type": alert_type,
        "severity": severity,
        "actor_user_id": actor_user_id,
        "details": dict(details),
    }


def alert_event_entry(event: AlertEventRecord) -> PendingEntry:
    """The ledger entry of an alert event."""
    return PendingEntry(
        kind=KIND,
        source_table=SOURCE_TABLE,
        source_id=event.event_id,
        elevator_id=event.elevator_id,
        content=_content(
            event_id=event.event_id, alert_id=event.alert_id, event=event.kind,
            time=entry_time(event.time), elevator=event.elevator_id, site=event.site_id,
            alert_type=event.type, severity=event.severity,
            actor_user_id=event.actor_user_id, details=event.details,
        ),
    )  # fmt: skip


# The event with its alert; a time Python cannot hold (infinity, year 10000) comes as NULL
# and then differs from the entry, instead of failing the whole read.
_EVENTS: Final = """
SELECT ae.id, ae.alert_id, ae.kind, ae.actor_user_id, ae.details::text AS details,
       CASE WHEN ae.time BETWEEN '0001-01-02' AND '9999-12-30' THEN ae.time END AS time,
       a.elevator_id, a.site_id, a.type
FROM alert_events ae LEFT JOIN alerts a ON a.id = ae.alert_id
WHERE ae.id = ANY(%s)
"""


def alert_event_notice(body: dict[str, Any]) -> dict[str, Any]:
    """`body` as channels send it, without its salt, once every key a channel uses is what
    it must be; otherwise `ValueError`, whose message completes "entry N …"."""
    for key, pattern in _NOTICE_KEYS.items():
        value = body.get(key)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"is not an alert event: bad or missing {key}")
    if body["severity"] not in set(Severity):
        raise ValueError("has an unknown severity")
    event_id = body.get("alert_event_id")
    if event_id is not None and (
        type(event_id) is not int or not 0 < event_id <= MAX_ID  # bool is not an id
    ):
        raise ValueError("is not an alert event: bad alert_event_id")
    body.pop("salt", None)
    return body


# -- the alert state, re-derived from the ledgered events (SPEC §4) ----------------------------

_TIME_COLUMNS: Final = (
    "opened_at", "cleared_at", "acknowledged_at", "on_site_at", "closed_at",
    "ack_escalated_at", "on_site_escalated_at", "ack_due_at", "on_site_due_at",
)  # fmt: skip
# Times as the entries write them (`entry_time`); a time Python cannot hold (infinity) comes
# as NULL and then differs from the entries.
_ALERT_TIMES: Final = ", ".join(
    f"to_char({column} AT TIME ZONE 'UTC', '{ENTRY_TIME_SQL_FORMAT}') AS {column}"
    for column in _TIME_COLUMNS
)
_ALERTS: Final = (
    "SELECT id, elevator_id, site_id, type, severity, condition, status, occurrences, "  # noqa: S608 - constant columns
    f"acknowledged_by, on_site_by, closed_by, {_ALERT_TIMES} FROM alerts ORDER BY id"
)
# Every column the reports and the API read, except `last_active_at` (a repeat moves it
# without an event, by design) and `details` (the first raise's details, shown as is).
_ALERT_COMPARED: Final = (
    "elevator_id", "site_id", "type", "severity", "condition", "status", "occurrences",
    "opened_at", "cleared_at", "acknowledged_at", "acknowledged_by", "on_site_at",
    "on_site_by", "closed_at", "closed_by", "ack_escalated_at", "on_site_escalated_at",
)  # fmt: skip
# The columns each workflow step sets: when, and by whom.
STEP_COLUMNS: Final[Mapping[AlertStatus, tuple[str, str]]] = {
    AlertStatus.ACKNOWLEDGED: ("acknowledged_at", "acknowledged_by"),
    AlertStatus.ON_SITE: ("on_site_at", "on_site_by"),
    AlertStatus.RESOLVED: ("closed_at", "closed_by"),
    AlertStatus.FALSE_ALARM: ("closed_at", "closed_by"),
}
_ESCALATION_COLUMNS: Final = {
    "acknowledge": ("ack_escalated_at", "ack_due_at"),
    "on_site": ("on_site_escalated_at", "on_site_due_at"),
}
ALERT_VALUES_SHOWN: Final = 2


class AlertStates:
    """Each alert's state as its ledgered events say it is, built one entry at a time in
    seq order (the same rules as `alerts.store`)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, Any]] = {}

    def apply(self, seq: int, body: Mapping[str, Any]) -> None:
        """Fold one alert event entry into its alert's state."""
        alert_id, event, at = body.get("alert_id"), body.get("event"), body.get("time")
        if type(alert_id) is not int:
            return
        state = self.states.get(alert_id)
        if state is None:
            state = self.states[alert_id] = {
                "opened": False, "condition": AlertCondition.ACTIVE,
                "status": AlertStatus.OPEN, "occurrences": 1,
                "opened_at": None, "cleared_at": None, "acknowledged_at": None,
                "acknowledged_by": None, "on_site_at": None, "on_site_by": None,
                "closed_at": None, "closed_by": None, "ack_escalated_at": None,
                "on_site_escalated_at": None,
            }  # fmt: skip
        state["seq"] = seq
        # Every event carries the alert as its step left it (store: UPDATE … RETURNING).
        state["elevator_id"], state["site_id"] = body.get("elevator"), body.get("site")
        state["type"], state["severity"] = body.get("type"), body.get("severity")
        details = body.get("details")
        details = details if isinstance(details, dict) else {}
        if event == AlertEventKind.OPENED:
            state.update(
                opened=True, opened_at=at, condition=AlertCondition.ACTIVE, cleared_at=None
            )
        elif event in (AlertEventKind.UPDATED, AlertEventKind.REACTIVATED):
            state.update(condition=AlertCondition.ACTIVE, cleared_at=None)
            if event == AlertEventKind.REACTIVATED:
                state["occurrences"] += 1
        elif event == AlertEventKind.CLEARED:
            state.update(condition=AlertCondition.CLEARED, cleared_at=at)
        elif isinstance(event, str) and event in STEP_COLUMNS:
            at_column, by_column = STEP_COLUMNS[AlertStatus(event)]
            state.update({"status": event, at_column: at, by_column: body.get("actor_user_id")})
        elif event == AlertEventKind.ESCALATED and details.get("stage") in _ESCALATION_COLUMNS:
            flag, due = _ESCALATION_COLUMNS[details["stage"]]
            state[flag] = at
            state.setdefault(due, details.get("due_at"))
        for due in ("ack_due_at", "on_site_due_at"):
            if due in details and due not in state:  # deadlines are set once (coalesce)
                state[due] = details[due]

    def problem(self, row: Mapping[str, Any]) -> Problem | None:
        """How the stored alert row differs from its entries, or None."""
        alert_id = int(row["id"])
        state = self.states.pop(alert_id, None)
        if state is None:
            return Problem(
                None, "orphan", f"alert {alert_id} has no ledgered event: it was never recorded",
                alert_id=alert_id, source_table="alerts", source_id=alert_id,
            )  # fmt: skip
        differ = [name for name in _ALERT_COMPARED if row[name] != state[name]]
        for due in ("ack_due_at", "on_site_due_at"):
            if due in state:
                if row[due] != state[due]:
                    differ.append(due)
            elif state["severity"] != "critical" and row[due] is not None:
                differ.append(due)  # only a critical alert has deadlines
        if not state["opened"]:
            differ.insert(0, "opened (no `opened` entry)")
        if not differ:
            return None
        # Every column is named; values are shown for the first few, so that a report on an
        # alert rewritten wholesale stays readable (and bounded).
        shown = [
            f"{name} {bounded(repr(row.get(name)), 40)} in its row, "
            f"{bounded(repr(state.get(name)), 40)} in its entries"
            for name in differ[:ALERT_VALUES_SHOWN]
        ]
        if len(differ) > ALERT_VALUES_SHOWN:
            shown.append("also " + ", ".join(differ[ALERT_VALUES_SHOWN:]))
        text = bounded(f"alert {alert_id} differs from its entries: {'; '.join(shown)}", 380)
        return Problem(int(state["seq"]), "alert_state", text, alert_id=alert_id)

    def left_over(self) -> list[Problem]:
        """Alerts with entries but no row."""
        return [
            Problem(int(state["seq"]), "alert_state", f"alert {alert_id} no longer exists",
                    alert_id=alert_id)
            for alert_id, state in sorted(self.states.items())
        ]  # fmt: skip

    def problems(self, conn: psycopg.Connection[Any]) -> list[Problem]:
        """Every alert row that differs from its entries, and every alert that has entries
        but no row."""
        return _alert_problems(conn, self)


def _alert_problems(conn: psycopg.Connection[Any], states: AlertStates) -> list[Problem]:
    problems: list[Problem] = []
    with conn.cursor(name="ledger_audit_alerts", row_factory=dict_row) as cur:
        cur.itersize = 5000
        cur.execute(_ALERTS)
        for row in cur:
            problem = states.problem(row)
            if problem is not None:
                problems.append(problem)
    return problems + states.left_over()


class AlertEventSource:
    """Alert events as a source of ledger entries (`ledger.sources.LedgerSource`)."""

    kind: Final = KIND
    source_table: Final = SOURCE_TABLE
    record_name: Final = "alert event"
    rows_sql: Final = _EVENTS

    def expected_content(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """The content the entry of the event in `row` should hold, but what no row keeps."""
        content = _content(
            event_id=row["id"], alert_id=row["alert_id"], event=row["kind"],
            time=entry_time(row["time"]) if row["time"] is not None else None,
            elevator=row["elevator_id"], site=row["site_id"], alert_type=row["type"],
            severity=None, actor_user_id=row["actor_user_id"],
            details=decode_object(row["details"]),
        )  # fmt: skip
        return {name: value for name, value in content.items() if name not in _NOT_REBUILT}

    def check_signature(
        self, entry: StoredEntry, row: Mapping[str, Any], contract: AnchorContract | None
    ) -> SignatureCheck:
        """Alert events are the platform's own records: never signed."""
        return SignatureCheck()

    def record_time_s(self, body: Mapping[str, Any]) -> float | None:
        """When the platform received what caused the event (`time`, Unix seconds)."""
        at = body.get("time")
        if not isinstance(at, str):
            return None
        try:
            return dt.datetime.fromisoformat(at).timestamp()
        except (ValueError, OverflowError):
            return None

    def fold(self) -> AlertStates:
        """A fresh alert state for one audit."""
        return AlertStates()

    def summary(self, body: Mapping[str, Any]) -> EntrySummary:
        """`alert 7 trapped_between_floors: acknowledged by user 3`, at the event's time."""
        when = body.get("time")
        actor = body.get("actor_user_id")
        who = f" by user {actor}" if actor is not None else ""
        text = f"alert {body.get('alert_id')} {body.get('type')}: {body.get('event')}"
        moment = dt.datetime.fromisoformat(when) if isinstance(when, str) else None
        return EntrySummary(moment, text + who)


ALERT_EVENTS: Final = AlertEventSource()
