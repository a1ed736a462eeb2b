"""The words of an alert's life (SPEC §4): its workflow status, its condition, its events.

An alert has two independent axes. Its *condition* is what the detectors say: `active` while
the fault holds, `cleared` once it stopped holding. Its *status* is the crew's workflow:
open → acknowledged → on_site → resolved, or false_alarm from any unresolved status. Every
change of either is an *alert event* of one kind, recorded in `alert_events` and anchored in
the ledger. The database's CHECK constraints allow exactly these values (a test ties them).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class AlertStatus(StrEnum):
    """Where the crew's work on an alert stands (`alerts.status`)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"


# At most one alert per (elevator, type) may be in one of these (a partial unique index).
UNRESOLVED_STATUSES: Final[tuple[AlertStatus, ...]] = (
    AlertStatus.OPEN,
    AlertStatus.ACKNOWLEDGED,
    AlertStatus.ON_SITE,
)
# The same, as an SQL list: `status IN (…)` matches the partial index's predicate.
UNRESOLVED_SQL: Final = ", ".join(f"'{status}'" for status in UNRESOLVED_STATUSES)


class AlertCondition(StrEnum):
    """Whether the fault still holds, as the detectors judge it (`alerts.condition`)."""

    ACTIVE = "active"
    CLEARED = "cleared"


class AlertEventKind(StrEnum):
    """What one alert event records (`alert_events.kind`, the `event` of a notice)."""

    OPENED = "opened"
    UPDATED = "updated"  # raised again at a higher severity
    REACTIVATED = "reactivated"  # raised again after its condition had cleared
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"
    ESCALATED = "escalated"
