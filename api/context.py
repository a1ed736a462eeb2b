"""What every request can reach: settings, the database pool and the ledger view.

Built once by `create_app` and kept on `app.state.context`; the chain client (web3) is
created on first use, so the API starts and serves everything else while the chain is down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import ConnectionPool

from api.metrics import ApiMetrics
from api.sign_in_limits import SignInLimiter
from api.stream import AlertBroadcaster
from api.verification import VerificationJob
from core.settings import Settings

# Called with every active (site, elevator) after the registry changed, to update the broker's
# device accounts (`liftledger.api_app` wires the local broker's; docs/security.md).
RegistryHook = Callable[[list[tuple[str, str]]], object]

if TYPE_CHECKING:
    from ledger.view import LedgerView
    from maintenance.records import SigningDomain


class NoContract(Exception):  # noqa: N818 - reads as the state it reports
    """No anchor contract is pinned for the configured chain."""


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
    on_registry_change: RegistryHook | None = None
    _ledger: LedgerView | None = None
    _chain_id: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ledger_view(self, conn: psycopg.Connection[Any]) -> LedgerView:
        """The view of the pinned anchor contract (`LIFTLEDGER_CONTRACT_ADDRESS`, or the local
        stack's pin; `ledger.pin`), never of a contract the database records."""
        from ledger.chain import ChainClient  # noqa: PLC0415 - web3 loads on first use
        from ledger.pin import pinned_contract  # noqa: PLC0415
        from ledger.view import LedgerView  # noqa: PLC0415

        with self._lock:
            if self._chain_id is None:
                self._chain_id = ChainClient(self.settings.resolved_chain_url()).chain_id()
            address = pinned_contract(self.settings, self.settings.resolved_database_url())
            if address is None:
                raise NoContract(
                    "no anchor contract is pinned: set LIFTLEDGER_CONTRACT_ADDRESS "
                    "(`liftledger contracts deploy` pins the one it deploys on the local stack)"
                )
            current = self._ledger
            if current is None or (current.address or "").lower() != address.lower():
                chain = ChainClient(self.settings.resolved_chain_url(), contract_address=address)
                current = self._ledger = LedgerView(
                    chain, chain_id=self.settings.chain_id,
                    backdate_s=self.settings.audit_backdate_s,
                )  # fmt: skip
            return current

    def signing_domain(self, conn: psycopg.Connection[Any]) -> SigningDomain:
        """The EIP-712 domain crew members sign maintenance records under."""
        from maintenance.records import SigningDomain  # noqa: PLC0415

        view = self.ledger_view(conn)
        if self._chain_id is None or view.address is None:
            raise NoContract("no anchor contract is pinned for the chain")
        return SigningDomain(self._chain_id, view.address)
