"""The alert vocabulary equals what the schema of record allows (the database itself is
checked in tests/integration/test_alert_vocabulary.py)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from core.alerting import UNRESOLVED_STATUSES, AlertCondition, AlertEventKind, AlertStatus
from core.models import UNRESOLVED_ALERT_STATUSES, Base


def _quoted(sql: object) -> set[str]:
    return set(re.findall(r"'([^']*)'", str(sql)))


def _check(table: sa.Table, name: str) -> set[str]:
    [constraint] = [
        c
        for c in table.constraints
        if isinstance(c, sa.CheckConstraint) and str(c.name).endswith(name)
    ]
    return _quoted(constraint.sqltext)


def test_the_enums_list_exactly_the_values_the_models_check_constraints_allow() -> None:
    alerts, events = Base.metadata.tables["alerts"], Base.metadata.tables["alert_events"]
    assert _check(alerts, "status") == set(AlertStatus)
    assert _check(alerts, "condition") == set(AlertCondition)
    assert _check(events, "kind") == set(AlertEventKind)


def test_unresolved_statuses_are_those_of_the_one_unresolved_alert_index() -> None:
    alerts = Base.metadata.tables["alerts"]
    [index] = [i for i in alerts.indexes if i.name and "one_unresolved" in i.name]
    assert _quoted(index.dialect_options["postgresql"]["where"]) == set(UNRESOLVED_STATUSES)
    assert tuple(UNRESOLVED_ALERT_STATUSES) == UNRESOLVED_STATUSES


def test_the_enum_members_are_the_stored_strings() -> None:
    assert AlertStatus("on_site") is AlertStatus.ON_SITE
    assert f"{AlertEventKind.FALSE_ALARM}" == "false_alarm"
    assert "on_site" in UNRESOLVED_STATUSES
