"""The three read-side reports (availability, rescue SLA, maintenance compliance) as pure pandas.

Every function here takes plain DataFrames and aware datetimes and returns a `Report`
(`reports.report`); nothing reads a database or a clock, so each definition is tested with
hand-built frames.

Input frames (extra columns are ignored; datetimes are aware, any time zone):

- elevators: `elevator_id`, `site_id`, `building`, `created_at`, `site_thresholds`,
  `elevator_thresholds` (threshold override mappings, or None), one row per active elevator;
- alerts: `alert_id`, `elevator_id`, `site_id`, `type`, `severity`, `status`, `opened_at`,
  `acknowledged_at`, `on_site_at`, `closed_at`;
- records: `record_id`, `elevator_id`, `kind`, `performed_at`; at least every record performed
  in the period and each elevator's latest routine record.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from alerts.maintenance import maintenance_due_at
from core.alerting import AlertStatus
from core.faults import resolve_thresholds
from reports.report import RATIO_DIGITS, Report

REPORT_NAMES: Final = ("availability", "sla", "maintenance")

ELEVATOR_COLUMNS: Final = (
    "elevator_id",
    "site_id",
    "building",
    "created_at",
    "site_thresholds",
    "elevator_thresholds",
)
ALERT_COLUMNS: Final = (
    "alert_id",
    "elevator_id",
    "site_id",
    "type",
    "severity",
    "status",
    "opened_at",
    "acknowledged_at",
    "on_site_at",
    "closed_at",
)
RECORD_COLUMNS: Final = ("record_id", "elevator_id", "kind", "performed_at")

OUTAGE_SEVERITIES: Final = frozenset({"critical", "major"})
# `offline` says the platform cannot see the car, not that the car is down.
MONITORING_GAP_TYPE: Final = "offline"
RESCUE_TYPES: Final = frozenset({"trapped_between_floors", "trapped_at_floor", "alarm_button"})
# Shanghai Elevator Safety Management Measures (2015): arrive and finish a rescue within 30 min.
RESCUE_LIMIT_S: Final = 1800.0

# The rows and the totals (whole fleet and per site) of the per-elevator reports.
_AVAILABILITY_COLUMNS: Final = (
    "elevator_id", "site_id", "building", "period_s", "downtime_s", "offline_s",
    "availability", "outages", "failures", "mttr_s", "mtbf_s",
)  # fmt: skip
_AVAILABILITY_TOTALS: Final = (
    "elevators", "period_s", "availability", "downtime_s", "offline_s", "failures", "mttr_s",
    "mtbf_s",
)  # fmt: skip
_MAINTENANCE_COLUMNS: Final = (
    "elevator_id", "site_id", "building", "last_routine_at", "due_at", "overdue", "overdue_s",
    "records_in_period", "routine_in_period",
)  # fmt: skip
_MAINTENANCE_TOTALS: Final = ("elevators", "overdue", "compliance")

_ALERT_TIMES: Final = ("opened_at", "acknowledged_at", "on_site_at", "closed_at")


def check_period(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> None:
    """Refuse naive datetimes and a period that does not start before it ends (ValueError)."""
    for name, moment in (("start", start), ("end", end), ("now", now)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
    if start >= end:
        raise ValueError(f"the period must start before it ends: {start} >= {end}")


def availability_report(
    elevators: pd.DataFrame,
    alerts: pd.DataFrame,
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> Report:
    """Downtime, availability, MTTR and MTBF of each active elevator over [start, end)."""
    check_period(start, end, now)
    measured_end = min(end, now)
    to_s = _seconds_between(start, measured_end)
    fleet = _elevator_frame(elevators)
    fleet = fleet[fleet["created_at"] < measured_end].set_index("elevator_id")
    fleet["from_s"] = _seconds_since(fleet["created_at"], start).clip(lower=0.0)
    fleet["period_s"] = to_s - fleet["from_s"]

    graded = _alert_frame(alerts)
    graded = graded[
        (graded["status"] != AlertStatus.FALSE_ALARM) & graded["severity"].isin(OUTAGE_SEVERITIES)
    ].merge(fleet["from_s"].reset_index(), on="elevator_id", how="inner")
    graded["opened_s"] = _seconds_since(graded["opened_at"], start)
    # An unresolved alert runs to the end of what has been measured, min(end, now).
    ran_to_s = _seconds_since(graded["closed_at"], start).fillna(to_s)
    graded["start_s"] = graded["opened_s"].clip(lower=graded["from_s"], upper=to_s)
    graded["end_s"] = ran_to_s.clip(lower=graded["from_s"], upper=to_s)
    graded["opened_within"] = (graded["opened_s"] >= graded["from_s"]) & (graded["opened_s"] < to_s)
    graded = graded[(graded["end_s"] > graded["start_s"]) | graded["opened_within"]]

    gap = graded["type"] == MONITORING_GAP_TYPE
    outages = graded[~gap]
    failures = outages[
        (outages["status"] == AlertStatus.RESOLVED)
        & outages["closed_at"].notna()
        & outages["opened_within"]
    ]
    repair_s = (failures["closed_at"] - failures["opened_at"]).dt.total_seconds()

    fleet["downtime_s"] = _union_s(outages).reindex(fleet.index, fill_value=0.0)
    fleet["offline_s"] = _union_s(graded[gap]).reindex(fleet.index, fill_value=0.0)
    fleet["outages"] = _count_by(outages["elevator_id"], fleet.index)
    fleet["failures"] = _count_by(failures["elevator_id"], fleet.index)
    fleet["repair_s"] = (
        repair_s.groupby(failures["elevator_id"]).sum().reindex(fleet.index, fill_value=0.0)
    )
    fleet["availability"] = (1.0 - fleet["downtime_s"] / fleet["period_s"]).round(RATIO_DIGITS)
    fleet["mttr_s"] = fleet["repair_s"] / fleet["failures"].where(fleet["failures"] > 0)
    fleet["mtbf_s"] = (fleet["period_s"] - fleet["downtime_s"]) / fleet["failures"].where(
        fleet["failures"] > 0
    )
    return _fleet_report("availability", fleet, _AVAILABILITY_COLUMNS, _availability_totals,
                         _AVAILABILITY_TOTALS, start=start, end=end, now=now)  # fmt: skip


def sla_report(
    elevators: pd.DataFrame,
    alerts: pd.DataFrame,
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    limit_s: float = RESCUE_LIMIT_S,
) -> Report:
    """Rescue times of every trapped-passenger alarm opened in [start, end), against the limit."""
    check_period(start, end, now)
    rescues = _alert_frame(alerts)
    opened = rescues["opened_at"]
    rescues = rescues[
        rescues["type"].isin(RESCUE_TYPES)
        & (rescues["status"] != AlertStatus.FALSE_ALARM)
        & (opened >= start)
        & (opened < end)
    ].sort_values(["opened_at", "alert_id"], ignore_index=True)

    rescues["respond_s"] = _elapsed_s(rescues["opened_at"], rescues["acknowledged_at"])
    rescues["arrive_s"] = _elapsed_s(rescues["opened_at"], rescues["on_site_at"])
    finished = rescues["status"] == AlertStatus.RESOLVED
    rescues["finish_s"] = _elapsed_s(rescues["opened_at"], rescues["closed_at"]).where(finished)
    open_s = (pd.Timestamp(now) - rescues["opened_at"]).dt.total_seconds()

    # The most telling reason first: a late arrival explains a late finish.
    limit_min = f"{limit_s / 60:g} min"
    late_arrival = rescues["arrive_s"] > limit_s
    late_finish = rescues["finish_s"] > limit_s
    still_open = ~finished & (open_s > limit_s)
    reasons = np.select(
        [late_arrival.to_numpy(), late_finish.to_numpy(), still_open.to_numpy()],
        [
            f"arrived after {limit_min}",
            f"not finished within {limit_min}",
            f"still open after {limit_min}",
        ],
        default="",
    )
    rescues["breached"] = late_arrival | late_finish | still_open
    rescues["breach"] = pd.Series(reasons, index=rescues.index, dtype=object).where(
        rescues["breached"], None
    )
    table = rescues[
        [
            *ALERT_COLUMNS,
            "respond_s",
            "arrive_s",
            "finish_s",
            "breached",
            "breach",
        ]
    ]

    sites = _by_site(
        table,
        _sla_totals,
        [
            "rescues",
            "breaches",
            "respond_median_s",
            "arrive_median_s",
            "finish_median_s",
            "finish_p90_s",
        ],
        site_ids=sorted(set(_elevator_frame(elevators)["site_id"]) | set(table["site_id"])),
    )
    return Report(
        name="sla",
        period_start=start,
        period_end=end,
        generated_at=now,
        table=table,
        summary=_sla_totals(table, limit_s=limit_s),
        sections={
            "breaches": table[table["breached"]].reset_index(drop=True),
            "sites": sites,
        },
    )


def maintenance_report(
    elevators: pd.DataFrame,
    records: pd.DataFrame,
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> Report:
    """Whether each active elevator's routine maintenance is overdue now (TSG T5002, 15 days)."""
    check_period(start, end, now)
    fleet = _elevator_frame(elevators).set_index("elevator_id")
    done = _frame(records, RECORD_COLUMNS)
    done["performed_at"] = _utc(done["performed_at"])
    in_period = done[(done["performed_at"] >= start) & (done["performed_at"] < end)]
    last_routine = done[done["kind"] == "routine"].groupby("elevator_id")["performed_at"].max()
    fleet["last_routine_at"] = _utc(last_routine.reindex(fleet.index))
    due: list[dt.datetime] = [
        maintenance_due_at(
            None if pd.isna(last) else last,
            registered_at=created,
            interval_days=resolve_thresholds(
                _overrides(site_overrides), _overrides(elevator_overrides)
            )["maintenance_interval_days"],
        )
        for last, created, site_overrides, elevator_overrides in zip(
            fleet["last_routine_at"],
            fleet["created_at"],
            fleet["site_thresholds"],
            fleet["elevator_thresholds"],
            strict=True,
        )
    ]
    fleet["due_at"] = _utc(pd.Series(due, index=fleet.index, dtype=object))
    fleet["overdue"] = fleet["due_at"] <= now
    fleet["overdue_s"] = (
        (pd.Timestamp(now) - fleet["due_at"]).dt.total_seconds().where(fleet["overdue"], 0.0)
    )
    fleet["records_in_period"] = _count_by(in_period["elevator_id"], fleet.index)
    routine_in_period = in_period[in_period["kind"] == "routine"]
    fleet["routine_in_period"] = _count_by(routine_in_period["elevator_id"], fleet.index)
    return _fleet_report("maintenance", fleet, _MAINTENANCE_COLUMNS, _maintenance_totals,
                         _MAINTENANCE_TOTALS, start=start, end=end, now=now)  # fmt: skip


# -- totals ----------------------------------------------------------------------------------


def _fleet_report(
    name: str,
    fleet: pd.DataFrame,
    columns: Sequence[str],
    totals: Callable[[pd.DataFrame], dict[str, Any]],
    total_columns: Sequence[str],
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
) -> Report:
    """A report of one row per elevator (`columns` of `fleet`, by site and id), summarised by
    `totals` (which name `total_columns`) for the whole fleet and for each site."""
    fleet = fleet.reset_index().sort_values(["site_id", "elevator_id"], ignore_index=True)
    return Report(
        name=name,
        period_start=start,
        period_end=end,
        generated_at=now,
        table=fleet[list(columns)],
        summary=totals(fleet),
        sections={"sites": _by_site(fleet, totals, total_columns)},
    )


def _by_site(
    rows: pd.DataFrame,
    totals: Callable[[pd.DataFrame], dict[str, Any]],
    columns: Sequence[str],
    site_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A report's `sites` section: for each site of `site_ids` (default: those of `rows`, in
    order) the `totals` of its rows, which name `columns`."""
    if site_ids is None:
        site_ids = sorted(set(rows["site_id"]))
    return pd.DataFrame(
        [{"site_id": site_id, **totals(rows[rows["site_id"] == site_id])} for site_id in site_ids],
        columns=["site_id", *columns],
    )


def _availability_totals(fleet: pd.DataFrame) -> dict[str, Any]:
    period_s = float(fleet["period_s"].sum())
    downtime_s = float(fleet["downtime_s"].sum())
    failures = int(fleet["failures"].sum())
    return {
        "elevators": len(fleet),
        "period_s": period_s,
        "availability": round(1.0 - downtime_s / period_s, RATIO_DIGITS) if period_s else None,
        "downtime_s": downtime_s,
        "offline_s": float(fleet["offline_s"].sum()),
        "failures": failures,
        "mttr_s": float(fleet["repair_s"].sum()) / failures if failures else None,
        "mtbf_s": (period_s - downtime_s) / failures if failures else None,
    }


def _sla_totals(rescues: pd.DataFrame, *, limit_s: float | None = None) -> dict[str, Any]:
    limit = {} if limit_s is None else {"limit_s": float(limit_s)}
    return {
        "rescues": len(rescues),
        "breaches": int(rescues["breached"].sum()),
        **limit,
        "respond_median_s": _scalar(rescues["respond_s"].median()),
        "arrive_median_s": _scalar(rescues["arrive_s"].median()),
        "finish_median_s": _scalar(rescues["finish_s"].median()),
        "finish_p90_s": _scalar(rescues["finish_s"].quantile(0.9)),
    }


def _maintenance_totals(fleet: pd.DataFrame) -> dict[str, Any]:
    elevators = len(fleet)
    overdue = int(fleet["overdue"].sum())
    return {
        "elevators": elevators,
        "overdue": overdue,
        "compliance": round(1.0 - overdue / elevators, RATIO_DIGITS) if elevators else None,
    }


def _scalar(value: float | np.floating[Any]) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


# -- frames and time -------------------------------------------------------------------------


def _frame(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"input frame lacks columns {missing}")
    return frame.loc[:, list(columns)].reset_index(drop=True)


def _elevator_frame(elevators: pd.DataFrame) -> pd.DataFrame:
    frame = _frame(elevators, ELEVATOR_COLUMNS)
    frame["created_at"] = _utc(frame["created_at"])
    return frame


def _alert_frame(alerts: pd.DataFrame) -> pd.DataFrame:
    frame = _frame(alerts, ALERT_COLUMNS)
    for column in _ALERT_TIMES:
        frame[column] = _utc(frame[column])
    return frame


def _utc(moments: pd.Series[Any]) -> pd.Series[pd.Timestamp]:
    """Aware datetimes (or None) as a UTC datetime column, NaT for missing."""
    return pd.to_datetime(moments, utc=True)


def _seconds_since(moments: pd.Series[pd.Timestamp], origin: dt.datetime) -> pd.Series[float]:
    # Seconds from the period start keep interval arithmetic in small, exact floats.
    return (moments - pd.Timestamp(origin)).dt.total_seconds()


def _elapsed_s(
    earlier: pd.Series[pd.Timestamp], later: pd.Series[pd.Timestamp]
) -> pd.Series[float]:
    return (later - earlier).dt.total_seconds()


def _seconds_between(earlier: dt.datetime, later: dt.datetime) -> float:
    return (later - earlier).total_seconds()


def _union_s(intervals: pd.DataFrame) -> pd.Series[float]:
    """Per elevator, the length in seconds of the union of its [start_s, end_s) intervals."""
    spans = intervals[intervals["end_s"] > intervals["start_s"]].sort_values(
        ["elevator_id", "start_s", "end_s"]
    )
    if spans.empty:
        return pd.Series(dtype="float64")
    reach_s = spans.groupby("elevator_id")["end_s"].cummax()
    previous_reach_s = reach_s.groupby(spans["elevator_id"]).shift()
    # A span starts a new block unless an earlier span of the same elevator reaches it.
    block = (~(spans["start_s"] <= previous_reach_s)).cumsum()
    merged = spans.groupby(block).agg(
        elevator_id=("elevator_id", "first"), start_s=("start_s", "min"), end_s=("end_s", "max")
    )
    return (merged["end_s"] - merged["start_s"]).groupby(merged["elevator_id"]).sum()


def _count_by(keys: pd.Series[Any], index: pd.Index[Any]) -> pd.Series[int]:
    return keys.value_counts().reindex(index, fill_value=0).astype("int64")


def _overrides(value: object) -> Mapping[str, float] | None:
    return value if isinstance(value, Mapping) else None
