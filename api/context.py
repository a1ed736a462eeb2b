"""What every request can reach: settings, the database pool and the ledger view.

Built once by `create_app` and kept on `app.state.context`; the chain client (web3) is
created on first use, so the API starts and serves everything else while the chain is down.
No lock here is held across a database query or a chain call.
"""

from __future__ import annotations

import asyncio
import itertools
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
from core.errors import LiftLedgerError
from core.settings import Settings

# Called with every active (site, elevator) after the registry changed, to update the broker's
# device accounts (`liftledger.api_app` wires the local broker's; docs/security.md).
RegistryHook = Callable[[list[tuple[str, str]]], object]

if TYPE_CHECKING:
    from ledger.sources import LedgerSources
    from ledger.view import LedgerView
    from maintenance.records import SigningDomain


class NoContract(LiftLedgerError):  # noqa: N818 - reads as the state it reports
    """No anchor contract is pinned for the configured chain."""


class NoSigningDomain(LiftLedgerError):  # noqa: N818 - reads as the state it reports
    """The EIP-712 domain of signed maintenance records cannot be read: no contract is
    pinned, or the chain does not answer."""


class RegistryHandover:
    """Hands the registry to the broker-account hook after each change, the newest reading
    last, without holding a lock across the database read.

    Each change takes a ticket after its commit, then reads the registry, then hands its list
    over unless a later ticket's list went first. A later ticket was taken after every
    earlier change had committed, and its reading comes after that, so its list includes
    theirs: the last list handed over reflects every committed change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._handed_over = 0

    def hand_over(self, read: Callable[[], list[tuple[str, str]]], hook: RegistryHook) -> None:
        """Read the registry with `read` (after the change committed) and give it to `hook`."""
        with self._lock:
            ticket = next(self._tickets)
        elevators = read()
        # The hook rewrites the broker's files: one at a time, never an older list last.
        with self._lock:
            if ticket < self._handed_over:
                return
            self._handed_over = ticket
            hook(elevators)


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
    ledger_sources: LedgerSources  # the entries the audit reads (`liftledger.ledger_sources`)
    verification: VerificationJob = field(default_factory=VerificationJob)
    on_registry_change: RegistryHook | None = None
    _ledger: LedgerView | None = None
    _chain_id: int | None = None
    registry_handover: RegistryHandover = field(default_factory=RegistryHandover)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def registry_changed(self, read: Callable[[], list[tuple[str, str]]]) -> None:
        """After a committed registry change: hand every active (site, elevator), as `read`
        returns them, to the broker-account hook, if one is wired."""
        if self.on_registry_change is not None:
            self.registry_handover.hand_over(read, self.on_registry_change)

    def ledger_view(self, conn: psycopg.Connection[Any]) -> LedgerView:
        """The view of the pinned anchor contract (`LIFTLEDGER_CONTRACT_ADDRESS`, or the local
        stack's pin; `ledger.pin`), never of a contract the database records.

        The chain and the pin are read outside the lock, which only guards the swap of the
        cached view: a chain that does not answer holds up its own request, not every
        other one waiting for the lock."""
        from ledger.chain import ChainClient  # noqa: PLC0415 - web3 loads on first use
        from ledger.deploy import contract_chain  # noqa: PLC0415
        from ledger.pin import pinned_contract  # noqa: PLC0415
        from ledger.view import LedgerView  # noqa: PLC0415

        if self._chain_id is None:
            chain_id = ChainClient(self.settings.resolved_chain_url()).chain_id()
            with self._lock:
                self._chain_id = chain_id
        address = pinned_contract(self.settings, self.settings.resolved_database_url())
        if address is None:
            raise NoContract(
                "no anchor contract is pinned: set LIFTLEDGER_CONTRACT_ADDRESS "
                "(`liftledger contracts deploy` pins the one it deploys on the local stack)"
            )
        with self._lock:
            current = self._ledger
            if current is None or (current.address or "").lower() != address.lower():
                # Building a view connects nothing: its chain client asks on first use.
                chain = contract_chain(self.settings.resolved_chain_url(), address=address)
                current = self._ledger = LedgerView(
                    chain, sources=self.ledger_sources, chain_id=self.settings.chain_id,
                    backdate_s=self.settings.audit_backdate_s,
                )  # fmt: skip
            return current

    def signing_domain(self, conn: psycopg.Connection[Any]) -> SigningDomain:
        """The EIP-712 domain crew members sign maintenance records under; `NoSigningDomain`
        when no contract is pinned or the chain does not answer."""
        from ledger.chain import ChainRefused, ChainUnavailable  # noqa: PLC0415
        from maintenance.records import SigningDomain  # noqa: PLC0415

        prefix = "signed records need the anchor contract's domain"
        try:
            view = self.ledger_view(conn)
        except (NoContract, ChainUnavailable, ChainRefused) as exc:
            raise NoSigningDomain(f"{prefix}: {exc}") from exc
        if self._chain_id is None or view.address is None:
            raise NoSigningDomain(f"{prefix}: no anchor contract is pinned for the chain")
        return SigningDomain(self._chain_id, view.address)
