"""The report definitions, checked on hand-built frames with numbers worked out by hand."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reports.compute import (
    ALERT_COLUMNS,
    ELEVATOR_COLUMNS,
    RECORD_COLUMNS,
    availability_report,
    maintenance_report,
    sla_report,
)
from reports.report import Report

START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)  # a period of 86,400 s
AFTER_END = END + dt.timedelta(hours=6)
LONG_AGO = START - dt.timedelta(days=100)


def at(hours: float = 0.0, *, minutes: float = 0.0) -> dt.datetime:
    """A moment so many hours (and minutes) after the period starts."""
    return START + dt.timedelta(hours=hours, minutes=minutes)


def elevator(
    elevator_id: str = "e1",
    site_id: str = "s1",
    *,
    created_at: dt.datetime = LONG_AGO,
    site_thresholds: dict[str, float] | None = None,
    elevator_thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "elevator_id": elevator_id,
        "site_id": site_id,
        "building": f"building of {elevator_id}",
        "created_at": created_at,
        "site_thresholds": site_thresholds or {},
        "elevator_thresholds": elevator_thresholds or {},
    }


def alert(
    alert_id: int,
    opened_at: dt.datetime,
    closed_at: dt.datetime | None = None,
    *,
    elevator_id: str = "e1",
    site_id: str = "s1",
    kind: str = "overspeed",
    severity: str = "critical",
    status: str | None = None,
    acknowledged_at: dt.datetime | None = None,
    on_site_at: dt.datetime | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "elevator_id": elevator_id,
        "site_id": site_id,
        "type": kind,
        "severity": severity,
        "status": status or ("open" if closed_at is None else "resolved"),
        "opened_at": opened_at,
        "acknowledged_at": acknowledged_at,
        "on_site_at": on_site_at,
        "closed_at": closed_at,
    }


def record(
    record_id: int, performed_at: dt.datetime, kind: str = "routine", elevator_id: str = "e1"
) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "elevator_id": elevator_id,
        "kind": kind,
        "performed_at": performed_at,
    }


def elevators(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(ELEVATOR_COLUMNS))


def alerts(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(ALERT_COLUMNS))


def records(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(RECORD_COLUMNS))


def availability(
    fleet: pd.DataFrame, found: pd.DataFrame, *, now: dt.datetime = AFTER_END
) -> Report:
    return availability_report(fleet, found, start=START, end=END, now=now)


def sla(found: pd.DataFrame, *, now: dt.datetime = AFTER_END, **kwargs: Any) -> Report:
    return sla_report(elevators(elevator()), found, start=START, end=END, now=now, **kwargs)


def maintenance(fleet: pd.DataFrame, done: pd.DataFrame, *, now: dt.datetime) -> Report:
    return maintenance_report(fleet, done, start=START, end=END, now=now)


def rows(frame: pd.DataFrame, key: str) -> dict[Any, dict[Hashable, Any]]:
    """The frame's rows as dicts, by the value of `key`."""
    return {row[key]: row for row in frame.to_dict("records")}


def missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# -- availability ----------------------------------------------------------------------------


def test_overlapping_outages_count_once_as_downtime() -> None:
    report = availability(
        elevators(elevator()),
        alerts(alert(1, at(1), at(3)), alert(2, at(2), at(4), kind="door_open_failure")),
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["period_s"] == 86_400.0
    assert row["downtime_s"] == 3 * 3600.0
    assert row["availability"] == 0.875
    assert row["outages"] == 2
    assert row["failures"] == 2
    assert row["mttr_s"] == 7200.0
    assert row["mtbf_s"] == (86_400.0 - 10_800.0) / 2


def test_outages_of_different_elevators_are_not_merged() -> None:
    report = availability(
        elevators(elevator("e1"), elevator("e2")),
        alerts(alert(1, at(1), at(3), elevator_id="e1"), alert(2, at(2), at(4), elevator_id="e2")),
    )

    by_id = rows(report.table, "elevator_id")
    assert by_id["e1"]["downtime_s"] == 7200.0
    assert by_id["e2"]["downtime_s"] == 7200.0


def test_outage_is_clipped_to_the_period_but_its_repair_counts_in_full() -> None:
    report = availability(
        elevators(elevator()),
        alerts(
            alert(1, at(-2), at(1)),  # began before the period: downtime, not a failure
            alert(2, at(23), at(26)),  # began inside, resolved after: a failure of 3 h
            alert(3, at(-5), at(-4)),  # over before the period
        ),
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["downtime_s"] == 2 * 3600.0
    assert row["outages"] == 2
    assert row["failures"] == 1
    assert row["mttr_s"] == 3 * 3600.0
    assert row["mtbf_s"] == 86_400.0 - 7200.0


def test_unresolved_outage_runs_to_the_end_of_the_period() -> None:
    report = availability(elevators(elevator()), alerts(alert(1, at(20), status="on_site")))

    row = rows(report.table, "elevator_id")["e1"]
    assert row["downtime_s"] == 4 * 3600.0
    assert row["outages"] == 1
    assert row["failures"] == 0
    assert missing(row["mttr_s"])
    assert missing(row["mtbf_s"])


def test_period_not_yet_over_is_measured_until_now() -> None:
    report = availability(
        elevators(elevator()), alerts(alert(1, at(10), status="acknowledged")), now=at(12)
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["period_s"] == 12 * 3600.0
    assert row["downtime_s"] == 2 * 3600.0
    assert row["availability"] == round(1 - 2 / 12, 6)


def test_false_alarms_minor_alerts_and_resolved_status_alone_do_not_make_downtime() -> None:
    report = availability(
        elevators(elevator()),
        alerts(
            alert(1, at(1), at(2), status="false_alarm"),
            alert(2, at(3), at(4), kind="abnormal_vibration", severity="minor"),
            alert(3, at(5), at(6), kind="clock_skew", severity="info"),
        ),
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["downtime_s"] == 0.0
    assert row["availability"] == 1.0
    assert row["outages"] == 0


def test_offline_time_is_reported_apart_from_downtime() -> None:
    report = availability(
        elevators(elevator()),
        alerts(
            alert(1, at(1), at(3), kind="offline", severity="major"),
            alert(2, at(2), at(5), kind="offline", severity="major"),
            alert(3, at(2), at(3), kind="offline", severity="major", status="false_alarm"),
        ),
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["offline_s"] == 4 * 3600.0
    assert row["downtime_s"] == 0.0
    assert row["availability"] == 1.0
    assert row["outages"] == 0
    assert row["failures"] == 0


def test_every_active_elevator_appears_even_without_outages() -> None:
    report = availability(elevators(elevator("e1"), elevator("e2")), alerts())

    assert list(report.table["elevator_id"]) == ["e1", "e2"]
    assert list(report.table["availability"]) == [1.0, 1.0]
    assert list(report.table["failures"]) == [0, 0]


def test_period_of_an_elevator_starts_at_its_registration() -> None:
    report = availability(
        elevators(
            elevator("e1", created_at=at(12)),
            elevator("e2", created_at=at(30)),  # registered after the period: not in it
        ),
        alerts(alert(1, at(13), at(14), elevator_id="e1")),
    )

    assert list(report.table["elevator_id"]) == ["e1"]
    row = rows(report.table, "elevator_id")["e1"]
    assert row["period_s"] == 12 * 3600.0
    assert row["availability"] == round(1 - 1 / 12, 6)
    assert row["mtbf_s"] == 11 * 3600.0


def test_alerts_of_elevators_outside_the_fleet_are_ignored() -> None:
    report = availability(
        elevators(elevator("e1")), alerts(alert(1, at(1), at(2), elevator_id="gone"))
    )

    assert list(report.table["elevator_id"]) == ["e1"]
    assert report.summary["failures"] == 0


def test_site_availability_is_weighted_by_each_elevators_period() -> None:
    report = availability(
        elevators(
            elevator("e1", "s1"),
            elevator("e2", "s1", created_at=at(12)),
            elevator("e3", "s2"),
        ),
        alerts(
            alert(1, at(1), at(3), elevator_id="e1"),
            alert(2, at(13), at(14), elevator_id="e2"),
            alert(3, at(5), at(6), elevator_id="e1", kind="offline", severity="major"),
        ),
    )

    sites = rows(report.sections["sites"], "site_id")
    assert sites["s1"] == {
        "site_id": "s1",
        "elevators": 2,
        "period_s": 129_600.0,
        "availability": round(1 - 10_800 / 129_600, 6),
        "downtime_s": 10_800.0,
        "offline_s": 3600.0,
        "failures": 2,
        "mttr_s": 5400.0,
        "mtbf_s": (129_600.0 - 10_800.0) / 2,
    }
    assert sites["s2"]["availability"] == 1.0
    assert missing(sites["s2"]["mttr_s"])
    assert report.summary == {
        "elevators": 3,
        "period_s": 216_000.0,
        "availability": round(1 - 10_800 / 216_000, 6),
        "downtime_s": 10_800.0,
        "offline_s": 3600.0,
        "failures": 2,
        "mttr_s": 5400.0,
        "mtbf_s": (216_000.0 - 10_800.0) / 2,
    }


def test_availability_rows_are_sorted_by_site_then_elevator() -> None:
    report = availability(
        elevators(elevator("b", "s2"), elevator("c", "s1"), elevator("a", "s2")), alerts()
    )

    assert list(report.table["elevator_id"]) == ["c", "a", "b"]
    assert list(report.sections["sites"]["site_id"]) == ["s1", "s2"]


# -- rescue SLA ------------------------------------------------------------------------------


def test_rescue_times_are_measured_from_the_alarm() -> None:
    report = sla(
        alerts(
            alert(
                1,
                at(1),
                at(1, minutes=25),
                kind="trapped_between_floors",
                acknowledged_at=at(1, minutes=1),
                on_site_at=at(1, minutes=20),
            )
        )
    )

    row = rows(report.table, "alert_id")[1]
    assert (row["respond_s"], row["arrive_s"], row["finish_s"]) == (60.0, 1200.0, 1500.0)
    assert not row["breached"]
    assert row["breach"] is None


def test_late_arrival_is_a_breach_even_when_finished_soon_after() -> None:
    report = sla(
        alerts(
            alert(
                1, at(1), at(1, minutes=35), kind="trapped_at_floor", on_site_at=at(1, minutes=31)
            )
        )
    )

    row = rows(report.table, "alert_id")[1]
    assert row["breached"]
    assert row["breach"] == "arrived after 30 min"


def test_rescue_not_finished_within_the_limit_is_a_breach() -> None:
    report = sla(
        alerts(
            alert(1, at(1), at(1, minutes=40), kind="alarm_button", on_site_at=at(1, minutes=10))
        )
    )

    row = rows(report.table, "alert_id")[1]
    assert row["finish_s"] == 2400.0
    assert row["breach"] == "not finished within 30 min"


def test_rescue_finished_exactly_at_the_limit_is_not_a_breach() -> None:
    report = sla(
        alerts(
            alert(1, at(1), at(1, minutes=30), kind="alarm_button", on_site_at=at(1, minutes=30))
        )
    )

    assert not rows(report.table, "alert_id")[1]["breached"]


def test_unresolved_rescue_is_a_breach_once_the_limit_has_passed() -> None:
    report = sla(
        alerts(
            alert(
                1, at(10), kind="trapped_at_floor", status="on_site", on_site_at=at(10, minutes=5)
            ),
            alert(2, at(11, minutes=40), kind="alarm_button", status="open"),
        ),
        now=at(12),
    )

    by_id = rows(report.table, "alert_id")
    assert by_id[1]["breached"]
    assert by_id[1]["breach"] == "still open after 30 min"
    assert missing(by_id[1]["finish_s"])
    assert not by_id[2]["breached"]
    assert missing(by_id[2]["arrive_s"])


def test_only_rescue_types_opened_in_the_period_and_not_false_alarms_are_rescues() -> None:
    report = sla(
        alerts(
            alert(1, at(-1), at(1), kind="trapped_at_floor"),  # opened before the period
            alert(2, at(2), at(3), kind="alarm_button", status="false_alarm"),
            alert(3, at(4), at(5), kind="overspeed"),
            alert(4, at(6), at(6, minutes=10), kind="alarm_button"),
        )
    )

    assert list(report.table["alert_id"]) == [4]


def test_rescue_limit_is_a_parameter() -> None:
    report = sla(
        alerts(
            alert(1, at(1), at(1, minutes=12), kind="alarm_button", on_site_at=at(1, minutes=11))
        ),
        limit_s=600.0,
    )

    assert rows(report.table, "alert_id")[1]["breach"] == "arrived after 10 min"
    assert report.summary["limit_s"] == 600.0


def test_rescues_are_sorted_by_alarm_time_then_alert_id() -> None:
    report = sla(
        alerts(
            alert(3, at(2), at(2, minutes=5), kind="alarm_button"),
            alert(2, at(1), at(1, minutes=5), kind="alarm_button"),
            alert(1, at(2), at(2, minutes=5), kind="trapped_at_floor"),
        )
    )

    assert list(report.table["alert_id"]) == [2, 1, 3]


def test_site_rollup_gives_rescue_medians_and_90th_percentile() -> None:
    finishes_min = [10, 20, 30, 40]
    found = alerts(
        *(
            alert(
                number,
                at(number),
                at(number, minutes=minutes),
                kind="alarm_button",
                acknowledged_at=at(number, minutes=1),
                on_site_at=at(number, minutes=5),
            )
            for number, minutes in enumerate(finishes_min, start=1)
        )
    )
    report = sla_report(
        elevators(elevator("e1", "s1"), elevator("e2", "s2")),
        found,
        start=START,
        end=END,
        now=AFTER_END,
    )

    sites = rows(report.sections["sites"], "site_id")
    assert sites["s1"] == {
        "site_id": "s1",
        "rescues": 4,
        "breaches": 1,
        "respond_median_s": 60.0,
        "arrive_median_s": 300.0,
        "finish_median_s": 1500.0,
        # Linear between the 3rd and 4th of four: 1800 + 0.7 * 600.
        "finish_p90_s": 2220.0,
    }
    assert sites["s2"]["rescues"] == 0
    assert missing(sites["s2"]["finish_median_s"])
    assert report.summary == {
        "rescues": 4,
        "breaches": 1,
        "limit_s": 1800.0,
        "respond_median_s": 60.0,
        "arrive_median_s": 300.0,
        "finish_median_s": 1500.0,
        "finish_p90_s": 2220.0,
    }
    assert list(report.sections["breaches"]["alert_id"]) == [4]


# -- maintenance -----------------------------------------------------------------------------


def test_routine_maintenance_is_due_15_days_after_the_last_routine_record() -> None:
    report = maintenance(
        elevators(elevator()),
        records(record(1, at(-24 * 20)), record(2, at(-24 * 10)), record(3, at(-1), "repair")),
        now=at(0),
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["last_routine_at"] == at(-24 * 10)
    assert row["due_at"] == at(24 * 5)
    assert not row["overdue"]
    assert row["overdue_s"] == 0.0


def test_elevator_without_routine_record_is_due_from_its_registration() -> None:
    report = maintenance(
        elevators(elevator(created_at=at(-24 * 16))), records(record(1, at(2), "repair")), now=at(0)
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["last_routine_at"] is pd.NaT
    assert row["due_at"] == at(-24)
    assert row["overdue"]
    assert row["overdue_s"] == 86_400.0


def test_maintenance_due_exactly_now_is_overdue() -> None:
    report = maintenance(elevators(elevator()), records(record(1, at(-24 * 15))), now=at(0))

    row = rows(report.table, "elevator_id")["e1"]
    assert row["overdue"]
    assert row["overdue_s"] == 0.0


def test_site_and_elevator_thresholds_set_the_maintenance_interval() -> None:
    report = maintenance(
        elevators(
            elevator("e1", site_thresholds={"maintenance_interval_days": 10}),
            elevator(
                "e2",
                site_thresholds={"maintenance_interval_days": 10},
                elevator_thresholds={"maintenance_interval_days": 20},
            ),
        ),
        records(
            record(1, at(-24 * 12), elevator_id="e1"), record(2, at(-24 * 12), elevator_id="e2")
        ),
        now=at(0),
    )

    by_id = rows(report.table, "elevator_id")
    assert by_id["e1"]["due_at"] == at(-24 * 2)
    assert by_id["e1"]["overdue_s"] == 2 * 86_400.0
    assert by_id["e2"]["due_at"] == at(24 * 8)
    assert not by_id["e2"]["overdue"]


def test_records_in_period_count_every_kind_and_routine_apart() -> None:
    report = maintenance(
        elevators(elevator()),
        records(
            record(1, at(-1)),
            record(2, at(0)),
            record(3, at(5), "repair"),
            record(4, at(23), "inspection"),
            record(5, at(24)),  # the period is half-open
        ),
        now=AFTER_END,
    )

    row = rows(report.table, "elevator_id")["e1"]
    assert row["records_in_period"] == 3
    assert row["routine_in_period"] == 1
    assert row["last_routine_at"] == at(24)


def test_compliance_is_the_share_of_elevators_not_overdue() -> None:
    report = maintenance(
        elevators(
            elevator("e1", "s1"),
            elevator("e2", "s1"),
            elevator("e3", "s1"),
            elevator("e4", "s2"),
        ),
        records(record(1, at(-24), elevator_id="e2"), record(2, at(-24), elevator_id="e4")),
        now=at(0),
    )

    sites = rows(report.sections["sites"], "site_id")
    assert sites["s1"] == {"site_id": "s1", "elevators": 3, "overdue": 2, "compliance": 0.333333}
    assert sites["s2"] == {"site_id": "s2", "elevators": 1, "overdue": 0, "compliance": 1.0}
    assert report.summary == {"elevators": 4, "overdue": 2, "compliance": 0.5}


# -- every report ----------------------------------------------------------------------------


AVAILABILITY_COLUMNS = (
    "elevator_id,site_id,building,period_s,downtime_s,offline_s,availability,outages,failures,"
    "mttr_s,mtbf_s"
)
SLA_COLUMNS = (
    "alert_id,elevator_id,site_id,type,severity,status,opened_at,acknowledged_at,on_site_at,"
    "closed_at,respond_s,arrive_s,finish_s,breached,breach"
)
MAINTENANCE_COLUMNS = (
    "elevator_id,site_id,building,last_routine_at,due_at,overdue,overdue_s,records_in_period,"
    "routine_in_period"
)


@pytest.mark.parametrize(
    ("report", "columns"),
    [
        (availability(elevators(), alerts()), AVAILABILITY_COLUMNS),
        (sla_report(elevators(), alerts(), start=START, end=END, now=END), SLA_COLUMNS),
        (maintenance(elevators(), records(), now=END), MAINTENANCE_COLUMNS),
    ],
    ids=["availability", "sla", "maintenance"],
)
def test_no_data_gives_empty_tables_with_their_columns(report: Report, columns: str) -> None:
    assert report.table.empty
    assert ",".join(report.table.columns) == columns
    body = report.as_json()
    assert body["rows"] == []
    assert all(body[section] == [] for section in report.sections)
    assert report.to_csv() == ",".join(report.table.columns) + "\n"


@pytest.mark.parametrize(
    ("start", "end", "now"),
    [
        (END, START, END),
        (START, START, END),
        (START.replace(tzinfo=None), END, END),
        (START, END, END.replace(tzinfo=None)),
    ],
)
def test_naive_or_empty_period_is_refused(
    start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> None:
    with pytest.raises(ValueError, match=r"period|aware"):
        availability_report(elevators(), alerts(), start=start, end=end, now=now)


# -- JSON and CSV ----------------------------------------------------------------------------


def hand_built_report() -> Report:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    table = pd.DataFrame(
        {
            "elevator_id": ["e1", "e2"],
            "opened_at": pd.to_datetime(pd.Series([at(1), None]), utc=True),
            "wait_s": [np.float64(12.345), np.nan],
            "availability": [0.123456789, 1.0],
            "failures": np.array([3, 0], dtype="int64"),
            "breached": [True, False],
            "breach": ["late", None],
        }
    )
    return Report(
        name="availability",
        period_start=START.astimezone(shanghai),
        period_end=END,
        generated_at=END,
        table=table,
        summary={"elevators": np.int64(2), "mttr_s": 1234.56, "availability": None},
        sections={"sites": table.iloc[:1]},
    )


def test_json_is_ready_to_serialise_with_iso_times_and_none_for_missing() -> None:
    body = hand_built_report().as_json()

    assert body["report"] == "availability"
    assert body["period_start"] == "2025-03-01T00:00:00+00:00"
    assert body["generated_at"] == "2025-03-02T00:00:00+00:00"
    assert body["summary"] == {"elevators": 2, "mttr_s": 1234.6, "availability": None}
    assert body["rows"] == [
        {
            "elevator_id": "e1",
            "opened_at": "2025-03-01T01:00:00+00:00",
            "wait_s": 12.3,
            "availability": 0.123457,
            "failures": 3,
            "breached": True,
            "breach": "late",
        },
        {
            "elevator_id": "e2",
            "opened_at": None,
            "wait_s": None,
            "availability": 1.0,
            "failures": 0,
            "breached": False,
            "breach": None,
        },
    ]
    assert body["sites"] == body["rows"][:1]
    assert type(body["rows"][0]["failures"]) is int
    assert type(body["rows"][0]["breached"]) is bool
    assert type(body["summary"]["elevators"]) is int


def test_csv_has_a_header_iso_times_and_empty_cells_for_missing() -> None:
    assert hand_built_report().to_csv() == (
        "elevator_id,opened_at,wait_s,availability,failures,breached,breach\n"
        "e1,2025-03-01T01:00:00+00:00,12.3,0.123457,3,true,late\n"
        "e2,,,1.0,0,false,\n"
    )


@pytest.mark.parametrize(
    "text", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
)
def test_a_csv_text_cell_that_a_spreadsheet_would_run_as_a_formula_is_escaped(text: str) -> None:
    from reports.report import Report  # noqa: PLC0415

    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    table = pd.DataFrame({"building": [text, "Bldg 1"], "downtime_s": [-0.5, 12.0]})
    report = Report(name="x", period_start=at, period_end=at, generated_at=at, table=table)
    rows = list(csv.reader(io.StringIO(report.to_csv(), newline="")))
    assert rows[1][0] == "'" + text
    assert rows[2][0] == "Bldg 1"
    assert rows[1][1] == "-0.5"  # numbers stay numbers
