"""The sources of ledger entries this platform writes, for every process that reads the
ledger: alert events and maintenance records (`ledger.sources`).

The ledger package knows none of them; the audit (`liftledger audit verify`) and the API
(`liftledger.api_app`) are handed this list where they are wired.
"""

from __future__ import annotations

from typing import Final

from alerts.entries import ALERT_EVENTS
from ledger.sources import LedgerSources
from maintenance.entries import MAINTENANCE_RECORDS

LEDGER_SOURCES: Final = LedgerSources(ALERT_EVENTS, MAINTENANCE_RECORDS)
