"""The alert enums equal what the migrated database allows (its CHECK constraints)."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from core.alerting import UNRESOLVED_STATUSES, AlertCondition, AlertEventKind, AlertStatus
from core.db import libpq_url


def _allowed(conn: psycopg.Connection[Any], constraint: str) -> set[str]:
    row = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", (constraint,)
    ).fetchone()
    assert row is not None, f"no constraint {constraint}"
    return set(re.findall(r"'([^']*)'", str(row[0])))


def test_the_alert_enums_equal_the_databases_check_constraints(test_database_url: str) -> None:
    with psycopg.connect(libpq_url(test_database_url)) as conn:
        assert _allowed(conn, "ck_alerts_status") == set(AlertStatus)
        assert _allowed(conn, "ck_alerts_condition") == set(AlertCondition)
        assert _allowed(conn, "ck_alert_events_kind") == set(AlertEventKind)
        row = conn.execute(
            "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'ux_alerts_one_unresolved_per_elevator_type'"
        ).fetchone()
    assert row is not None
    assert set(re.findall(r"'([^']*)'", str(row[0]))) == set(UNRESOLVED_STATUSES)
