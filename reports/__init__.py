"""Where the fleet is reported on: availability, rescue SLA and maintenance compliance reports.

`compute` holds the definitions as pure pandas functions and `report` what they return, with
its JSON and CSV forms; `load` reads their inputs with SQL and `build_report` joins the two.
`telemetry` reads one elevator's samples for charts.
"""

from reports.compute import REPORT_NAMES
from reports.load import build_report
from reports.report import Report

__all__ = ["REPORT_NAMES", "Report", "build_report"]
