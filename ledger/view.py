"""The ledger as a long-running reader serves it: leaves in memory, chain reads cached.

The API answers "prove entry N" many times a second; rebuilding the Merkle tree from the
database per request would cost O(n). `LedgerView` keeps the log's leaf hashes in a
`MerkleLog` that it extends with the entries committed since it last looked, remembers the
`Anchored` events it has read (reading only new blocks), and caches `rootAt(size)`: a root
the contract stored for a size never changes. Roots still come from the chain; the cache
only avoids asking twice. Thread-safe: one lock guards the caches, proofs are computed
outside it on a log that only grows.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import psycopg

from ledger.chain import AnchoredEvent, ChainClient
from ledger.merkle import MerkleLog
from ledger.verify import DEFAULT_BACKDATE_S, EntryReport, LogReport, verify_entry, verify_log

EVENTS_REFRESH_S: Final = 1.0


class LedgerView:
    """Cached ledger state for one anchor contract."""

    def __init__(
        self,
        chain: ChainClient,
        *,
        chain_id: int | None = None,
        backdate_s: float = DEFAULT_BACKDATE_S,
    ) -> None:
        self.chain = chain
        self.chain_id = chain_id  # the chain id the audit trusts
        self.backdate_s = backdate_s
        self._log = MerkleLog()
        self._events: list[AnchoredEvent] = []
        self._next_block = 0
        self._events_read_at = float("-inf")
        self._roots: dict[int, bytes] = {}
        self._lock = threading.Lock()

    @property
    def address(self) -> str | None:
        """The anchor contract this view reads."""
        return self.chain.address

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        start = len(self._log)
        for seq, leaf in conn.execute(
            "SELECT seq, leaf_hash FROM ledger_entries WHERE seq >= %s ORDER BY seq", (start,)
        ):
            if seq != len(self._log):  # a hole: stop; verification reads the database instead
                break
            self._log.append(bytes(leaf))

    def _refresh_events(self, *, needed_beyond: int) -> None:
        covered = self._events[-1].tree_size if self._events else 0
        fresh = time.monotonic() - self._events_read_at < EVENTS_REFRESH_S
        if covered > needed_beyond or fresh:
            return
        new = self.chain.anchored_events(from_block=self._next_block)
        if new:
            self._events += new
            self._next_block = new[-1].block_number + 1
        self._events_read_at = time.monotonic()

    def _root_at(self, size: int) -> bytes | None:
        root = self._roots.get(size)
        if root is None:
            root = self.chain.root_at(size)
            if root is not None:
                self._roots[size] = root
        return root

    def verify_entry(self, conn: psycopg.Connection[Any], seq: int) -> EntryReport:
        """Verify entry `seq` against the chain (see `ledger.verify.verify_entry`)."""
        with self._lock:
            self._catch_up(conn)
            self._refresh_events(needed_beyond=seq)
            events = list(self._events)
            log = self._log
        return verify_entry(conn, self.chain, seq, log=log, anchored=events, root_at=self._root_at)

    def verify_log(self, conn: psycopg.Connection[Any]) -> LogReport:
        """Audit the whole log (see `ledger.verify.verify_log`); always reads everything."""
        return verify_log(conn, self.chain, chain_id=self.chain_id, backdate_s=self.backdate_s)
