"""What every request can reach: settings, the database pool and the ledger view.

Built once by `create_app` and kept on `app.state.context`; the chain client (web3) is
created on first use, so the API starts and serves everything else while the chain is down.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import ConnectionPool

from api.metrics import ApiMetrics
from api.sign_in_limits import SignInLimiter
from api.stream import AlertBroadcaster
from api.verification import VerificationJob
from core.settings import Settings

if TYPE_CHECKING:
    from ledger.view import LedgerView
    from maintenance.records import SigningDomain


class NoContract(Exception):  # noqa: N818 - reads as the state it reports
    """No anchor contract is recorded for the configured chain."""


@dataclass
class ApiContext:
    """Shared state of one API process."""

    settings: Settings
    pool: ConnectionPool[psycopg.Connection[Any]]
    conninfo: str
    jwt_secret: str
    broadcaster: AlertBroadcaster
    metrics: ApiMetrics
    database_slots: asyncio.Semaphore
    sign_in_slots: asyncio.Semaphore
    sign_in_limiter: SignInLimiter
    verification: VerificationJob = field(default_factory=VerificationJob)
    _ledger: LedgerView | None = None
    _chain_id: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ledger_view(self, conn: psycopg.Connection[Any]) -> LedgerView:
        """The view of the contract currently recorded for the chain (replaced when the
        recorded deployment changes, e.g. after a redeploy on a fresh chain)."""
        from ledger.chain import ChainClient  # noqa: PLC0415 - web3 loads on first use
        from ledger.view import LedgerView  # noqa: PLC0415

        with self._lock:
            if self._chain_id is None:
                self._chain_id = ChainClient(self.settings.resolved_chain_url()).chain_id()
            row = conn.execute(
                "SELECT address FROM contract_deployments WHERE chain_id = %s "
                "ORDER BY id DESC LIMIT 1",
                (self._chain_id,),
            ).fetchone()
            if row is None:
                raise NoContract(
                    "no anchor contract is recorded for the chain: run "
                    "`liftledger contracts deploy`"
                )
            address = str(row[0])
            current = self._ledger
            if current is None or (current.address or "").lower() != address.lower():
                chain = ChainClient(self.settings.resolved_chain_url(), contract_address=address)
                current = self._ledger = LedgerView(chain, chain_id=self._chain_id)
            return current

    def signing_domain(self, conn: psycopg.Connection[Any]) -> SigningDomain:
        """The EIP-712 domain crew members sign maintenance records under."""
        from maintenance.records import SigningDomain  # noqa: PLC0415

        view = self.ledger_view(conn)
        if self._chain_id is None or view.address is None:
            raise NoContract("no anchor contract is recorded for the chain")
        return SigningDomain(self._chain_id, view.address)
